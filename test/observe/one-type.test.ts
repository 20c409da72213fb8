import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { loadConfig } from '../../src/config/load.js'
import { Upstream } from '../../src/dns/upstream.js'
import { udpListener } from '../../src/dns/server.js'
import { createClientTable } from '../../src/observe/client-table.js'
import { createEvidence } from '../../src/observe/evidence.js'
import { createLogger } from '../../src/observe/logger.js'
import { createMetrics } from '../../src/observe/metrics.js'
import type { DecisionEvent } from '../../src/observe/types.js'
import { createWebhook } from '../../src/observe/webhook.js'
import { createReloader } from '../../src/reload.js'
import { buildSnapshot } from '../../src/snapshot.js'
import { startProxy } from '../../src/proxy/server.js'
import { exchange, fakeResolve, freePort, startOrigin, waitFor } from '../fixtures/origin.js'
import { makeSnapshot } from '../fixtures/snapshot.js'

/** A value's type as an Elasticsearch index maps it: null says nothing; an array is its elements' type. */
function typeOf(v: unknown): string | undefined {
  if (v === null) return undefined
  if (Array.isArray(v)) {
    const kinds = new Set(v.map(typeOf).filter(k => k !== undefined))
    return kinds.size === 0 ? undefined : [...kinds].sort().join('|')
  }
  // a whole number is a long to Elasticsearch's dynamic mapping, and a later fraction is cut to it
  if (typeof v === 'number') return Number.isInteger(v) ? 'long' : 'double'
  return typeof v
}

/** Each leaf of a line by its dotted path (nested and dotted keys alike, as Elasticsearch reads them), objects as `object`. */
function leaves(o: Record<string, unknown>, prefix = '', out = new Map<string, unknown>()): Map<string, unknown> {
  for (const [k, v] of Object.entries(o)) {
    const path = prefix + k
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      out.set(path, {})
      leaves(v as Record<string, unknown>, path + '.', out)
    } else {
      out.set(path, v)
    }
  }
  return out
}

t.test('every key has one type on every line the writers give: a field an earlier line mapped never gets a value the index rejects', async t => {
  let text = ''
  const logger = createLogger({ level: 'info', destination: new Writable({ write(c, _e, cb) { text += c; cb() } }) })
  const snap = makeSnapshot()
  const metrics = createMetrics()
  const evidence = createEvidence({ logger, getSnapshot: () => snap, metrics, clients: createClientTable() })
  const base = { client: { ip: '10.0.0.9', port: 1 }, durationNs: 1 }
  const decisions: DecisionEvent[] = [
    { ...base, message: 'dns.query', transport: 'udp', decision: snap.policy.decide('10.0.0.9', 'a.ngrok.io', 'qname'), dns: { name: 'a.ngrok.io', type: 'A', rcode: 'NXDOMAIN' } },
    { ...base, message: 'dns.query', transport: 'tcp', decision: snap.policy.decide('10.0.0.9', 'x.ngrok.io', 'cname'), dns: { name: 'c1.test', type: 'ANY', class: 'CH', rcode: 'NOERROR', upstream: 'udp://127.0.0.1:9', cacheHit: false } },
    { ...base, message: 'dns.query', transport: 'udp', decision: snap.policy.decide('10.0.0.9', 'example.com', 'qname'), dns: { name: 'example.com', type: 'A', rcode: 'NOERROR', cacheHit: true }, outcome: 'success' },
    { ...base, message: 'dns.query', transport: 'udp', decision: snap.policy.decide('10.0.0.9', 'example.com', 'qname'), dns: { name: 'example.com', type: 'A', rcode: 'SERVFAIL', upstream: 'udp://127.0.0.1:9' }, outcome: 'failure' },
    { ...base, message: 'proxy.connect', transport: 'tcp', decision: snap.policy.decide('10.0.0.9', 's.ngrok.io', 'sni'), destination: { domain: 'innocent.example', ip: '192.0.2.1', port: 443 }, sni: 's.ngrok.io',
      extra: { 'tunnelguard.sni_status': 'ok', 'tunnelguard.mismatch': true, 'tunnelguard.sni_cnames': ['a.example'], 'tunnelguard.ech': true } },
    { ...base, message: 'proxy.connect', transport: 'tcp', decision: snap.policy.decide('10.0.0.9', 'i.ngrok.io', 'connect'), destination: { domain: 'a.example', port: 443 },
      extra: { 'tunnelguard.sni_status': 'http', 'tunnelguard.inner_connect': 'i.ngrok.io', 'tunnelguard.request': 2 } },
    { ...base, message: 'proxy.http', transport: 'tcp', decision: snap.policy.decide('10.0.0.9', 'h.ngrok.io', 'host'), destination: { domain: 'innocent.example', port: 80 }, urlDomain: 'innocent.example',
      extra: { 'http.request.method': 'GET', 'tunnelguard.mismatch': true, 'tunnelguard.host_header': 'h.ngrok.io' } },
    { ...base, message: 'proxy.http', transport: 'tcp', decision: snap.policy.decide('10.0.0.9', 'nx.example', 'url'), destination: { domain: 'nx.example', port: 80 }, urlDomain: 'nx.example',
      outcome: 'failure', extra: { 'http.request.method': 'GET', 'error.message': 'nx.example has no addresses' } },
    { ...base, message: 'proxy.connect', transport: 'tcp', decision: { action: 'pass', group: 'default', where: 'connect', name: '2001:db8::1', reason: 'an address, not a name' },
      destination: { ip: '2001:db8::1', port: 443 }, sni: 'x.example', extra: { 'tunnelguard.sni_status': 'ok' } },
    { ...base, client: { ip: '10.0.0.9', port: 0 }, message: 'proxy.connect', transport: 'tcp', destination: { ip: '10.1.2.3', port: 443 },
      decision: { action: 'block', group: 'default', where: 'connect', name: '10.1.2.3', reason: 'internal', policy: 'proxy.allowDestinations' } },
    { ...base, message: 'sinkhole.capture', transport: 'tcp', decision: snap.policy.decide('10.0.0.9', 'm.ngrok.io', 'sni'), sni: 'm.ngrok.io', destination: { port: 443 } },
  ]
  for (const d of decisions) evidence.decision(d)

  // operational lines, from the writers themselves
  let now = 0
  const up = new Upstream('udp://127.0.0.1:9', evidence, () => now, { sockets: 1, queriesPerSocket: 1, socketLifeMs: 1 })
  up.socketError(Object.assign(new Error('recvmsg ECONNREFUSED'), { code: 'ECONNREFUSED' }))
  up.socketError(Object.assign(new Error('send ENOBUFS 127.0.0.1:9'), { code: 'ENOBUFS' }))
  udpListener({} as never, evidence, () => false, () => now).onError(new Error('send EPERM'))
  metrics.counters.fdExhausted('check', 'ENFILE')
  const rejected = createReloader({ debounceMs: 50, overrides: {}, resolvConf: '/nonexistent', evidence, current: () => { throw new TypeError('no snapshot') }, swap: () => {} })
  t.equal(await rejected.reload('SIGHUP'), false)
  const dir = t.testdir({ 'l.txt': 'a.com\n' })
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, 'lists:\n  l: { files: [l.txt] }\ndns: { upstreams: ["udp://127.0.0.1:9"] }\n')
  let current = buildSnapshot(loadConfig(cfg))
  const rl = createReloader({ debounceMs: 50, configPath: cfg, overrides: {}, evidence, current: () => current, swap: s => { current = s } })
  t.teardown(() => rl.close())
  writeFileSync(cfg, 'lists:\n  l: { files: [l.txt] }\ndns: { upstreams: ["udp://127.0.0.1:9"] }\nproxy: { listen: ["127.0.0.1:9999"] }\nadmin: { listen: "127.0.0.1:9998" }\n')
  t.ok(await rl.reload('SIGHUP'))
  writeFileSync(cfg, 'dns: { upstreams: ["udp://127.0.0.1:9"] }\n')
  t.equal(await rl.reload('file changed', true), false, 'held: the list is gone')
  const hook = createWebhook({ url: 'http://127.0.0.1:9/alerts', retries: 0, timeout: 2000 }, (m, f) => evidence.warn(m, f))
  hook.send(decisions[0]!, {}, () => {})
  await hook.idle()
  await hook.close()

  // the proxy's close lines, from the proxy itself: served (success), the origin failed (failure), refused (none)
  const origin = await startOrigin(t)
  const dead = await freePort()
  const proxySnap = makeSnapshot({ config: { proxy: { listen: ['127.0.0.1:0'], allowDestinations: ['127.0.0.0/8'], connectPorts: [origin.port, dead] } } })
  const proxy = await startProxy({ listen: ['127.0.0.1:0'], getSnapshot: () => proxySnap, evidence, resolve: fakeResolve({}) })
  t.teardown(() => proxy.close())
  const port = proxy.addresses[0]!.port
  const get = (authority: string) => `GET http://${authority}/ HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`
  await exchange(port, [get(`127.0.0.1:${origin.port}`)])
  await exchange(port, [get(`127.0.0.1:${dead}`)])
  await exchange(port, [`CONNECT 127.0.0.1:${dead} HTTP/1.1\r\n\r\n`, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'], { gapMs: 50 })
  await exchange(port, [get('a.ngrok.io')])
  t.ok(await waitFor(() => proxy.openConnections === 0 && (text.match(/"message":"proxy\.close"/g) ?? []).length === 4), 'four close lines')

  const lines = text.trimEnd().split('\n').map(l => JSON.parse(l) as Record<string, unknown>)
  const messages = new Set(lines.map(l => l.message))
  const closes = lines.filter(l => l.message === 'proxy.close')
  t.same(closes.map(l => [l['http.response.status_code'], l['event.outcome']]), [[200, 'success'], [502, 'failure'], [200, 'failure'], [403, undefined]])
  t.same(closes.map(l => l['destination.ip']), ['127.0.0.1', '127.0.0.1', '127.0.0.1', undefined], 'an address the client named: destination.ip')
  t.notOk(closes.slice(0, 3).some(l => 'destination.domain' in l), 'and no destination.domain')
  // ECS's values only: event.kind on every line, event.outcome success or failure where there is one
  const kind = (l: Record<string, unknown>) => (l.event as { kind?: string } | undefined)?.kind ?? l['event.kind']
  const outcome = (l: Record<string, unknown>) => (l.event as { outcome?: string } | undefined)?.outcome ?? l['event.outcome']
  t.same(lines.filter(l => !['alert', 'event'].includes(String(kind(l)))).map(l => l.message), [], 'event.kind alert or event on every line')
  t.same(lines.filter(l => l.event === undefined && kind(l) !== 'event').map(l => l.message), [], 'an operational line\'s: event')
  t.same([...new Set(lines.map(outcome))].sort(), ['failure', 'success', undefined])
  t.same(lines.filter(l => outcome(l) !== undefined && ['block', 'sinkhole'].includes(String((l.event as { action?: string } | undefined)?.action))).map(l => l.message), [],
    'no outcome on a block or sinkhole')
  for (const m of ['dns.query', 'proxy.connect', 'proxy.http', 'sinkhole.capture', 'dns upstream socket error', 'dns udp socket error',
    'reload rejected; keeping the previous config and lists', 'reload: admin.listen changed; listeners change only on restart',
    'reload: proxy.listen changed; listeners change only on restart', 'reloaded', 'alert webhook failed', 'alert webhook gave up',
    'reload held: the change weakens the protection']) {
    t.ok(messages.has(m), `a "${m}" line`)
  }
  t.ok([...messages].some(x => /^no file descriptor free/.test(String(x))), 'the descriptor warning')
  t.ok([...messages].some(x => /^no buffer space for a dns upstream socket/.test(String(x))), 'the ENOBUFS warning')
  const types = new Map<string, { type: string; message: unknown }>()
  const clashes: string[] = []
  for (const l of lines) {
    for (const [k, v] of leaves(l)) {
      const type = typeOf(v)
      if (type === undefined) continue
      const first = types.get(k)
      if (!first) types.set(k, { type, message: l.message })
      else if (first.type !== type) clashes.push(`${k}: ${first.type} on "${first.message}", ${type} on "${l.message}"`)
    }
  }
  t.same(clashes, [], 'one type per key')
  t.equal(types.get('tunnelguard.errors')?.type, 'long', 'the DNS socket notices\' count')
  for (const k of ['event.kind', 'event.outcome', 'destination.ip', 'destination.domain']) t.equal(types.get(k)?.type, 'string', k)
  t.equal(types.get('tunnelguard.reload_errors')?.type, 'string', 'a rejected reload\'s errors, a list of strings')
  t.equal(types.get('tunnelguard.listening')?.type, 'string', 'the addresses listened on: a list, admin\'s one address too')
})
