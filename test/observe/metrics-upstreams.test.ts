// The DNS upstreams in /metrics: tunnelguard_upstream_up (the upstreams of the config, each as
// its pools last marked it) and tunnelguard_upstream_resends_total (read at scrape time).
import t from 'tap'
import { createMetrics } from '../../src/observe/metrics.js'
import type { UpstreamHealth } from '../../src/observe/types.js'

/** The value of each series of `metric` (its labels → value). */
async function series(m: ReturnType<typeof createMetrics>, metric: string): Promise<Record<string, number>> {
  const text = await m.registry.metrics()
  return Object.fromEntries(text.split('\n').filter(l => l.startsWith(`${metric}{`)).map(l => {
    const sp = l.lastIndexOf(' ')
    return [l.slice(metric.length, sp), Number(l.slice(sp + 1))]
  }))
}

const A = 'udp://127.0.0.1:5300'
const B = 'tls://192.0.2.1#dns.example'
const C = 'tcp://[2001:db8::1]:53'

t.test('upstream_up: the config\'s upstreams, 1 until a pool marks one down; the latest marking says', async t => {
  const m = createMetrics()
  t.same(await series(m, 'tunnelguard_upstream_up'), {}, 'no config yet: no series')
  m.setUpstreams([A, B, A])
  t.same(await series(m, 'tunnelguard_upstream_up'), { [`{upstream="${A}"}`]: 1, [`{upstream="${B}"}`]: 1 },
    'each configured upstream once, up while no pool holds it (the label as the config writes it)')

  // two pools (the DNS forwarder's, the proxy's lookups') hold A, each with a health of its own
  const dnsA: UpstreamHealth = { url: A, down: false, changed: 0 }
  const proxyA = { url: A, down: false, changed: 0 }
  const other = { url: 'udp://127.0.0.1:9999', down: true, changed: 9 }
  const stopDns = m.counters.watchUpstreams(() => [dnsA, { url: B, down: false, changed: 0 }])
  const stopProxy = m.counters.watchUpstreams(() => new Set([proxyA, other]))
  t.same(await series(m, 'tunnelguard_upstream_up'), { [`{upstream="${A}"}`]: 1, [`{upstream="${B}"}`]: 1 },
    'never marked: up; an upstream no longer in the config (a pool that has not followed a reload yet) is not shown')

  Object.assign(dnsA, { down: true, changed: 1 })
  t.same(await series(m, 'tunnelguard_upstream_up'), { [`{upstream="${A}"}`]: 0, [`{upstream="${B}"}`]: 1 }, 'marked down by one pool: 0')
  Object.assign(proxyA, { down: false, changed: 2 })
  t.same(await series(m, 'tunnelguard_upstream_up'), { [`{upstream="${A}"}`]: 1, [`{upstream="${B}"}`]: 1 }, 'marked up by another since: 1')
  Object.assign(dnsA, { down: true, changed: 3 })
  t.same(await series(m, 'tunnelguard_upstream_up'), { [`{upstream="${A}"}`]: 0, [`{upstream="${B}"}`]: 1 }, 'marked down again: 0')

  // a reload: B goes, C comes
  m.setUpstreams([A, C])
  t.same(await series(m, 'tunnelguard_upstream_up'), { [`{upstream="${A}"}`]: 0, [`{upstream="${C}"}`]: 1 }, 'the one taken out is gone; the new one is there')
  stopDns()
  t.same(await series(m, 'tunnelguard_upstream_up'), { [`{upstream="${A}"}`]: 1, [`{upstream="${C}"}`]: 1 }, 'a pool closed is no longer read')
  stopProxy()
  stopProxy()                                        // twice: nothing more
  m.setUpstreams([])
  t.same(await series(m, 'tunnelguard_upstream_up'), {})
})

t.test('upstream_resends_total: counted per upstream, read at scrape time; a series at 0 for each UDP upstream configured', async t => {
  const m = createMetrics()
  m.setUpstreams([A, B])
  t.same(await series(m, 'tunnelguard_upstream_resends_total'), { [`{upstream="${A}"}`]: 0 }, 'UDP only: the others are never sent again')
  m.counters.resent(A)
  m.counters.resent(A)
  m.counters.resent('udp://10.0.0.1:53')
  const first = await series(m, 'tunnelguard_upstream_resends_total')
  t.same(first, { [`{upstream="${A}"}`]: 2, '{upstream="udp://10.0.0.1:53"}': 1 })
  t.same(await series(m, 'tunnelguard_upstream_resends_total'), first, 'not added twice')
  m.counters.resent(A)
  t.equal((await series(m, 'tunnelguard_upstream_resends_total'))[`{upstream="${A}"}`], 3)
})
