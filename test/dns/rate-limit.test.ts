import t from 'tap'
import { RateLimiter, WindowedNotice } from '../../src/dns/rate-limit.js'

t.test('off when qps is 0', async t => {
  const rl = new RateLimiter({ qps: 0, burst: 1 }, () => t.fail('never limited'))
  for (let i = 0; i < 100; i++) t.ok(rl.allow('10.0.0.1', 0))
})

t.test('token bucket per client; logged once per window', async t => {
  const logs: [string, number][] = []
  const rl = new RateLimiter({ qps: 10, burst: 3 }, (c, n) => logs.push([c, n]))
  const results = Array.from({ length: 6 }, () => rl.allow('10.0.0.1', 1000))
  t.same(results, [true, true, true, false, false, false], 'burst, then dropped')
  t.ok(rl.allow('10.0.0.2', 1000), 'another client has its own bucket')
  t.same(logs, [['10.0.0.1', 1]], 'one log line for the window')
  t.ok(rl.allow('10.0.0.1', 1100), 'refilled at qps (one token per 100 ms)')
  t.notOk(rl.allow('10.0.0.1', 1100))
  t.same(logs.length, 1, 'still one line within the window')
  t.same([1, 2, 3, 4, 5].map(() => rl.allow('10.0.0.1', 11_050)), [true, true, true, false, false])
  t.same(logs, [['10.0.0.1', 1], ['10.0.0.1', 4]], 'next window: one line counting the drops since the last line')
})

t.test('WindowedNotice: once per client per window, with the count since the last notice', async t => {
  const seen: [string, number][] = []
  const n = new WindowedNotice(10_000, (c, k) => seen.push([c, k]))
  n.note('a', 0)
  n.note('a', 1_000)
  n.note('b', 2_000)
  n.note('a', 9_999)
  t.same(seen, [['a', 1], ['b', 1]], 'the first of each client at once, the rest counted')
  n.note('a', 10_000)
  t.same(seen.at(-1), ['a', 3], 'the next window: the two counted and this one')
})
