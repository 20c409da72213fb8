import t from 'tap'
import type { Test } from 'tap'
import { startDns, type DnsService } from '../../src/dns/server.js'
import type { ConfigInput } from '../../src/config/schema.js'
import type { Snapshot } from '../../src/snapshot-types.js'
import { createPtrResolver } from '../../src/observe/ptr.js'
import { createResolver } from '../../src/dns/resolve.js'
import { memoryEvidence, type MemoryEvidence } from '../fixtures/evidence.js'
import { makeSnapshot } from '../fixtures/snapshot.js'
import { freePort, startUnbound, type Unbound } from '../fixtures/unbound.js'
import { dig, kdig } from '../fixtures/dig.js'

/**
 * The internal server of a company network: it alone knows corp.test and the reverse names of
 * 10.0.0.0/8 (as an Active Directory DNS server does). Its a.test (the readiness probe's name)
 * answers 192.0.2.99, so that an answer tells which server gave it.
 */
const INTERNAL_ZONE = [
  '. 3600 IN SOA ns.test. host.test. 1 3600 600 86400 30',
  '. 3600 IN NS ns.test.',
  'ns.test. 300 IN A 127.0.0.1',
  'a.test. 300 IN A 192.0.2.99',
  'host.corp.test. 300 IN A 10.1.1.1',
  'x.lab.corp.test. 300 IN A 10.2.2.2',
  '_ldap._tcp.dc._msdcs.corp.test. 300 IN SRV 0 100 389 dc1.corp.test.',
  'dc1.corp.test. 300 IN A 10.0.0.10',
  '5.0.0.10.in-addr.arpa. 300 IN PTR pc5.corp.test.',
  'c.corp.test. 300 IN CNAME x.ngrok.io.',
  'x.ngrok.io. 300 IN A 198.51.100.7',
]

/** unbound answers the private reverse zones itself (NXDOMAIN) unless told not to. */
const INTERNAL = { zone: INTERNAL_ZONE, server: ['local-zone: "10.in-addr.arpa." nodefault'] }

interface Stack {
  dns: DnsService
  ev: MemoryEvidence
  server: { address: string; port: number }
  pub: Unbound
  corp: Unbound
  /** Swap in another config, as a reload does. */
  set(config: (s: { pub: Unbound; corp: Unbound }) => ConfigInput['dns']): void
}

async function stack(t: Test, config: (s: { pub: Unbound; corp: Unbound }) => ConfigInput['dns']): Promise<Stack> {
  const pub = await startUnbound(t)
  const corp = await startUnbound(t, INTERNAL)
  const ev = memoryEvidence()
  const make = (c: typeof config): Snapshot => makeSnapshot({ config: { dns: { timeout: '600ms', ...c({ pub, corp }) } } })
  let snap = make(config)
  const dns = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev })
  t.teardown(() => dns.close())
  return { dns, ev, server: dns.addresses[0]!, pub, corp, set: c => { snap = make(c) } }
}

t.test('a name in a forward zone goes to its upstreams, any other name to dns.upstreams', async t => {
  const s = await stack(t, ({ pub, corp }) => ({ upstreams: [pub.url], forwardZones: { 'corp.test': [corp.url], '10.in-addr.arpa': [corp.url] } }))
  const host = await dig(s.server, 'host.corp.test', 'A')
  t.equal(host.status, 'NOERROR')
  t.same(host.answer.map(a => a.data), ['10.1.1.1'], 'the internal server answers its zone')
  const upper = await kdig(s.server, 'HOST.Corp.TEST', 'A', ['+tcp'])
  t.same(upper.answer.map(a => a.data), ['10.1.1.1'], 'whatever the letter case, and over TCP')
  const srv = await dig(s.server, '_ldap._tcp.dc._msdcs.corp.test', 'SRV')
  t.same(srv.answer.map(a => a.data), ['0 100 389 dc1.corp.test.'], 'names below the zone, underscores and all')
  const ptr = await dig(s.server, '5.0.0.10.in-addr.arpa', 'PTR')
  t.same(ptr.answer.map(a => a.data), ['pc5.corp.test.'], 'a reverse zone')
  const other = await dig(s.server, 'a.test', 'A')
  t.same(other.answer.map(a => a.data), ['192.0.2.1'], 'a name outside the zones goes to dns.upstreams')
  const outside = await dig(s.server, 'corp.test.example', 'A')
  t.equal(outside.status, 'NXDOMAIN', 'a name that only ends in the zone\'s letters is not in it')
  t.same(s.ev.events.map(e => [e.dns?.name, e.dns?.upstream]), [
    ['host.corp.test', s.corp.url], ['host.corp.test', s.corp.url], ['_ldap._tcp.dc._msdcs.corp.test', s.corp.url],
    ['5.0.0.10.in-addr.arpa', s.corp.url], ['a.test', s.pub.url], ['corp.test.example', s.pub.url],
  ], 'each decision line names the upstream that answered')
})

t.test('the longest zone wins; policy comes first, CNAME targets included', async t => {
  const s = await stack(t, ({ pub, corp }) => ({ upstreams: [pub.url], forwardZones: { 'corp.test': [corp.url], 'lab.corp.test.': [pub.url] } }))
  const lab = await dig(s.server, 'x.lab.corp.test', 'A')
  t.equal(lab.status, 'NXDOMAIN', 'lab.corp.test goes to the server named for it, which does not know it')
  t.same((await dig(s.server, 'host.corp.test', 'A')).answer.map(a => a.data), ['10.1.1.1'])
  const listed = await dig(s.server, 'c.corp.test', 'A')
  t.same(listed.answer.filter(a => a.type === 'A').map(a => a.data), ['0.0.0.0'], 'an internal CNAME into a listed name is sinkholed')
  t.match(s.ev.events.at(-1), { decision: { action: 'sinkhole' }, dns: { upstream: s.corp.url } })
})

t.test('failover within a zone; a zone whose servers are all dead gets SERVFAIL, not dns.upstreams', async t => {
  const dead = `udp://127.0.0.1:${await freePort()}`
  const s = await stack(t, ({ pub, corp }) => ({ upstreams: [pub.url], forwardZones: { 'corp.test': [dead, corp.url], 'gone.test': [dead] } }))
  t.same((await dig(s.server, 'host.corp.test', 'A')).answer.map(a => a.data), ['10.1.1.1'], 'the zone\'s second server answers')
  t.match(s.ev.events.at(-1), { dns: { upstream: s.corp.url } })
  const t0 = Date.now()
  const gone = await dig(s.server, 'x.gone.test', 'A')
  t.equal(gone.status, 'SERVFAIL', 'an internal name never leaks to the public resolvers')
  t.ok(Date.now() - t0 < 1500, 'within dns.timeout')
  t.same((await dig(s.server, 'a.test', 'A')).answer.map(a => a.data), ['192.0.2.1'], 'and other names are still answered')
})

t.test('a reload adds, moves and removes zones; an upstream in two places keeps one health', async t => {
  const s = await stack(t, ({ pub }) => ({ upstreams: [pub.url] }))
  t.equal((await dig(s.server, 'host.corp.test', 'A')).status, 'NXDOMAIN', 'no zone yet: the public server does not know it')
  s.set(({ pub, corp }) => ({ upstreams: [pub.url], forwardZones: { 'corp.test': [corp.url] } }))
  t.same((await dig(s.server, 'host.corp.test', 'A')).answer.map(a => a.data), ['10.1.1.1'],
    'at once: the answers of the old upstreams are not served from the cache')
  s.set(({ pub, corp }) => ({ upstreams: [corp.url], forwardZones: { 'test': [pub.url, corp.url] } }))
  t.same((await dig(s.server, 'a.test', 'AAAA')).answer.map(a => a.data), ['2001:db8::1'], 'the zone test. now goes to the public server first')
  t.same((await dig(s.server, '5.0.0.10.in-addr.arpa', 'PTR')).answer.map(a => a.data), ['pc5.corp.test.'], 'and the rest to the new default')
  s.set(({ pub }) => ({ upstreams: [pub.url] }))
  t.equal((await dig(s.server, '5.0.0.10.in-addr.arpa', 'TXT')).status, 'NXDOMAIN', 'zones gone: back to dns.upstreams')
})

t.test('PTR lookups for client names use the reverse zone', async t => {
  const pub = await startUnbound(t)
  const corp = await startUnbound(t, INTERNAL)
  const r = createPtrResolver({ evidence: memoryEvidence(), upstreams: [pub.url], timeoutMs: 1000, zones: { '10.in-addr.arpa': [corp.url] } })
  t.teardown(() => r.close())
  const ask = (ip: string) => new Promise<[Error | undefined, string | undefined]>(res => r.lookup(ip, (e, n) => res([e, n])))
  t.same(await ask('10.0.0.5'), [undefined, 'pc5.corp.test'])
  r.update([corp.url], 1000, {})
  t.same(await ask('10.0.0.5'), [undefined, 'pc5.corp.test'], 'the same server as the default')
  r.update([pub.url], 1000)
  t.same(await ask('10.0.0.5'), [undefined, undefined], 'without the zone the public server has no PTR for it')
})

t.test('the proxy resolves the names it dials through the same zones', async t => {
  const pub = await startUnbound(t)
  const corp = await startUnbound(t, INTERNAL)
  const snap = makeSnapshot({ config: { dns: { upstreams: [pub.url], forwardZones: { 'corp.test': [corp.url] } } } })
  const r = createResolver({ getSnapshot: () => snap, evidence: memoryEvidence() })
  t.teardown(() => r.close())
  t.same(await r.resolve('host.corp.test'), { addresses: ['10.1.1.1'], cnames: [] })
  t.same(await r.resolve('c.corp.test'), { addresses: ['198.51.100.7'], cnames: ['x.ngrok.io'] }, 'with the CNAME chain the proxy decides')
  t.same((await r.resolve('a.test')).addresses, ['192.0.2.1', '2001:db8::1'])
})
