import t from 'tap'
import { register } from 'prom-client'
import { createMetrics, MAX_LABEL_VALUES } from '../../src/observe/metrics.js'
import type { DecisionEvent } from '../../src/observe/types.js'
import { makeSnapshot } from '../fixtures/snapshot.js'
import { packageVersion } from '../fixtures/package-version.js'

const snap = makeSnapshot()
const ev = (message: DecisionEvent['message'], name: string, where: 'qname' | 'sni' = 'qname'): DecisionEvent => ({
  message, decision: snap.policy.decide('10.0.0.5', name, where), client: { ip: '10.0.0.5', port: 1 }, transport: 'udp', durationNs: 1,
})

t.test('a refusal by the proxy\'s own rules (no list) is action="refused", as report and /api/clients count it; one that keeps a list match stays a block', async t => {
  const m = createMetrics()
  const base = { client: { ip: '10.0.0.5', port: 1 }, transport: 'tcp' as const, durationNs: 1 }
  m.decision({ ...base, message: 'proxy.connect', decision: { action: 'block', group: 'default', where: 'connect', name: '10.1.2.3', reason: 'internal', policy: 'proxy.allowDestinations' } })
  m.counters.decided('proxy.http', { action: 'block', group: 'default', where: 'url', name: 'x.example', reason: 'port', policy: 'proxy.connectPorts' })
  m.decision({ ...base, message: 'proxy.connect', decision: { ...snap.policy.decide('10.0.0.5', 'x.trycloudflare.com', 'connect'), action: 'block', policy: 'proxy.connectPorts' } })
  const text = await m.registry.metrics()
  t.match(text, 'tunnelguard_decisions_total{source="proxy",action="refused",list="none",matched_on="connect"} 1')
  t.match(text, 'tunnelguard_decisions_total{source="proxy",action="refused",list="none",matched_on="url"} 1')
  t.match(text, 'tunnelguard_decisions_total{source="proxy",action="block",list="tunnels",matched_on="connect"} 1')
  t.notMatch(text, /action="block",list="none"/, 'no refusal counted as a block')
})

t.test('counters, decisions, lists and reloads on a private registry', async t => {
  const m = createMetrics()
  m.counters.cacheLookup(true)
  m.counters.cacheLookup(false)
  m.counters.cacheLookup(false)
  m.counters.upstream('udp://127.0.0.1:5399', 'ok', 0.003)
  m.counters.upstream('udp://127.0.0.1:5399', 'timeout', 2)
  m.counters.dropped('ratelimit')
  m.counters.proxyBytes('up', 100)
  m.counters.proxyBytes('down', 2000)
  m.counters.connections('proxy', 1)
  m.counters.connections('proxy', 1)
  m.counters.connections('proxy', -1)
  m.decision(ev('dns.query', 'a.ngrok.io'))
  m.decision(ev('dns.query', 'b.ngrok.io'))
  m.decision(ev('proxy.connect', 'x.trycloudflare.com', 'sni'))
  m.decision(ev('sinkhole.capture', 'example.com'))
  m.setLists(snap.lists)
  m.setLists([{ name: 'ngrok', action: 'block', sources: [], entries: 7, allows: 0 }])
  m.reloaded(true)
  m.reloaded(false)
  t.match(await m.registry.metrics(), 'tunnelguard_alerts_total{output="syslog",result="dropped"} 0', 'every alert series is there from the start')
  m.alerted('webhook', 'failed')
  m.alerted('webhook', 'failed')
  m.alerted('webhook', 'dropped')
  m.alerted('syslog', 'sent')
  t.match(await m.registry.metrics(), /^tunnelguard_dns_cache_entries 0$/m, 'no DNS service: the cache reads empty')
  let stats = { entries: 12, bytes: 65_536 }
  m.watchCache(() => stats)
  const text = await m.registry.metrics()
  t.match(text, /^tunnelguard_dns_cache_entries 12$/m)
  t.match(text, /^tunnelguard_dns_cache_bytes 65536$/m)
  stats = { entries: 3, bytes: 0 }
  t.match(await m.registry.metrics(), /^tunnelguard_dns_cache_entries 3$/m, 'read again at each scrape')
  t.match(text, 'tunnelguard_dns_cache_lookups_total{result="hit"} 1')
  t.match(text, 'tunnelguard_dns_cache_lookups_total{result="miss"} 2')
  t.match(text, 'tunnelguard_upstream_requests_total{upstream="udp://127.0.0.1:5399",outcome="ok"} 1')
  t.match(text, 'tunnelguard_upstream_duration_seconds_bucket{le="0.005",upstream="udp://127.0.0.1:5399"} 1')

  // the upstream histogram as Prometheus reads it: cumulative buckets, +Inf, sum and count
  for (const [o, s] of [['ok', 0.0005], ['ok', 0.3], ['timeout', 2], ['error', 9]] as const) m.counters.upstream('udp://h:53', o, s)
  const up = (await m.registry.metrics()).split('\n').filter(l => l.includes('upstream="udp://h:53"'))
  t.same(up.filter(l => l.includes('_bucket')).map(l => l.replace(/.*le="([^"]+)".* /, '$1 ')),
    ['0.001 1', '0.005 1', '0.01 1', '0.025 1', '0.05 1', '0.1 1', '0.25 1', '0.5 2', '1 2', '2.5 3', '5 3', '+Inf 4'])
  t.ok(up.includes('tunnelguard_upstream_duration_seconds_sum{upstream="udp://h:53"} 11.3005'))
  t.ok(up.includes('tunnelguard_upstream_duration_seconds_count{upstream="udp://h:53"} 4'))
  t.ok(up.includes('tunnelguard_upstream_requests_total{upstream="udp://h:53",outcome="ok"} 2'))
  t.ok(up.includes('tunnelguard_upstream_requests_total{upstream="udp://h:53",outcome="timeout"} 1'))
  t.ok(up.includes('tunnelguard_upstream_requests_total{upstream="udp://h:53",outcome="error"} 1'))
  t.match(await m.registry.metrics(), 'tunnelguard_upstream_requests_total{upstream="udp://h:53",outcome="ok"} 2', 'counts are not added twice')
  // bytes and open connections are counted between scrapes: added once, the gauge as it is now
  m.counters.proxyBytes('down', 500)
  m.counters.connections('proxy', 1)
  m.counters.connections('proxy', -1)
  m.counters.connections('proxy', -1)
  let again = await m.registry.metrics()
  t.match(again, 'tunnelguard_proxy_bytes_total{direction="down"} 2500')
  t.match(again, 'tunnelguard_connections{kind="proxy"} 0')
  again = await m.registry.metrics()
  t.match(again, 'tunnelguard_proxy_bytes_total{direction="down"} 2500', 'not added twice')
  t.match(again, 'tunnelguard_connections{kind="proxy"} 0')
  t.match((await m.registry.getMetricsAsJSON()).find(x => x.name === 'tunnelguard_upstream_duration_seconds'), { type: 'histogram' })
  m.registry.resetMetrics()
  t.notMatch(await m.registry.metrics(), 'upstream_duration_seconds_bucket', 'reset empties it')
  t.match(text, 'tunnelguard_dropped_total{reason="ratelimit"} 1')
  t.match(text, 'tunnelguard_proxy_bytes_total{direction="down"} 2000')
  t.match(text, 'tunnelguard_connections{kind="proxy"} 1')
  t.match(text, 'tunnelguard_decisions_total{source="dns",action="sinkhole",list="ngrok",matched_on="qname"} 2')
  t.match(text, 'tunnelguard_decisions_total{source="proxy",action="alert",list="tunnels",matched_on="sni"} 1')
  t.match(text, 'tunnelguard_decisions_total{source="sinkhole",action="pass",list="none",matched_on="qname"} 1')
  t.match(text, 'tunnelguard_list_entries{list="ngrok"} 7')
  t.notMatch(text, 'list_entries{list="tunnels"}', 'lists of an older snapshot are gone')
  t.match(text, 'tunnelguard_reloads_total{result="ok"} 1')
  t.match(text, 'tunnelguard_reloads_total{result="error"} 1')
  t.match(text, 'tunnelguard_alerts_total{output="webhook",result="failed"} 2')
  t.match(text, 'tunnelguard_alerts_total{output="webhook",result="dropped"} 1')
  t.match(text, 'tunnelguard_alerts_total{output="webhook",result="sent"} 0')
  t.match(text, 'tunnelguard_alerts_total{output="syslog",result="sent"} 1')
  t.match(text, 'process_cpu_user_seconds_total', 'default metrics')
  t.notMatch(text, '10.0.0.5', 'never a client')
  t.notMatch(text, 'a.ngrok.io', 'never a name')
  t.notMatch(await register.metrics(), 'tunnelguard_', 'the global registry is untouched')
})

t.test('two instances do not collide; label values stay bounded', async t => {
  const a = createMetrics()
  const b = createMetrics({ prefix: 'tg_' })
  for (let i = 0; i < MAX_LABEL_VALUES + 5; i++) a.counters.upstream(`udp://127.0.0.${i}:53`, 'ok', 0.001)
  const text = await a.registry.metrics()
  t.match(text, 'tunnelguard_upstream_requests_total{upstream="other",outcome="ok"} 5')
  t.match(await b.registry.metrics(), 'tg_decisions_total')
})

t.test('fd_exhausted_total: every place from the start; counted without a listener, and the listener told', async t => {
  const m = createMetrics()
  t.match(await m.registry.metrics(), 'tunnelguard_fd_exhausted_total{where="dns-upstream"} 0')
  m.counters.fdExhausted('check')
  const told: string[] = []
  m.onFdExhausted(w => told.push(w))
  m.counters.fdExhausted('dns-upstream')
  const text = await m.registry.metrics()
  t.match(text, 'tunnelguard_fd_exhausted_total{where="check"} 1')
  t.match(text, 'tunnelguard_fd_exhausted_total{where="dns-upstream"} 1')
  t.same(told, ['dns-upstream'])
})

t.test('log_lines_dropped_total: every reason from the start, read from the log sink at each scrape', async t => {
  const m = createMetrics()
  let text = await m.registry.metrics()
  t.match(text, 'tunnelguard_log_lines_dropped_total{reason="behind"} 0')
  t.match(text, 'tunnelguard_log_lines_dropped_total{reason="behind_evidence"} 0')
  t.match(text, 'tunnelguard_log_lines_dropped_total{reason="failed"} 0')
  let lost = { behind: 5, behindEvidence: 0, failed: 0 }
  m.watchLog(() => lost)
  text = await m.registry.metrics()
  t.match(text, 'tunnelguard_log_lines_dropped_total{reason="behind"} 5')
  t.match(text, 'tunnelguard_log_lines_dropped_total{reason="behind_evidence"} 0')
  t.match(text, 'tunnelguard_log_lines_dropped_total{reason="failed"} 0')
  lost = { behind: 7, behindEvidence: 2, failed: 3 }
  text = await m.registry.metrics()
  t.match(text, 'tunnelguard_log_lines_dropped_total{reason="behind"} 7')
  t.match(text, 'tunnelguard_log_lines_dropped_total{reason="behind_evidence"} 2')
  t.match(text, 'tunnelguard_log_lines_dropped_total{reason="failed"} 3')
  t.match(text, /# HELP tunnelguard_log_lines_dropped_total .*behind_evidence \(block, sinkhole and alert decision lines/)
})

t.test('build_info: 1, labelled with the package\'s version', async t => {
  const text = await createMetrics().registry.metrics()
  t.match(text, new RegExp(`\\ntunnelguard_build_info\\{version="${packageVersion.replace(/\./g, '\\.')}"\\} 1\\n`))
})
