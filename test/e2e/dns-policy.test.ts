import t from 'tap'
import type { Test } from 'tap'
import { startDns } from '../../src/dns/server.js'
import type { ConfigInput } from '../../src/config/schema.js'
import type { Snapshot } from '../../src/snapshot-types.js'
import { memoryEvidence, type MemoryEvidence } from '../fixtures/evidence.js'
import { makeSnapshot, type TestLists } from '../fixtures/snapshot.js'
import { TEST_ZONE, startUnbound, type Unbound } from '../fixtures/unbound.js'
import { dig, kdig } from '../fixtures/dig.js'

const BLOCK: TestLists = { ngrok: { action: 'block', patterns: ['ngrok.io', 'ngrok-agent.com', 'ngrok-free.app'] }, tunnels: { action: 'alert', patterns: ['trycloudflare.com'] } }

interface Stack {
  ub: Unbound
  ev: MemoryEvidence
  server: { address: string; port: number }
  /** Swap the snapshot (as a reload does). */
  use(config?: ConfigInput, lists?: TestLists): void
}

async function stack(t: Test, config: ConfigInput = {}, lists?: TestLists): Promise<Stack> {
  const ub = await startUnbound(t)
  const ev = memoryEvidence()
  const mk = (c: ConfigInput, l?: TestLists): Snapshot => makeSnapshot({ config: { ...c, dns: { upstreams: [ub.url], ...c.dns } }, lists: l })
  let snap = mk(config, lists)
  const dns = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev })
  t.teardown(() => dns.close())
  return { ub, ev, server: dns.addresses[0]!, use: (c = {}, l) => { snap = mk(c, l) } }
}

t.test('DNS names that are no host names (RFC 2317, DNS-SD, a dot inside a label) are answered, decided as names under their longest host-name suffix', async t => {
  const ub = await startUnbound(t, { zone: [...TEST_ZONE,
    '10.2.0.192.in-addr.arpa. 300 IN CNAME 10.0/25.2.0.192.in-addr.arpa.',
    '10.0/25.2.0.192.in-addr.arpa. 300 IN PTR host10.test.',
    'office\\032printer._ipp._tcp.test. 300 IN SRV 0 0 631 a.test.',
    'cname-2317.test. 300 IN CNAME 10.0/25.2.0.192.in-addr.arpa.',
  ], server: ['local-zone: "2.0.192.in-addr.arpa." nodefault'] })   // unbound answers TEST-NET-1's reverse zone itself by default
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { dns: { upstreams: [ub.url] } }, lists: { ...BLOCK, ok: { action: 'block', patterns: ['@@a.test'] } } })
  const dns = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev })
  t.teardown(() => dns.close())
  const server = dns.addresses[0]!
  const ptr = await dig(server, '10.2.0.192.in-addr.arpa', 'PTR')
  t.equal(ptr.status, 'NOERROR', 'a PTR through an RFC 2317 CNAME: answered (it was NXDOMAIN, blocked as "unparseable")')
  t.same(ptr.answer.map(r => r.data), ['10.0/25.2.0.192.in-addr.arpa.', 'host10.test.'])
  t.match(ev.events.at(-1), { dns: { name: '10.2.0.192.in-addr.arpa' }, decision: { action: 'pass' } })
  const via = await kdig(server, 'cname-2317.test')
  t.equal(via.status, 'NOERROR', 'kdig: a CNAME to such a name is followed, not blocked')
  const srv = await dig(server, 'office\\032printer._ipp._tcp.test', 'SRV')
  t.equal(srv.status, 'NOERROR', 'a DNS-SD instance name with a space: answered')
  t.same(srv.answer.map(r => r.data), ['0 0 631 a.test.'])
  t.match(ev.events.at(-1), { dns: { name: 'office\\032printer._ipp._tcp.test' }, decision: { action: 'pass', unparseable: true, reason: /decided as a name under _ipp\._tcp\.test$/ } })
  // x\.a.test is two labels under test.: not a.test's (its allow entry does not apply), logged as dig writes it
  const dotted = await dig(server, 'x\\.a.test')
  t.equal(dotted.status, 'NXDOMAIN', 'asked upstream, which has no such name')
  t.match(ev.events.at(-1), { dns: { name: 'x\\.a.test' }, decision: { action: 'pass', unparseable: true, reason: /in "x\\\.a"\): decided as a name under test$/ } })
  // a listed suffix still decides: nothing under ngrok.io gets through by not being a host name
  const listed = await dig(server, 'my\\032agent.x.ngrok.io')
  t.equal(listed.status, 'NXDOMAIN')
  t.match(listed.ede, /^15 \(Blocked\).*ngrok\.io in list ngrok/)
  t.match(ev.events.at(-1), { dns: { name: 'my\\032agent.x.ngrok.io' }, decision: { action: 'block', list: 'ngrok', unparseable: true } })
})

t.test('block: NXDOMAIN with SOA and EDE naming list and entry; REFUSED; NODATA', async t => {
  const s = await stack(t, {}, BLOCK)
  const r = await dig(s.server, 'connect.ngrok-agent.com')
  t.equal(r.status, 'NXDOMAIN')
  t.equal(r.authority[0]!.type, 'SOA')
  t.equal(r.authority[0]!.ttl, 60)
  t.equal(r.authority[0]!.name, 'ngrok-agent.com.', 'the SOA is the listed zone\'s (RFC 2308 §3), not at the name that does not exist')
  t.equal((await dig(s.server, 'ngrok-agent.com')).authority[0]!.name, 'ngrok-agent.com.', 'the apex itself: its own')
  t.equal((await dig(s.server, 'A.B.NGROK-agent.COM')).authority[0]!.name, 'NGROK-agent.COM.', 'in the letter case asked (a pointer into the question)')
  t.match(r.ede, /^15 \(Blocked\).*ngrok-agent\.com in list ngrok/)
  const k = await kdig(s.server, 'connect.ngrok-agent.com', 'A', ['+edns'])
  t.match(k.ede, /^15 \(Blocked\).*ngrok-agent\.com in list ngrok/, 'kdig sees the EDE too')
  const plain = await dig(s.server, 'connect.ngrok-agent.com', 'A', ['+noedns'])
  t.equal(plain.status, 'NXDOMAIN')
  t.equal(plain.ede, undefined, 'no EDE without EDNS')
  t.match(s.ev.events[0], {
    message: 'dns.query', transport: 'udp', client: { ip: '127.0.0.1' },
    decision: { action: 'block', list: 'ngrok', where: 'qname', entry: { pattern: 'ngrok-agent.com' } },
    dns: { name: 'connect.ngrok-agent.com', type: 'A', rcode: 'NXDOMAIN' },
  })
  t.equal(s.ev.events.length, 5, 'the same blocked name asked again is logged again')
  t.equal(s.ev.counts['cache.miss'], undefined, 'a blocked name never reaches the cache or upstream')
  s.use({ dns: { blockResponse: 'refused' } }, BLOCK)
  t.equal((await dig(s.server, 'x.ngrok.io')).status, 'REFUSED', 'a reload applies at once')
  s.use({ dns: { blockResponse: 'nodata' } }, BLOCK)
  const nodata = await dig(s.server, 'x.ngrok.io')
  t.equal(nodata.status, 'NOERROR')
  t.same(nodata.answer, [])
  t.equal(nodata.authority[0]!.type, 'SOA')
  t.equal(nodata.authority[0]!.name, 'ngrok.io.')
})

t.test('sinkhole (the default for ngrok): A and AAAA to the null addresses, other types NODATA', async t => {
  const s = await stack(t)
  const a = await dig(s.server, 'tunnel.ngrok.io')
  t.same(a.answer.map(x => [x.type, x.data, x.ttl]), [['A', '0.0.0.0', 60]])
  const aaaa = await kdig(s.server, 'tunnel.ngrok.io', 'AAAA')
  t.same(aaaa.answer.map(x => [x.type, x.data]), [['AAAA', '::']])
  const txt = await dig(s.server, 'tunnel.ngrok.io', 'TXT')
  t.equal(txt.status, 'NOERROR')
  t.same(txt.answer, [])
  t.match(s.ev.events, [{ decision: { action: 'sinkhole' }, dns: { type: 'A' } }, { dns: { type: 'AAAA' } }, { dns: { type: 'TXT', rcode: 'NOERROR' } }])
  // another class than IN: decided the same, and the line says which class was asked
  const ch = await dig(s.server, 'tunnel.ngrok.io', 'TXT', ['-c', 'CH'])
  t.same(ch.answer, [], 'class CH: NODATA, as any other type of a sinkholed name')
  t.match(s.ev.events.at(-1), { decision: { action: 'sinkhole' }, dns: { name: 'tunnel.ngrok.io', type: 'TXT', class: 'CH' } })
  t.equal(s.ev.events[0]!.dns!.class, undefined, 'IN is left out')
  s.use({ sinkhole: { ipv4: '10.10.10.10', ipv6: 'fd00::10', ttl: '5s' } })
  t.same((await dig(s.server, 'tunnel.ngrok.io')).answer.map(x => [x.data, x.ttl]), [['10.10.10.10', 5]])
})

t.test('alert: answered normally and logged as an alert', async t => {
  const s = await stack(t)
  const r = await dig(s.server, 'x.trycloudflare.com')
  t.same(r.answer.map(x => x.data), ['198.51.100.8'])
  t.match(s.ev.events[0], { decision: { action: 'alert', list: 'tunnels' }, dns: { rcode: 'NOERROR', cacheHit: false } })
})

t.test('answer inspection: a CNAME chain or HTTPS target reaching a listed name decides the whole answer', async t => {
  const s = await stack(t)
  const r = await dig(s.server, 'c1.test')
  t.same(r.answer.map(x => [x.name, x.type, x.data]), [['c1.test.', 'A', '0.0.0.0']], 'the chain is replaced by the sinkhole answer')
  t.match(s.ev.events[0], { decision: { action: 'sinkhole', where: 'cname', name: 'x.ngrok.io' }, dns: { name: 'c1.test', upstream: s.ub.url } })
  const again = await dig(s.server, 'c1.test')
  t.same(again.answer.map(x => x.data), ['0.0.0.0'], 'also on a cache hit')
  t.match(s.ev.events[1], { decision: { where: 'cname' }, dns: { cacheHit: true } })
  const https = await kdig(s.server, 'svc.test', 'HTTPS')
  t.same(https.answer, [], 'HTTPS target t.ngrok-free.app: NODATA')
  t.match(s.ev.events[2], { decision: { action: 'sinkhole', where: 'cname', name: 't.ngrok-free.app' }, dns: { name: 'svc.test', type: 'HTTPS' } })
  const self = await dig(s.server, 'plainsvc.test', 'TYPE65')
  t.equal(self.answer.length, 1, 'an HTTPS record whose target is "." is answered')
  const dname = await kdig(s.server, 'dn.test', 'DNAME')
  t.same(dname.answer, [], 'DNAME target tunnels.ngrok-free.app: NODATA')
  t.match(s.ev.events.at(-1), { decision: { action: 'sinkhole', where: 'cname', name: 'tunnels.ngrok-free.app' }, dns: { name: 'dn.test', type: 'DNAME' } })
  const srv = await dig(s.server, '_tg._tcp.srv.test', 'SRV')
  t.same(srv.answer, [], 'SRV target edge.ngrok-agent.com: NODATA')
  t.match(s.ev.events.at(-1), { decision: { action: 'sinkhole', where: 'cname', name: 'edge.ngrok-agent.com' }, dns: { name: '_tg._tcp.srv.test', type: 'SRV' } })
  const okSrv = await dig(s.server, '_ok._tcp.srv.test', 'SRV')
  t.same(okSrv.answer.map(x => x.data), ['0 0 443 a.test.'], 'an SRV record to an unlisted target is answered')
  const alert = await dig(s.server, 'alert.test')
  t.same(alert.answer.map(x => x.data), ['x.trycloudflare.com.', '198.51.100.8'], 'an alert in the chain: answered')
  t.match(s.ev.events.at(-1), { decision: { action: 'alert', where: 'cname', name: 'x.trycloudflare.com' }, dns: { name: 'alert.test' } })
  s.use({}, BLOCK)
  const blocked = await dig(s.server, 'c1.test')
  t.equal(blocked.status, 'NXDOMAIN')
  t.match(blocked.ede, /via x\.ngrok\.io/)
  s.use({}, { ngrok: { action: 'block', patterns: ['ngrok.io', '@@c1.test'] } })
  t.equal((await dig(s.server, 'c1.test')).answer.length, 3, 'an allow exception on the question answers the chain as is')
  t.match(s.ev.events.at(-1), { decision: { action: 'allow', where: 'qname' } })
})

t.test('policy sits above the cache: a cached name is decided again after a reload', async t => {
  const s = await stack(t, {}, {})
  t.equal((await dig(s.server, 'tunnel.ngrok.io')).answer[0]!.data, '203.0.113.9')
  s.use({}, BLOCK)
  t.equal((await dig(s.server, 'tunnel.ngrok.io')).status, 'NXDOMAIN')
  s.use({}, {})
  const r = await dig(s.server, 'tunnel.ngrok.io')
  t.equal(r.answer[0]!.data, '203.0.113.9')
  t.match(s.ev.events.map(e => [e.decision.action, e.dns!.cacheHit]), [['pass', false], ['block', undefined], ['pass', true]])
})

t.test('against DoH bypass: the canary gets NXDOMAIN, DDR gets NODATA; both switchable', async t => {
  const s = await stack(t)
  const canary = await dig(s.server, 'use-application-dns.net')
  t.equal(canary.status, 'NXDOMAIN')
  const ddr = await dig(s.server, '_dns.resolver.arpa', 'TYPE64')
  t.equal(ddr.status, 'NOERROR')
  t.same(ddr.answer, [])
  t.match(s.ev.events, [{ dns: { name: 'use-application-dns.net', rcode: 'NXDOMAIN' } }, { dns: { name: '_dns.resolver.arpa', rcode: 'NOERROR' } }])
  t.same(s.ev.events.map(e => [e.decision.action, e.decision.reason]), [
    ['pass', 'the DoH canary: answered NXDOMAIN here (dns.dohCanary)'],
    ['pass', 'DDR discovery: answered NODATA here (dns.blockDdr)'],
  ], 'the line says the answer was made here, not "not listed"')
  s.use({}, { watch: { action: 'alert', patterns: ['use-application-dns.net'] } })
  t.equal((await dig(s.server, 'use-application-dns.net')).status, 'NXDOMAIN', 'a listed canary is still answered here')
  t.match(s.ev.events.at(-1)!.decision, { action: 'alert', reason: /^alert: use-application-dns\.net matches use-application-dns\.net in list watch/ }, 'and keeps its entry\'s reason')
  s.use({ dns: { dohCanary: false, blockDdr: false } })
  t.same((await dig(s.server, 'use-application-dns.net')).answer.map(x => x.data), ['192.0.2.50'], 'forwarded when off')
  t.equal((await dig(s.server, '_dns.resolver.arpa', 'TYPE64')).answer.length, 1)
})
