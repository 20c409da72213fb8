import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { createMetrics } from '../../src/observe/metrics.js'

const value = (text: string, name: string): number => Number(new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN)

t.test('the event-loop delay gauges say the delay, not the 100 ms sampling interval; a blocked loop still shows', async t => {
  const m = createMetrics()
  await m.registry.metrics()                                  // the histogram starts afresh at each scrape
  await sleep(650)                                            // idle: about six samples
  const idle = await m.registry.metrics()
  // about six samples: a loaded box may hold one or two late, which move the mean and p90; with the
  // interval in them every one read 0.1 or more, the least and the median included
  for (const [q, most] of [['min', 0.09], ['p50', 0.09], ['mean', 0.5], ['p90', 0.5]] as const) {
    const v = value(idle, `nodejs_eventloop_lag_${q}_seconds`)
    t.ok(v >= 0 && v < most, `idle ${q}: ${v} s, under ${most} (it read about 0.1 with the interval in it)`)
  }
  t.match(idle, /# HELP nodejs_eventloop_lag_p99_seconds .*\(the sampling interval taken off\)/)
  t.equal(idle.match(/^# TYPE nodejs_eventloop_lag_p50_seconds /gm)?.length, 1, 'one series of each name')
  // the loop held for 300 ms (after a first sample: node's histogram takes no delta across its reset at a scrape)
  await sleep(150)
  const end = Date.now() + 300
  while (Date.now() < end) { /* hold the event loop */ }
  await sleep(250)
  const busy = await m.registry.metrics()
  const max = value(busy, 'nodejs_eventloop_lag_max_seconds')
  t.ok(max >= 0.15 && max < 2, `blocked 300 ms: max ${max} s`)
  t.ok(value(busy, 'nodejs_eventloop_lag_stddev_seconds') > 0, 'the spread as it is')
})
