import t from 'tap'
import dnsPacket from 'dns-packet'
import { decodeMsg, optRr } from '../fixtures/dig.js'
import { DnsCache } from '../../src/dns/cache.js'
import { KeyWriter } from '../../src/dns/cache-key.js'
import { AnswerSlab, MAX_RECORD, RECORD_SIZES } from '../../src/dns/answer-slab.js'
import { scanResponse } from '../../src/dns/scan.js'
import { parseQuery, type Query } from '../../src/dns/wire.js'

const S = 1_000_000_000n
const q = (name: string, extra: Partial<dnsPacket.Packet> = {}, id = 5): { buf: Buffer; q: Query } => {
  const buf = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }], ...extra })
  return { buf, q: parseQuery(buf) as Query }
}
const reply = (name: string, p: Partial<dnsPacket.Packet>): Buffer =>
  dnsPacket.encode({ type: 'response', id: 777, flags: 0x8180, questions: [{ type: 'A', name }], ...p })
const soa = (ttl: number, minimum: number): dnsPacket.Answer => ({
  type: 'SOA', name: 'test', ttl, data: { mname: 'ns.test', rname: 'h.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum },
})
const settings = { maxEntries: 100, minTtl: 0, maxTtl: 86_400_000 }

const keyOf = (a: { buf: Buffer; q: Query }): string => {
  const k = new KeyWriter(0)
  if (!k.write(a.buf, a.q)) throw new Error('no key')
  return k.buf.toString('hex', 0, k.length)
}

t.test('the key: name, type, class, DO, CD, EDNS, RD', async t => {
  const opt = (flags = 0): dnsPacket.Answer => optRr(1232, flags)
  const keys = new Set([
    keyOf(q('a.test')),
    keyOf(q('A.TEST')),
    keyOf(q('a.test', { flags: dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED })),
    keyOf(q('a.test', { additionals: [opt()] })),
    keyOf(q('a.test', { additionals: [opt(dnsPacket.DNSSEC_OK)] })),
    keyOf(q('b.test')),
    keyOf(q('a.test', { questions: [{ type: 'AAAA', name: 'a.test' }] })),
    keyOf(q('a.test', { questions: [{ type: 'A', name: 'a.test', class: 'CH' }] })),
    keyOf(q('a.test', { flags: 0 })),
  ])
  t.equal(keys.size, 8, 'case folds; type, class, CD, EDNS, DO and RD each make their own entry')
})

t.test('the key: AD without DO (RFC 6840 §5.7-5.8: the reply\'s AD follows the query\'s AD or DO)', async t => {
  const AD = dnsPacket.AUTHENTIC_DATA
  const RD = dnsPacket.RECURSION_DESIRED
  const opt = (flags = 0): dnsPacket.Answer => optRr(1232, flags)
  t.not(keyOf(q('a.test', { flags: RD | AD })), keyOf(q('a.test')), 'AD, no EDNS')
  t.not(keyOf(q('a.test', { flags: RD | AD, additionals: [opt()] })), keyOf(q('a.test', { additionals: [opt()] })), 'AD, EDNS without DO')
  t.not(keyOf(q('a.test', { flags: AD })), keyOf(q('a.test', { flags: 0 })), 'AD, RD clear')
  t.not(keyOf(q('a.test', { flags: RD | AD | dnsPacket.CHECKING_DISABLED })), keyOf(q('a.test', { flags: RD | dnsPacket.CHECKING_DISABLED })), 'AD and CD')
  t.equal(keyOf(q('a.test', { flags: RD | AD, additionals: [opt(dnsPacket.DNSSEC_OK)] })), keyOf(q('a.test', { additionals: [opt(dnsPacket.DNSSEC_OK)] })),
    'with DO the reply has AD either way: one key')
  const c = new DnsCache(settings)
  const withAd = q('a.test', { flags: RD | AD })
  const plain = q('a.test')
  const r = reply('a.test', { flags: 0x81a0, answers: [{ type: 'A', name: 'a.test', ttl: 300, data: '192.0.2.1' }] })
  t.ok(c.set(withAd.buf, withAd.q, r, scanResponse(r)!, 'u', 0n))
  t.equal(c.get(plain.buf, plain.q, 0n), -1, 'an answer with AD is not served to a query without AD')
  t.not(c.get(withAd.buf, withAd.q, 0n), -1)
})

/** A query whose question is one label holding a dot: `a.test` as text, but not the name a.test. */
const dotted = (): { buf: Buffer; q: Query } => {
  const buf = Buffer.concat([Buffer.from([0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 6]), Buffer.from('a.test'), Buffer.from([0, 0, 1, 0, 1])])
  return { buf, q: parseQuery(buf) as Query }
}

t.test('a label holding a dot is not the two labels it reads as', async t => {
  const one = dotted()
  t.equal(one.q.name, 'a\\.test', 'its text has the dot escaped, as presentation form writes it')
  t.not(keyOf(one), keyOf(q('a.test')), 'the keys differ')
  const c = new DnsCache(settings)
  const nx = dnsPacket.encode({ type: 'response', id: 9, flags: 0x8183, questions: [{ type: 'A', name: 'x' }], authorities: [soa(3600, 300)] })
  t.ok(c.set(one.buf, one.q, nx, scanResponse(nx)!, 'u', 0n), 'the one-label name\'s NXDOMAIN is cached')
  const real = q('a.test')
  t.equal(c.get(real.buf, real.q, 0n), -1, 'and is not served for a.test')
  t.not(c.get(one.buf, one.q, 0n), -1, 'only for the name it was asked for')
})

t.test('positive answers: kept for the smallest TTL, counted down when served', async t => {
  const c = new DnsCache(settings)
  const k = q('A.Test', {}, 4242)
  const r = reply('a.test', { answers: [{ type: 'A', name: 'a.test', ttl: 300, data: '192.0.2.1' }, { type: 'A', name: 'a.test', ttl: 100, data: '192.0.2.2' }] })
  const scan = scanResponse(r)!
  t.ok(c.set(k.buf, k.q, r, scan, 'udp://u', 0n))
  t.equal(c.size, 1)
  const e = c.get(k.buf, k.q, 30n * S)
  t.not(e, -1)
  t.equal(c.upstream(e), 'udp://u')
  t.equal(c.rcode(e), 0)
  t.same(c.targets(e), [], 'no CNAME: no targets')
  const served = decodeMsg(c.serve(e, k.buf, k.q.qEnd, 30n * S))
  t.equal(served.id, 4242, 'the asker\'s ID')
  t.equal(served.questions![0]!.name, 'A.Test', 'the asker\'s letter case')
  t.same(served.answers!.map(a => a.ttl), [270, 70], 'TTLs counted down by 30 s')
  t.same(decodeMsg(c.serve(e, k.buf, k.q.qEnd, 0n)).answers!.map(a => a.ttl), [300, 100], 'not counted at 0 s')
  t.same(decodeMsg(c.serve(e, k.buf, k.q.qEnd, 150n * S)).answers.map(a => a.ttl), [150, 0], 'never below 0')
  const lower = q('a.test', {}, 1)
  t.equal(c.get(lower.buf, lower.q, 30n * S), e, 'found by the same name in other letters')
  t.equal(c.get(k.buf, k.q, 100n * S), -1, 'expired at the smallest TTL')
  t.equal(c.size, 0, 'and removed')
  t.equal(c.records, 0, 'its record released')
  const shifted = Buffer.concat([k.buf.subarray(0, 12), Buffer.from([0xc0, 12])])
  t.equal(decodeMsg(c.serve(e, shifted, 14, 0n)).questions![0]!.name, 'a.test', 'question left alone when its length differs')
})

t.test('min/max clamps rewrite TTLs and the lifetime', async t => {
  const c = new DnsCache({ maxEntries: 10, minTtl: 60_000, maxTtl: 120_000 })
  const r = reply('a.test', { answers: [{ type: 'A', name: 'a.test', ttl: 5, data: '192.0.2.1' }, { type: 'A', name: 'a.test', ttl: 9999, data: '192.0.2.2' }] })
  const k = q('a.test')
  t.ok(c.set(k.buf, k.q, r, scanResponse(r)!, 'u', 0n))
  const e = c.get(k.buf, k.q, 59n * S)
  t.same(decodeMsg(c.serve(e, k.buf, k.q.qEnd, 59n * S)).answers!.map(a => a.ttl), [1, 61])
  t.equal(c.get(k.buf, k.q, 60n * S), -1)
  const zero = reply('a.test', { answers: [{ type: 'A', name: 'a.test', ttl: 0, data: '192.0.2.1' }] })
  t.equal(new DnsCache(settings).ttlFor(scanResponse(zero)!), 0, 'TTL 0 is not cached without a min clamp')
  t.notOk(new DnsCache(settings).set(k.buf, k.q, zero, scanResponse(zero)!, 'u', 0n))
  t.equal(c.ttlFor(scanResponse(zero)!), 60)
  // every record over maxTtl: the entry lives maxTtl, not its records' TTL (served at TTL 0 past it)
  const long = reply('long.test', { answers: [{ type: 'A', name: 'long.test', ttl: 9999, data: '192.0.2.3' }] })
  const l = q('long.test')
  t.equal(c.ttlFor(scanResponse(long)!), 120, 'cut to maxTtl')
  t.ok(c.set(l.buf, l.q, long, scanResponse(long)!, 'u', 0n))
  const le = c.get(l.buf, l.q, 119n * S)
  t.not(le, -1)
  t.same(decodeMsg(c.serve(le, l.buf, l.q.qEnd, 119n * S)).answers!.map(a => a.ttl), [1])
  t.equal(c.get(l.buf, l.q, 120n * S), -1, 'expired at maxTtl')
})

t.test('set clamps the TTLs of the reply itself: the client whose query fills the cache gets what the hits get', async t => {
  const settings = { maxEntries: 10, minTtl: 60_000, maxTtl: 3_600_000 }
  const k = q('a.test', { additionals: [optRr(1232, dnsPacket.DNSSEC_OK)] })
  const fresh = (): Buffer => reply('a.test', {
    answers: [{ type: 'A', name: 'a.test', ttl: 5, data: '192.0.2.1' }, { type: 'A', name: 'a.test', ttl: 604_800, data: '192.0.2.2' },
      { type: 'A', name: 'a.test', ttl: 300, data: '192.0.2.3' }],
    authorities: [soa(7, 30)],
    additionals: [optRr(1232, dnsPacket.DNSSEC_OK)],
  })
  const c = new DnsCache(settings)
  const r = fresh()
  t.ok(c.set(k.buf, k.q, r, scanResponse(r)!, 'u', 0n))
  const first = decodeMsg(r)
  t.same(first.answers.map(a => a.ttl), [60, 3600, 300], 'raised to minTtl, cut to maxTtl, the rest as they were')
  t.same(first.authorities.map(a => a.ttl), [60])
  t.equal(first.additionals[0]!.flags, dnsPacket.DNSSEC_OK, 'the OPT record\'s TTL field (its flags) is not a TTL')
  const hit = c.serve(c.get(k.buf, k.q, 0n), k.buf, k.q.qEnd, 0n)
  t.ok(hit.subarray(2).equals(r.subarray(2)), 'a hit at once: the same bytes but for the ID')
  const off = new DnsCache({ ...settings, maxEntries: 0 })
  const r2 = fresh()
  t.notOk(off.set(k.buf, k.q, r2, scanResponse(r2)!, 'u', 0n), 'the cache off: not stored')
  t.same(decodeMsg(r2).answers.map(a => a.ttl), [60, 3600, 300], 'clamped all the same')
})

t.test('set clears AA and sets RA in the reply itself and in what the cache serves; the other bits are the upstream\'s', async t => {
  const c = new DnsCache(settings)
  const k = q('a.test')
  const a = [{ type: 'A' as const, name: 'a.test', ttl: 300, data: '192.0.2.1' }]
  const cases: [number, number, string][] = [
    [0x8500, 0x8180, 'AA and RD from an authoritative server: RD, RA'],
    [0x8400, 0x8080, 'AA, RD clear: RA only'],
    [0x85a0, 0x81a0, 'RA and AD kept, AA cleared'],
    [0x8190, 0x8190, 'RD, RA, CD: as they were'],
    [0x8503, 0x8183, 'NXDOMAIN: the rcode kept'],
  ]
  for (const [from, to, what] of cases) {
    const nx = (from & 0xf) === 3
    const r = reply('a.test', { flags: from, answers: nx ? [] : a, authorities: nx ? [soa(30, 30)] : [] })
    t.ok(c.set(k.buf, k.q, r, scanResponse(r)!, 'u', 0n))
    t.equal(r.readUInt16BE(2), to, `${what}: the reply sent`)
    t.equal(c.serve(c.get(k.buf, k.q, 0n), k.buf, k.q.qEnd, 0n).readUInt16BE(2), to, `${what}: from the cache`)
  }
  const refused = reply('a.test', { flags: 0x8405 })
  t.notOk(c.set(k.buf, k.q, refused, scanResponse(refused)!, 'u', 0n))
  t.equal(refused.readUInt16BE(2), 0x8085, 'an answer not cached: AA clear, RA set too')
})

t.test('negative answers by their SOA; the rest not at all', async t => {
  const c = new DnsCache(settings)
  const nx = reply('n.test', { flags: 0x8183, authorities: [soa(3600, 30)] })
  t.equal(c.ttlFor(scanResponse(nx)!), 30, 'NXDOMAIN: SOA MINIMUM')
  const nodata = reply('n.test', { authorities: [soa(20, 300)] })
  t.equal(c.ttlFor(scanResponse(nodata)!), 20, 'NODATA: SOA TTL')
  t.equal(c.ttlFor(scanResponse(reply('n.test', { flags: 0x8183 }))!), -1, 'NXDOMAIN without SOA')
  t.equal(c.ttlFor(scanResponse(reply('n.test', {}))!), -1, 'NODATA without SOA')
  t.equal(c.ttlFor(scanResponse(reply('n.test', { flags: 0x8182, authorities: [soa(20, 300)] }))!), -1, 'SERVFAIL')
  t.equal(c.ttlFor(scanResponse(reply('n.test', { flags: 0x8185 }))!), -1, 'REFUSED')
  t.equal(c.ttlFor(scanResponse(reply('n.test', { flags: 0x8380, answers: [{ type: 'A', name: 'n.test', ttl: 9, data: '1.1.1.1' }] }))!), -1, 'truncated')
  const k = q('n.test')
  t.ok(c.set(k.buf, k.q, nx, scanResponse(nx)!, 'u', 0n))
  t.equal(decodeMsg(c.serve(c.get(k.buf, k.q, 10n * S), k.buf, k.q.qEnd, 10n * S)).rcode, 'NXDOMAIN')
  t.equal(c.rcode(c.get(k.buf, k.q, 10n * S)), 3)
  t.equal(c.get(k.buf, k.q, 30n * S), -1)
})

t.test('an answer through a CNAME lives no longer than the CNAME, nor a negative one than its SOA\'s negative TTL', async t => {
  const c = new DnsCache(settings)
  const cname = (ttl: number): dnsPacket.Answer => ({ type: 'CNAME', name: 'cnx.test', ttl, data: 'nothere.test' })
  const ttl = (p: Partial<dnsPacket.Packet>): number => c.ttlFor(scanResponse(reply('cnx.test', p))!)
  t.equal(ttl({ flags: 0x8183, answers: [cname(10)], authorities: [soa(30, 30)] }), 10, 'NXDOMAIN through a CNAME of 10 s: 10, not the SOA\'s 30')
  t.equal(ttl({ flags: 0x8183, answers: [cname(300)], authorities: [soa(3600, 30)] }), 30, 'NXDOMAIN through a CNAME of 300 s: the SOA MINIMUM')
  t.equal(ttl({ answers: [cname(300)], authorities: [soa(3600, 30)] }), 30, 'NODATA through a CNAME: the SOA MINIMUM, not the SOA\'s TTL')
  t.equal(ttl({ answers: [cname(10)], authorities: [soa(3600, 30)] }), 10, 'NODATA through a shorter CNAME: the CNAME\'s')
  t.equal(ttl({ flags: 0x8183, authorities: [soa(30, 60)], additionals: [{ type: 'A', name: 'x.test', ttl: 7, data: '192.0.2.1' }] }), 7,
    'any record it carries counts')
  t.equal(ttl({ flags: 0x8183, answers: [cname(10)] }), -1, 'NXDOMAIN through a CNAME, without SOA: not cached')
  t.equal(new DnsCache({ ...settings, minTtl: 60_000 }).ttlFor(scanResponse(reply('cnx.test', { flags: 0x8183, answers: [cname(10)], authorities: [soa(30, 30)] }))!), 60,
    'then clamped')
  const nx = reply('cnx.test', { flags: 0x8183, answers: [cname(10)], authorities: [soa(30, 30)] })
  const k = q('cnx.test')
  t.ok(c.set(k.buf, k.q, nx, scanResponse(nx)!, 'u', 0n))
  t.same(decodeMsg(c.serve(c.get(k.buf, k.q, 9n * S), k.buf, k.q.qEnd, 9n * S)).answers.map(a => a.ttl), [1])
  t.equal(c.get(k.buf, k.q, 10n * S), -1, 'gone when the CNAME expires, not served with TTL 0 until the SOA\'s 30 s')
})

t.test('bounded by maxEntries; 0 turns it off', async t => {
  const c = new DnsCache({ ...settings, maxEntries: 2 })
  const r = reply('a.test', { answers: [{ type: 'A', name: 'a.test', ttl: 300, data: '192.0.2.1' }] })
  const s = scanResponse(r)!
  const ks = ['1.test', '2.test', '3.test'].map(n => q(n))
  for (const k of ks) c.set(k.buf, k.q, r, s, 'u', 0n)
  t.equal(c.size, 2)
  t.equal(c.records, 2, 'the evicted entry\'s record released')
  t.equal(c.get(ks[0]!.buf, ks[0]!.q, 0n), -1, 'least recently used evicted')
  t.not(c.get(ks[2]!.buf, ks[2]!.q, 0n), -1)
  c.set(ks[2]!.buf, ks[2]!.q, r, s, 'u', 0n)
  t.equal(c.records, 2, 'stored again under its key: the old record released')
  const off = new DnsCache({ ...settings, maxEntries: 0 })
  t.notOk(off.set(ks[0]!.buf, ks[0]!.q, r, s, 'u', 0n))
  t.equal(off.get(ks[0]!.buf, ks[0]!.q, 0n), -1)
  t.equal(off.size, 0)
})

t.test('two keys with the same hash: neither is served for the other', async t => {
  const seed = 12345
  const seen = new Map<number, string>()
  const key = new KeyWriter(seed)
  let pair: [string, string] | undefined
  let apart: [string, string] | undefined            // a pair whose keys differ in length too
  for (let i = 0; i < 600_000 && !(pair && apart); i++) {
    const name = i % 2 === 0 ? `n${i}.test` : `n${i}.xtest`
    const a = q(name)
    key.write(a.buf, a.q)
    const h = key.hash
    const other = seen.get(h)
    if (other === undefined) seen.set(h, name)
    else if (other.length === name.length) pair ??= [other, name]
    else apart ??= [other, name]
  }
  if (!pair || !apart) return t.fail('no two names with one hash among 600k (a 30-bit hash: expected near 2^15)')
  const [x, y] = apart.map(n => q(n))
  const cx = new DnsCache(settings, undefined, seed)
  const rx = reply(apart[0], { answers: [{ type: 'A', name: apart[0], ttl: 300, data: '192.0.2.7' }] })
  t.ok(cx.set(x!.buf, x!.q, rx, scanResponse(rx)!, 'u', 0n))
  t.equal(cx.get(y!.buf, y!.q, 0n), -1, `${apart[1]} (another length, the same hash) is not served ${apart[0]}'s answer`)
  const [a, b] = pair.map(n => q(n))
  const c = new DnsCache(settings, undefined, seed)
  const ra = reply(pair[0], { answers: [{ type: 'A', name: pair[0], ttl: 300, data: '192.0.2.1' }] })
  const rb = reply(pair[1], { answers: [{ type: 'A', name: pair[1], ttl: 300, data: '192.0.2.2' }] })
  t.ok(c.set(a!.buf, a!.q, ra, scanResponse(ra)!, 'u', 0n))
  t.equal(c.get(b!.buf, b!.q, 0n), -1, `${pair[1]} is not served ${pair[0]}'s answer`)
  t.ok(c.set(b!.buf, b!.q, rb, scanResponse(rb)!, 'u', 0n))
  t.equal(c.get(a!.buf, a!.q, 0n), -1, 'the newer key took the slot of the index')
  t.same(decodeMsg(c.serve(c.get(b!.buf, b!.q, 0n), b!.buf, b!.q.qEnd, 0n)).answers!.map(x => x.data), ['192.0.2.2'])
  t.equal(c.size, 1)
  t.equal(c.records, 1, 'the older record released')
})

t.test('an entry keeps its CNAME and HTTPS targets, its upstream and its TTL offsets with the bytes', async t => {
  const c = new DnsCache(settings)
  const r = reply('www.test', {
    answers: [
      { type: 'CNAME', name: 'www.test', ttl: 600, data: 'edge.cdn.test' },
      { type: 'A', name: 'edge.cdn.test', ttl: 60, data: '192.0.2.9' },
    ],
    additionals: [optRr(1232)],
  })
  const w = q('www.test')
  const h = q('www.test', { questions: [{ type: 'AAAA', name: 'www.test' }] })
  t.ok(c.set(w.buf, w.q, r, scanResponse(r)!, 'udp://one', 0n))
  t.ok(c.set(h.buf, h.q, r, scanResponse(r)!, 'tcp://two', 0n))
  t.same(c.targets(c.get(w.buf, w.q, 0n)), ['edge.cdn.test'])
  t.equal(c.upstream(c.get(w.buf, w.q, 0n)), 'udp://one')
  t.equal(c.upstream(c.get(h.buf, h.q, 0n)), 'tcp://two')
  const served = decodeMsg(c.serve(c.get(w.buf, w.q, 10n * S), w.buf, w.q.qEnd, 10n * S))
  t.same(served.answers!.map(a => [a.type, a.ttl]), [['CNAME', 590], ['A', 50]], 'both TTLs counted down; the OPT record left alone')
  t.equal(served.additionals!.length, 1)
  t.equal(c.serve(c.get(w.buf, w.q, 0n), w.buf, w.q.qEnd, 0n).length, r.length, 'served at the reply\'s own length, without the record\'s other fields')
})

t.test('when the upstream index is full, the cache starts over rather than name a wrong upstream', async t => {
  const c = new DnsCache(settings, 2)
  const r = reply('a.test', { answers: [{ type: 'A', name: 'a.test', ttl: 300, data: '192.0.2.1' }] })
  const s = scanResponse(r)!
  const k = ['1', '2', '3', '4', '5'].map(n => q(`${n}.test`))
  const set = (i: number, up: string): boolean => c.set(k[i]!.buf, k[i]!.q, r, s, up, 0n)
  const up = (i: number): string => c.upstream(c.get(k[i]!.buf, k[i]!.q, 0n))
  set(0, 'udp://a')
  set(1, 'udp://b')
  set(2, 'udp://a')
  t.equal(c.size, 3)
  set(3, 'udp://c')
  t.equal(c.size, 1, 'a third upstream with room for two: the older entries are dropped')
  t.equal(c.records, 1, 'and their records released')
  t.equal(up(3), 'udp://c')
  set(4, 'udp://a')
  t.equal(up(4), 'udp://a')
  t.equal(up(3), 'udp://c')
})

t.test('a large answer is stored and served whole, and small ones after it too', async t => {
  const c = new DnsCache(settings)
  const answers = (n: number): dnsPacket.StringAnswer[] =>
    Array.from({ length: n }, (_, i) => ({ type: 'A', name: 'big.test', ttl: 300, data: `192.0.2.${i}` }))
  const big = reply('big.test', { answers: answers(200) })
  t.ok(big.length > 3000, 'a record of several KiB')
  const kb = q('big.test')
  const ks = q('small.test')
  t.ok(c.set(kb.buf, kb.q, big, scanResponse(big)!, 'u', 0n))
  const small = reply('small.test', { answers: answers(1).map(a => ({ ...a, name: 'small.test' })) })
  t.ok(c.set(ks.buf, ks.q, small, scanResponse(small)!, 'u', 0n))
  const served = c.serve(c.get(kb.buf, kb.q, 0n), kb.buf, kb.q.qEnd, 0n)
  t.equal(served.length, big.length)
  t.same(decodeMsg(served).answers!.map(a => a.data), answers(200).map(a => a.data))
  t.same(decodeMsg(c.serve(c.get(ks.buf, ks.q, 0n), ks.buf, ks.q.qEnd, 5n * S)).answers!.map(a => [a.data, a.ttl]), [['192.0.2.0', 295]])
})

t.test('an answer too large for a record is not cached', async t => {
  const c = new DnsCache(settings)
  const long = `${'x'.repeat(60)}.${'y'.repeat(60)}.${'z'.repeat(60)}.${'w'.repeat(60)}.test`
  const n = Math.ceil(MAX_RECORD / (long.length + 1)) + 1
  const scan = { ...scanResponse(reply('t.test', { answers: [{ type: 'A', name: 't.test', ttl: 300, data: '192.0.2.1' }] }))!, targets: Array.from({ length: n }, () => long) }
  const k = q('t.test')
  const r = reply('t.test', { answers: [{ type: 'A', name: 't.test', ttl: 300, data: '192.0.2.1' }] })
  t.notOk(c.set(k.buf, k.q, r, scan, 'u', 0n), `${n} target names of ${long.length} characters: past ${MAX_RECORD} bytes`)
  t.equal(c.get(k.buf, k.q, 0n), -1)
  t.equal(c.size, 0)
})

t.test('bounded by bytes as well: large answers take room for several small ones, and past 16 KiB none is cached', async t => {
  const c = new DnsCache({ ...settings, maxEntries: 100 })       // at most max(100 KiB, 1 MiB) of records
  const many = (name: string, n: number): Buffer => reply(name, {
    answers: Array.from({ length: n }, (_, i) => ({ type: 'A', name, ttl: 300, data: `10.0.${i >> 8}.${i & 255}` })),
  })
  const big = many('b0.test', 400)
  t.ok(big.length > 8192 && big.length < 12_288 - 1000, `an answer of ${big.length} bytes (a 12 KiB record with its TTL offsets)`)
  let stored = 0
  for (let i = 0; i < 100; i++) {
    const k = q(`b${i}.test`)
    const r = many(`b${i}.test`, 400)
    if (c.set(k.buf, k.q, r, scanResponse(r)!, 'u', 0n)) stored++
  }
  t.equal(stored, 100, 'each one stored when it came')
  t.equal(c.size, Math.floor((1 << 20) / 12_288), 'no more than 1 MiB of them kept: the oldest evicted')
  t.equal(c.records, c.size, 'and their records released')
  const last = q('b99.test')
  t.not(c.get(last.buf, last.q, 0n), -1, 'the newest is there')
  const huge = many('h.test', 1100)
  t.ok(huge.length > 16_384)
  const h = q('h.test')
  t.notOk(c.set(h.buf, h.q, huge, scanResponse(huge)!, 'u', 0n), `an answer of ${huge.length} bytes is not cached`)
  t.equal(c.get(h.buf, h.q, 0n), -1)
})

t.test('an entry gives back every target of its answer, in order, as the scan found them', async t => {
  const c = new DnsCache(settings)
  const long = `${'x'.repeat(60)}.${'y'.repeat(60)}.${'z'.repeat(60)}.cdn.test`
  const r = reply('www.test', {
    answers: [
      { type: 'CNAME', name: 'www.test', ttl: 600, data: 'a.cdn.test' },
      { type: 'CNAME', name: 'a.cdn.test', ttl: 600, data: long },
      { type: 'A', name: long, ttl: 60, data: '192.0.2.9' },
    ],
  })
  const scan = scanResponse(r)!
  t.same(scan.targets, ['a.cdn.test', long])
  const k = q('www.test')
  t.ok(c.set(k.buf, k.q, r, scan, 'u', 0n))
  const e = c.get(k.buf, k.q, 0n)
  t.same(c.targets(e), ['a.cdn.test', long])
  t.same(decodeMsg(c.serve(e, k.buf, k.q.qEnd, 0n)).answers!.map(a => a.type), ['CNAME', 'CNAME', 'A'], 'the reply is served without the stored names')
  t.equal(c.serve(e, k.buf, k.q.qEnd, 0n).length, r.length)
})

t.test('a target name written over 255 characters (escaped octets) comes back whole, and the one after it too', async t => {
  // a CNAME to 3 labels of 63 dots under evil.test (203 octets, 390 characters as \.), then to a
  // listed name: one length octet wrapped (390 = 256 + 134), and the listed name was lost on a hit
  const wire = (labels: string[]): Buffer => Buffer.concat([...labels.map(l => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])), Buffer.from([0])])
  const dots = wire(['.'.repeat(63), '.'.repeat(63), '.'.repeat(63), 'evil', 'test'])
  const high = wire(['\xff'.repeat(63), '\xff'.repeat(63), '\xff'.repeat(63), '\xff'.repeat(61)])
  const rr = (owner: Buffer, type: number, rdata: Buffer): Buffer => {
    const h = Buffer.alloc(10)
    h.writeUInt16BE(type, 0); h.writeUInt16BE(1, 2); h.writeUInt32BE(300, 4); h.writeUInt16BE(rdata.length, 8)
    return Buffer.concat([owner, h, rdata])
  }
  const question = wire(['longesc', 'good', 'test'])
  const head = Buffer.from([0, 1, 0x81, 0x80, 0, 1, 0, 4, 0, 0, 0, 0])
  const r = Buffer.concat([head, question, Buffer.from([0, 1, 0, 1]),
    rr(Buffer.from([0xc0, 12]), 5, dots), rr(dots, 5, high), rr(high, 5, wire(['tunnel', 'ngrok', 'com'])),
    rr(wire(['tunnel', 'ngrok', 'com']), 1, Buffer.from([192, 0, 2, 66]))])
  const scan = scanResponse(r)!
  t.equal(scan.targets[0]!.length, 390)
  t.equal(scan.targets[1]!.length, 4 * 250 + 3, 'every octet \\255: the widest name there is')
  t.equal(scan.targets[2], 'tunnel.ngrok.com')
  const c = new DnsCache(settings)
  const k = q('longesc.good.test')
  t.ok(c.set(k.buf, k.q, r, scan, 'u', 0n))
  t.same(c.targets(c.get(k.buf, k.q, 0n)), scan.targets, 'a hit is decided on every name the miss was')
})

t.test('the answer slab: size classes, reuse of released slots, records that do not overlap', async t => {
  t.equal(RECORD_SIZES[0], 64)
  t.equal(MAX_RECORD, 16_384)
  for (let i = 1; i < RECORD_SIZES.length; i++) t.ok(RECORD_SIZES[i]! > RECORD_SIZES[i - 1]!, `class ${i} is larger`)
  const slab = new AnswerSlab()
  t.equal(slab.alloc(MAX_RECORD + 1), -1, 'larger than the largest class')
  const slots: number[] = []
  const len = (i: number): number => 1 + ((i * 7919) % 5000)
  let bad = ''
  for (let i = 0; i < 3000 && !bad; i++) {
    const s = slab.alloc(len(i))
    const o = slab.offset(s)
    if (!(s >= 0 && s <= 0x3fffffff)) bad = `slot ${s} is not a small integer`
    else if (o + len(i) > slab.chunk(s).length) bad = `record ${i} does not fit in its chunk`
    else slab.chunk(s).fill(i & 0xff, o, o + len(i))
    slots.push(s)
    if (i % 50 !== 0) continue
    // every 50th: all records written so far still hold their own byte, first and last
    for (let j = 0; j < slots.length; j++) {
      const bj = slab.chunk(slots[j]!)
      const oj = slab.offset(slots[j]!)
      if (bj[oj] !== (j & 0xff) || bj[oj + len(j) - 1] !== (j & 0xff)) bad = `record ${j} was overwritten (after ${i + 1})`
    }
  }
  t.equal(bad, '', '3000 records of 1 to 5000 bytes, each in its own bytes')
  t.equal(slab.size, 3000)
  const bytes = slab.bytes
  for (const s of slots) slab.release(s)
  t.equal(slab.size, 0)
  t.ok(slab.bytes <= RECORD_SIZES.length * 65_536, `all released: at most one empty chunk per class is kept (${slab.bytes} of ${bytes} bytes)`)
  for (let i = 0; i < 3000; i++) slab.alloc(len(i))
  t.equal(slab.bytes, bytes, 'the same records again take as many chunks as before')
})

t.test('the slab gives back a chunk once its records are released, and keeps one empty chunk per class', async t => {
  const slab = new AnswerSlab()
  const per = 65_536 / 64                                  // records of 64 bytes per chunk
  const slots = Array.from({ length: 3 * per }, () => slab.alloc(60))
  t.equal(slab.bytes, 3 * 65_536, 'three chunks')
  for (const s of slots.slice(0, per)) slab.release(s)
  t.equal(slab.bytes, 3 * 65_536, 'the first chunk emptied is kept (the spare)')
  for (const s of slots.slice(per, 2 * per)) slab.release(s)
  t.equal(slab.bytes, 2 * 65_536, 'the second is given back')
  // a chunk with a record left keeps its bytes, and the record in them
  const keep = slots[2 * per]!
  slab.chunk(keep).fill(0xab, slab.offset(keep), slab.offset(keep) + 60)
  for (const s of slots.slice(2 * per + 1)) slab.release(s)
  t.equal(slab.bytes, 2 * 65_536, 'one record holds its chunk')
  t.equal(slab.chunk(keep)[slab.offset(keep) + 59], 0xab, 'with its bytes')
  // new records go into the chunks there are, the spare's included, before a new chunk is taken
  const again = Array.from({ length: 2 * per - 1 }, () => slab.alloc(60))
  t.equal(slab.bytes, 2 * 65_536, `${again.length} more records: no new chunk`)
  t.equal(new Set([...again, keep]).size, 2 * per, 'each in a slot of its own')
  t.ok(again.every(s => s !== keep))
  slab.alloc(60)
  t.equal(slab.bytes, 3 * 65_536, 'the next one takes a chunk')
  // a class at the edge of a chunk does not take and give back a chunk for every record
  const s = slab.alloc(60)
  slab.release(s)
  t.equal(slab.bytes, 3 * 65_536)
  t.equal(slab.alloc(60), s, 'the kept chunk is used again')
})

t.test('the cache: traffic that moves from one record size to the next leaves no chunks behind', async t => {
  // before the slab gave chunks back, each size class kept the most it had ever held: answers of
  // one size up to the cache's bound, then of the next size, and so on, held the bound per class
  const c = new DnsCache({ ...settings, maxEntries: 256 })       // 256 entries, 1 MiB of records
  const sized = (name: string, n: number): Buffer => reply(name, {
    answers: Array.from({ length: n }, (_, i) => ({ type: 'A', name, ttl: 300, data: `10.0.${i >> 8}.${i & 255}` })),
  })
  let most = 0
  let stored = 0
  let tried = 0
  const counts = [36, 72, 150, 300, 450, 560]             // answers of about 1 KiB to 15 KiB
  for (const [k, n] of counts.entries()) {
    const size = sized(`c${k}-0.test`, n).length
    // enough of them to fill the cache on their own
    for (let i = 0; i < 256 + Math.ceil((1 << 20) / size); i++, tried++) {
      const name = `c${k}-${i}.test`
      const query = q(name)
      const r = sized(name, n)
      if (c.set(query.buf, query.q, r, scanResponse(r)!, 'u', 0n)) stored++
    }
    most = Math.max(most, c.bytes)
  }
  t.equal(stored, tried, `all ${tried} answers stored when they came`)
  t.equal(c.records, c.size, 'every record evicted was released')
  // the bound (1 MiB of records) and a chunk of slack per class (the spare, and a last chunk in use)
  const limit = (1 << 20) + 2 * counts.length * 65_536
  t.ok(most <= limit, `the slab held at most ${(most / 1048576).toFixed(2)} MiB over ${counts.length} sizes of answer (1 MiB bound)`)
})

t.test('the cache: records kept in use one per chunk do not hold chunks past twice the bound', async t => {
  // the attack on a slab that gives back empty chunks only: fill a size class, keep asking for
  // one record of each chunk (so that the least recently used go, and those stay), move on to the
  // next size. Each class then holds chunks nearly empty, up to the bound per class.
  const c = new DnsCache({ ...settings, maxEntries: 256 })       // 1 MiB of records; chunks ≤ 2 MiB
  const sized = (name: string, n: number): Buffer => reply(name, {
    answers: Array.from({ length: n }, (_, i) => ({ type: 'A', name, ttl: 300, data: `10.0.${i >> 8}.${i & 255}` })),
  })
  const pinned: { buf: Buffer; q: Query }[] = []
  let most = 0
  let stored = 0
  let tried = 0
  let kept = 0
  for (const [k, n] of [160, 220, 330, 440, 560].entries()) {   // answers of about 4.5 to 15 KiB (records: header, key, TTL offsets)
    const size = sized(`p${k}-0.test`, n).length
    const perChunk = 2 ** Math.floor(Math.log2(65_536 / RECORD_SIZES.find(r => r >= size + 2 * n + 64)!))
    for (let i = 0; i < Math.ceil((1 << 20) / size) + 8; i++, tried++) {
      const name = `p${k}-${i}.test`
      const query = q(name)
      const r = sized(name, n)
      if (c.set(query.buf, query.q, r, scanResponse(r)!, 'u', 0n)) stored++
      if (i % perChunk === 0) pinned.push(query)
      for (const p of pinned) c.get(p.buf, p.q, 0n)              // the pinned ones stay the most recently used
      most = Math.max(most, c.bytes)
    }
  }
  for (const p of pinned) if (c.get(p.buf, p.q, 0n) >= 0) kept++
  t.ok(stored >= tried - 8, `${stored} of ${tried} answers cached`)
  t.ok(kept > 0, `${kept} of ${pinned.length} pinned records still cached`)
  t.equal(c.records, c.size, 'every record evicted was released')
  t.ok(most <= 2 * (1 << 20), `the chunks never took more than 2 MiB (at most ${(most / 1048576).toFixed(2)} MiB)`)
})

t.test('the slab: no chunk is taken past its limit, the kept empty one counted', async t => {
  const slab = new AnswerSlab(65_536)
  const a = slab.alloc(60)
  t.ok(a >= 0, 'the first chunk')
  t.ok(slab.alloc(60) >= 0, 'room in it')
  t.equal(slab.alloc(100), -1, 'a record of another class would need a second chunk')
  slab.release(a)
  t.equal(slab.alloc(100), -1, 'still: the chunk is held')
  t.equal(slab.bytes, 65_536)
})

t.test('the cache: an answer the slab has no room for is not cached', async t => {
  const c = new DnsCache({ ...settings, maxEntries: 10 }, undefined, 1, 0.01)   // a limit below one chunk
  const k = q('a.test')
  const r = reply('a.test', { answers: [{ type: 'A', name: 'a.test', ttl: 300, data: '10.0.0.1' }] })
  t.notOk(c.set(k.buf, k.q, r, scanResponse(r)!, 'u', 0n), 'not stored')
  t.equal(c.get(k.buf, k.q, 0n), -1)
  t.equal(c.size, 0)
})

t.test('the slab: a full class gives no slot, until one of its slots is released', async t => {
  const slab = new AnswerSlab(Infinity, 3)
  const got = [slab.alloc(100), slab.alloc(100), slab.alloc(100)]
  t.ok(got.every(s => s >= 0))
  t.equal(slab.alloc(100), -1, 'a fourth record of that class')
  t.ok(slab.alloc(1000) >= 0, 'another class has room')
  slab.release(got[1]!)
  t.equal(slab.alloc(100), got[1], 'the released slot is taken again')
})

t.test('the key: a buffer that does not hold the question the query names gives none, and no entry', async t => {
  const k = q('a.test')
  const key = new KeyWriter(1)
  t.ok(key.write(k.buf, k.q))
  t.notOk(key.write(k.buf.subarray(0, 12), k.q), 'no question at all')
  t.notOk(key.write(k.buf.subarray(0, 15), k.q), 'a label cut short')
  const pointer = Buffer.from(k.buf)
  pointer[12] = 0xc0
  t.notOk(key.write(pointer, k.q), 'a compression pointer (parseQuery refuses one in the question)')
  const c = new DnsCache(settings)
  const r = reply('a.test', { answers: [{ type: 'A', name: 'a.test', ttl: 300, data: '192.0.2.1' }] })
  t.notOk(c.set(pointer, k.q, r, scanResponse(r)!, 'u', 0n), 'not stored')
  t.equal(c.get(pointer, k.q, 0n), -1, 'not found')
  t.equal(c.records, 0)
})
