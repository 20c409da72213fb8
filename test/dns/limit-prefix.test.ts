// The DNS handler's per-client limits (dns.rateLimit, dns.maxInFlightPerClient) count an IPv6
// client by its prefix (limits.ipv6Prefix, /64 by default), so that rotating addresses in one
// /64 gets no fresh budget. Loopback has one IPv6 address (::1), so the handler is driven here
// with the client addresses a listener would hand it; test/e2e/limit-prefix.test.ts does it with
// real sockets in a network namespace of its own.
import t, { type Test } from 'tap'
import dnsPacket from 'dns-packet'
import type { Client } from '../../src/dns/client-access.js'
import { QueryHandler } from '../../src/dns/handler.js'
import type { ConfigInput } from '../../src/config/schema.js'
import type { Snapshot } from '../../src/snapshot-types.js'
import { memoryEvidence } from '../fixtures/evidence.js'
import { makeSnapshot } from '../fixtures/snapshot.js'
import { slowUpstream } from '../fixtures/slow-upstream.js'

const ALLOW = ['2001:db8::/32', '192.0.2.0/24']
/** The DoH canary: answered by the handler itself, after the rate limit (no upstream needed). */
const CANARY = 'use-application-dns.net'
const q = (name: string, id = 1): Buffer => dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] })
const from = (ip: string): Client => ({ ip, port: 5353, transport: 'udp' })

function setup(t: Test, config: ConfigInput) {
  let snap = makeSnapshot({ config: { ...config, dns: { allowClients: ALLOW, ...config.dns } } })
  const ev = memoryEvidence()
  const h = new QueryHandler({ getSnapshot: () => snap, evidence: ev, clock: process.hrtime.bigint })
  t.teardown(() => h.close())
  const ask = (ip: string, name = CANARY, id = 1): Promise<Buffer | undefined> => new Promise(r => h.handle(q(name, id), from(ip), r))
  const rcode = async (ip: string, name?: string, id?: number): Promise<number | 'dropped'> => {
    const r = await ask(ip, name, id)
    return r ? r.readUInt16BE(2) & 0xf : 'dropped'
  }
  const lines = (msg: string) => ev.messages.filter(m => m.msg === msg).map(m => m.fields)
  return { h, ev, rcode, lines, snap: () => snap, use: (s: Snapshot) => { snap = s } }
}

const withLimits = (s: Snapshot, limits: Snapshot['config']['limits']): Snapshot => ({ ...s, config: { ...s.config, limits } })
const NX = 3

t.test('rate limit: the addresses of one /64 share a bucket; the limit line names the prefix and the address', async t => {
  const { rcode, lines } = setup(t, { dns: { rateLimit: { qps: 0.001, burst: 2 } } })
  const rotating = ['2001:db8:1:2::a', '2001:db8:1:2::b', '2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:db8:1:2::d']
  const got = []
  for (const ip of rotating) got.push(await rcode(ip))
  t.same(got, [NX, NX, 'dropped', 'dropped'], 'four addresses of 2001:db8:1:2::/64: one burst of 2')
  t.equal(await rcode('2001:db8:1:3::a'), NX, 'the next /64 is another client')
  t.equal(await rcode('192.0.2.1'), NX)
  t.equal(await rcode('192.0.2.2'), NX, 'IPv4 by its address (ipv4Prefix 32): its own burst')
  t.same(lines('dns client rate limited'), [
    { 'client.ip': '2001:db8:1:2:ffff:ffff:ffff:ffff', clientPrefix: '2001:db8:1:2::/64', dropped: 1, qps: 0.001 },
  ], 'one line for the /64, naming the address whose query was dropped first')
})

t.test('rate limit: /128 counts each address, /56 a whole site, /24 an IPv4 network; IPv4-mapped counts as IPv4', async t => {
  const perAddress = setup(t, { dns: { rateLimit: { qps: 0.001, burst: 1 } }, limits: { ipv6Prefix: 128 } })
  const got = []
  for (const ip of ['2001:db8:1:2::a', '2001:db8:1:2::b', '2001:db8:1:2::a']) got.push(await perAddress.rcode(ip))
  t.same(got, [NX, NX, 'dropped'], 'at /128 each address has its own bucket')
  t.same(perAddress.lines('dns client rate limited'), [{ 'client.ip': '2001:db8:1:2::a', dropped: 1, qps: 0.001 }], 'no prefix named: the address is the client')

  const site = setup(t, { dns: { rateLimit: { qps: 0.001, burst: 1 } }, limits: { ipv6Prefix: 56, ipv4Prefix: 24 } })
  t.equal(await site.rcode('2001:db8:1:200::1'), NX)
  t.equal(await site.rcode('2001:db8:1:2ff::1'), 'dropped', 'another /64 of the same /56')
  t.equal(await site.rcode('2001:db8:1:300::1'), NX, 'the next /56')
  t.equal(await site.rcode('192.0.2.1'), NX)
  t.equal(await site.rcode('192.0.2.99'), 'dropped', 'the same IPv4 /24')
  t.equal(await site.rcode('::ffff:192.0.2.7'), 'dropped', 'IPv4-mapped: the IPv4 /24, not an IPv6 /56')
  t.same(site.lines('dns client rate limited'), [
    { 'client.ip': '2001:db8:1:2ff::1', clientPrefix: '2001:db8:1:200::/56', dropped: 1, qps: 0.001 },
    { 'client.ip': '192.0.2.99', clientPrefix: '192.0.2.0/24', dropped: 1, qps: 0.001 },
  ])
})

t.test('a reload that changes only limits applies the prefix at once (a fresh limiter)', async t => {
  const { rcode, snap, use } = setup(t, { dns: { rateLimit: { qps: 0.001, burst: 1 } } })
  t.equal(await rcode('2001:db8:1:2::a'), NX)
  t.equal(await rcode('2001:db8:1:2::b'), 'dropped', '/64: one client')
  const base = snap()
  use(withLimits(base, { ipv4Prefix: 32, ipv6Prefix: 128 }))
  t.equal(snap().config.dns, base.config.dns, 'the same dns settings')
  t.equal(await rcode('2001:db8:1:2::b'), NX, '/128 after the reload: its own bucket')
  t.equal(await rcode('2001:db8:1:2::c'), NX)
  t.equal(await rcode('2001:db8:1:2::c'), 'dropped')
  use(withLimits(base, { ipv4Prefix: 32, ipv6Prefix: 128 }))
  t.equal(await rcode('2001:db8:1:2::c'), 'dropped', 'equal prefixes in a new config object: the buckets are kept')
})

t.test('in flight: one /64 shares maxInFlightPerClient; queries keep the key they were counted under across a reload', async t => {
  const slow = await slowUpstream(t, 300, { answers: m => [{ type: 'A', name: m.questions![0]!.name, ttl: 60, data: '192.0.2.7' }] })
  const { h, rcode, lines, snap, use, ev } = setup(t, { dns: { upstreams: [slow.url], maxInFlightPerClient: 2 } })
  let n = 0
  const ask = (ip: string) => rcode(ip, `n${++n}.a.test`, n)
  const first = [ask('2001:db8:1:2::a'), ask('2001:db8:1:2::b')]
  t.equal(h.pending, 2)
  t.same(await Promise.all([ask('2001:db8:1:2::c'), ask('2001:db8:1:2::d')]), [2, 2], 'SERVFAIL at once: the /64 has its 2 in flight')
  const other = ask('2001:db8:1:3::a')
  t.equal(h.pending, 3, 'another /64 is forwarded')
  t.same(lines('dns client over its in-flight limit'), [
    { 'client.ip': '2001:db8:1:2::c', clientPrefix: '2001:db8:1:2::/64', servfail: 1, maxInFlightPerClient: 2 },
  ])
  // a reload to /128 while two queries of the /64 are in flight: the addresses are clients of their own now
  const base = snap()
  use(withLimits(base, { ipv4Prefix: 32, ipv6Prefix: 128 }))
  const after = [ask('2001:db8:1:2::c'), ask('2001:db8:1:2::c')]
  t.equal(h.pending, 5, 'forwarded under the new key')
  t.same(await Promise.all([...first, other, ...after]), [0, 0, 0, 0, 0])
  t.equal(h.pending, 0)
  // back to /64: had the queries counted under the /64 been settled under their /128 keys, the /64 would still count 2
  use(base)
  const again = [ask('2001:db8:1:2::e'), ask('2001:db8:1:2::f')]
  t.equal(h.pending, 2, 'the /64 has its whole share again')
  t.same(await Promise.all(again), [0, 0])
  t.equal(ev.counts['dropped.overload'], 2)
})
