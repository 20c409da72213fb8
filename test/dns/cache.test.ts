import t from 'tap'
import dnsPacket from 'dns-packet'
import { decodeMsg, optRr } from '../fixtures/dig.js'
import { DnsCache, cacheKey } from '../../src/dns/cache.js'
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

t.test('cacheKey: name, type, class, DO, CD, EDNS', async t => {
  const opt = (flags = 0): dnsPacket.Answer => optRr(1232, flags)
  const keys = new Set([
    cacheKey(q('a.test').q),
    cacheKey(q('A.TEST').q),
    cacheKey(q('a.test', { flags: dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED }).q),
    cacheKey(q('a.test', { additionals: [opt()] }).q),
    cacheKey(q('a.test', { additionals: [opt(dnsPacket.DNSSEC_OK)] }).q),
    cacheKey(q('b.test').q),
  ])
  t.equal(keys.size, 5, 'case folds; CD, EDNS and DO each make their own entry')
})

t.test('positive answers: kept for the smallest TTL, counted down when served', async t => {
  const c = new DnsCache(settings)
  const { buf, q: query } = q('A.Test', {}, 4242)
  const r = reply('a.test', { answers: [{ type: 'A', name: 'a.test', ttl: 300, data: '192.0.2.1' }, { type: 'A', name: 'a.test', ttl: 100, data: '192.0.2.2' }] })
  const scan = scanResponse(r)!
  t.ok(c.set('k', r, query.qEnd, scan, 'udp://u', 0n))
  t.equal(c.size, 1)
  const e = c.get('k', 30n * S)!
  t.equal(c.upstream(e), 'udp://u')
  t.equal(c.rcode(e), 0)
  t.same(c.targets(e), [], 'no CNAME: no targets')
  const served = decodeMsg(c.serve(e, buf, query.qEnd, 30n * S))
  t.equal(served.id, 4242, 'the asker\'s ID')
  t.equal(served.questions![0]!.name, 'A.Test', 'the asker\'s letter case')
  t.same(served.answers!.map(a => a.ttl), [270, 70], 'TTLs counted down by 30 s')
  t.same(decodeMsg(c.serve(e, buf, query.qEnd, 0n)).answers!.map(a => a.ttl), [300, 100], 'not counted at 0 s')
  t.same(decodeMsg(c.serve(e, buf, query.qEnd, 150n * S)).answers.map(a => a.ttl), [150, 0], 'never below 0')
  t.equal(c.get('k', 100n * S), undefined, 'expired at the smallest TTL')
  t.equal(c.size, 0, 'and removed')
  const other = q('a.test', { questions: [{ type: 'A', name: 'a.test' }] })
  const shifted = Buffer.concat([other.buf.subarray(0, 12), Buffer.from([0xc0, 12])])
  t.equal(decodeMsg(c.serve(e, shifted, 14, 0n)).questions![0]!.name, 'a.test', 'question left alone when its length differs')
})

t.test('min/max clamps rewrite TTLs and the lifetime', async t => {
  const c = new DnsCache({ maxEntries: 10, minTtl: 60_000, maxTtl: 120_000 })
  const r = reply('a.test', { answers: [{ type: 'A', name: 'a.test', ttl: 5, data: '192.0.2.1' }, { type: 'A', name: 'a.test', ttl: 9999, data: '192.0.2.2' }] })
  const { buf, q: query } = q('a.test')
  t.ok(c.set('k', r, query.qEnd, scanResponse(r)!, 'u', 0n))
  const e = c.get('k', 59n * S)!
  t.same(decodeMsg(c.serve(e, buf, query.qEnd, 59n * S)).answers!.map(a => a.ttl), [1, 61])
  t.equal(c.get('k', 60n * S), undefined)
  const zero = reply('a.test', { answers: [{ type: 'A', name: 'a.test', ttl: 0, data: '192.0.2.1' }] })
  t.equal(new DnsCache(settings).ttlFor(scanResponse(zero)!), 0, 'TTL 0 is not cached without a min clamp')
  t.notOk(new DnsCache(settings).set('z', zero, query.qEnd, scanResponse(zero)!, 'u', 0n))
  t.equal(c.ttlFor(scanResponse(zero)!), 60)
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
  const { buf, q: query } = q('n.test')
  t.ok(c.set('nx', nx, query.qEnd, scanResponse(nx)!, 'u', 0n))
  t.equal(decodeMsg(c.serve(c.get('nx', 10n * S)!, buf, query.qEnd, 10n * S)).rcode, 'NXDOMAIN')
  t.equal(c.rcode(c.get('nx', 10n * S)!), 3)
  t.equal(c.get('nx', 30n * S), undefined)
})

t.test('bounded by maxEntries; 0 turns it off', async t => {
  const c = new DnsCache({ ...settings, maxEntries: 2 })
  const r = reply('a.test', { answers: [{ type: 'A', name: 'a.test', ttl: 300, data: '192.0.2.1' }] })
  const s = scanResponse(r)!
  for (const k of ['1', '2', '3']) c.set(k, r, 24, s, 'u', 0n)
  t.equal(c.size, 2)
  t.equal(c.get('1', 0n), undefined, 'least recently used evicted')
  const off = new DnsCache({ ...settings, maxEntries: 0 })
  t.notOk(off.set('1', r, 24, s, 'u', 0n))
  t.equal(off.get('1', 0n), undefined)
  t.equal(off.size, 0)
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
  const { buf, q: query } = q('www.test')
  t.ok(c.set('w', r, query.qEnd, scanResponse(r)!, 'udp://one', 0n))
  t.ok(c.set('h', r, query.qEnd, scanResponse(r)!, 'tcp://two', 0n))
  t.same(c.targets(c.get('w', 0n)!), ['edge.cdn.test'])
  t.equal(c.upstream(c.get('w', 0n)!), 'udp://one')
  t.equal(c.upstream(c.get('h', 0n)!), 'tcp://two')
  const served = decodeMsg(c.serve(c.get('w', 10n * S)!, buf, query.qEnd, 10n * S))
  t.same(served.answers!.map(a => [a.type, a.ttl]), [['CNAME', 590], ['A', 50]], 'both TTLs counted down; the OPT record left alone')
  t.equal(served.additionals!.length, 1)
  t.equal(c.serve(c.get('w', 0n)!, buf, query.qEnd, 0n).length, r.length, 'served at the reply\'s own length, without the entry\'s trailer')
})

t.test('when the upstream index is full, the cache starts over rather than name a wrong upstream', async t => {
  const c = new DnsCache(settings, 2)
  const r = reply('a.test', { answers: [{ type: 'A', name: 'a.test', ttl: 300, data: '192.0.2.1' }] })
  const s = scanResponse(r)!
  c.set('1', r, 24, s, 'udp://a', 0n)
  c.set('2', r, 24, s, 'udp://b', 0n)
  c.set('3', r, 24, s, 'udp://a', 0n)
  t.equal(c.size, 3)
  c.set('4', r, 24, s, 'udp://c', 0n)
  t.equal(c.size, 1, 'a third upstream with room for two: the older entries are dropped')
  t.equal(c.upstream(c.get('4', 0n)!), 'udp://c')
  c.set('5', r, 24, s, 'udp://a', 0n)
  t.equal(c.upstream(c.get('5', 0n)!), 'udp://a')
  t.equal(c.upstream(c.get('4', 0n)!), 'udp://c')
})

t.test('a large answer is stored and served whole, and small ones after it too', async t => {
  const c = new DnsCache(settings)
  const answers = (n: number): dnsPacket.StringAnswer[] =>
    Array.from({ length: n }, (_, i) => ({ type: 'A', name: 'big.test', ttl: 300, data: `192.0.2.${i}` }))
  const big = reply('big.test', { answers: answers(200) })
  t.ok(big.length > 3000, 'bigger than the first assembly buffer')
  const { buf, q: query } = q('big.test')
  t.ok(c.set('big', big, query.qEnd, scanResponse(big)!, 'u', 0n))
  const small = reply('big.test', { answers: answers(1) })
  t.ok(c.set('small', small, query.qEnd, scanResponse(small)!, 'u', 0n))
  const served = c.serve(c.get('big', 0n)!, buf, query.qEnd, 0n)
  t.equal(served.length, big.length)
  t.same(decodeMsg(served).answers!.map(a => a.data), answers(200).map(a => a.data))
  t.same(decodeMsg(c.serve(c.get('small', 0n)!, buf, query.qEnd, 5n * S)).answers!.map(a => [a.data, a.ttl]), [['192.0.2.0', 295]])
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
  const { buf, q: query } = q('www.test')
  t.ok(c.set('w', r, query.qEnd, scan, 'u', 0n))
  const e = c.get('w', 0n)!
  t.same(c.targets(e), ['a.cdn.test', long])
  t.same(decodeMsg(c.serve(e, buf, query.qEnd, 0n)).answers!.map(a => a.type), ['CNAME', 'CNAME', 'A'], 'the reply is served without the stored names')
  t.equal(c.serve(e, buf, query.qEnd, 0n).length, r.length)
})
