import t from 'tap'
import dnsPacket from 'dns-packet'
import { optRr } from '../fixtures/dig.js'
import { MAX_TTL, scanResponse, withoutReplyClientOptions } from '../../src/dns/scan.js'
import { answerTtl } from '../../src/dns/cache.js'
import { rcodeName } from '../../src/dns/names.js'

const resp = (p: Partial<dnsPacket.Packet>): Buffer =>
  dnsPacket.encode({ type: 'response', id: 1, flags: 0x8180, questions: [{ type: 'A', name: 'q.test' }], ...p })

/** SVCB/HTTPS rdata: priority, target name, no params (dns-packet has no encoder for them). */
const svcb = (priority: number, target: string): Buffer => {
  const out = [priority >> 8, priority & 255]
  for (const l of target.split('.').filter(Boolean)) out.push(l.length, ...Buffer.from(l))
  out.push(0)
  return Buffer.from(out)
}

t.test('collects CNAME, DNAME, HTTPS/SVCB and SRV targets, TTLs and addresses', async t => {
  const b = resp({
    answers: [
      { type: 'CNAME', name: 'q.test', ttl: 300, data: 'c.Test' },
      { type: 'A', name: 'c.test', ttl: 60, data: '192.0.2.1' },
      { type: 'AAAA', name: 'c.test', ttl: 120, data: '2001:db8::1' },
      { type: 'AAAA', name: 'c.test', ttl: 120, data: '1:0:2:3:4:5:6:7' },
      { type: 'AAAA', name: 'c.test', ttl: 120, data: '::' },
      { type: 'UNKNOWN_65', name: 'c.test', ttl: 90, data: svcb(1, 'svc.ngrok.io') } as unknown as dnsPacket.Answer,
      { type: 'UNKNOWN_64', name: 'c.test', ttl: 90, data: svcb(0, '') } as unknown as dnsPacket.Answer,
      { type: 'DNAME', name: 'd.test', ttl: 90, data: 'Tunnels.ngrok-free.app' },
      { type: 'SRV', name: '_x._tcp.c.test', ttl: 90, data: { priority: 1, weight: 2, port: 443, target: 'edge.ngrok-agent.com' } },
      { type: 'SRV', name: '_y._tcp.c.test', ttl: 90, data: { priority: 0, weight: 0, port: 0, target: '.' } },
      { type: 'MX', name: 'c.test', ttl: 90, data: { preference: 10, exchange: 'mx.ngrok.io' } },
    ],
    additionals: [optRr(1232)],
  })
  const s = scanResponse(b, true)!
  t.same(s.targets, ['c.test', 'svc.ngrok.io', 'tunnels.ngrok-free.app', 'edge.ngrok-agent.com'],
    'SVCB target "." is the owner itself and SRV target "." no service: neither is a target; an MX exchange is not one')
  t.same(s.addresses, ['192.0.2.1', '2001:db8::1', '1:0:2:3:4:5:6:7', '::'])
  t.equal(s.minTtl, 60)
  t.equal(s.ttlOffsets.length, 11, 'OPT has no TTL to count down')
  t.equal(s.negativeTtl, -1)
  t.equal(s.rcode, 0)
  t.notOk(s.truncated)
  t.same(scanResponse(b)!.addresses, [], 'addresses only when asked')
})

t.test('negative answers: the SOA gives min(TTL, MINIMUM)', async t => {
  const soa = (ttl: number, minimum: number): dnsPacket.Answer => ({
    type: 'SOA', name: 'test', ttl,
    data: { mname: 'ns.test', rname: 'h.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum },
  })
  const nx = scanResponse(resp({ flags: 0x8183, authorities: [soa(3600, 30)] }))!
  t.equal(nx.rcode, 3)
  t.equal(nx.negativeTtl, 30)
  t.equal(nx.minTtl, 3600)
  t.equal(scanResponse(resp({ authorities: [soa(20, 300)] }))!.negativeTtl, 20)
  const noSoa = scanResponse(resp({ flags: 0x8183 }))!
  t.equal(noSoa.negativeTtl, -1)
  t.equal(noSoa.minTtl, -1)
  t.ok(scanResponse(resp({ flags: 0x8380 }))!.truncated)
})

t.test('malformed replies give undefined', async t => {
  const good = resp({ answers: [{ type: 'CNAME', name: 'q.test', ttl: 1, data: 'c.test' }] })
  t.equal(scanResponse(Buffer.alloc(4)), undefined, 'short header')
  t.equal(scanResponse(good.subarray(0, 16)), undefined, 'cut question')
  t.equal(scanResponse(good.subarray(0, 28)), undefined, 'cut record header')
  t.equal(scanResponse(good.subarray(0, good.length - 1)), undefined, 'cut rdata')
  const badTarget = Buffer.from(good)
  badTarget[badTarget.length - 8] = 0x80                       // CNAME target with a bad label type
  t.equal(scanResponse(badTarget), undefined, 'bad CNAME target')
  const longTarget = Buffer.from(good)
  longTarget.writeUInt16BE(3, longTarget.length - 10)         // rdlength shorter than the name
  t.equal(scanResponse(Buffer.concat([longTarget.subarray(0, longTarget.length - 5)])), undefined, 'target runs past its rdata')
  const soa = resp({ flags: 0x8183, authorities: [{ type: 'SOA', name: 'test', ttl: 1, data: { mname: 'ns.test', rname: 'h.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 1 } }] })
  const cutSoa = Buffer.from(soa)
  t.equal(cutSoa.readUInt16BE(cutSoa.length - 39), 37, 'rdlength of the SOA')
  cutSoa.writeUInt16BE(33, cutSoa.length - 39)
  t.equal(scanResponse(cutSoa.subarray(0, cutSoa.length - 4)), undefined, 'SOA rdata too short')
  const badSoaName = Buffer.from(soa)
  badSoaName[badSoaName.length - 37] = 0x80
  t.equal(scanResponse(badSoaName), undefined, 'SOA with a bad name')
  const srv = resp({ answers: [{ type: 'SRV', name: 'q.test', ttl: 1, data: { priority: 0, weight: 0, port: 1, target: 's.test' } }] })
  t.equal(srv.readUInt16BE(srv.length - 16), 14, 'rdlength of the SRV')
  t.same(scanResponse(srv)!.targets, ['s.test'])
  const shortSrv = Buffer.from(srv)
  shortSrv.writeUInt16BE(4, shortSrv.length - 16)
  t.equal(scanResponse(shortSrv), undefined, 'SRV rdata too short for its target')
})

t.test('a TTL with the top bit set is 0 (RFC 2181 §8), in records and in an SOA\'s MINIMUM', async t => {
  const big = scanResponse(resp({ answers: [{ type: 'A', name: 'q.test', ttl: 0x80000001, data: '192.0.2.1' }, { type: 'A', name: 'q.test', ttl: MAX_TTL, data: '192.0.2.2' }] }))!
  t.equal(big.minTtl, 0)
  const soa = (ttl: number, minimum: number): dnsPacket.Answer => ({
    type: 'SOA', name: 'test', ttl,
    data: { mname: 'ns.test', rname: 'h.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum },
  })
  t.equal(scanResponse(resp({ flags: 0x8183, authorities: [soa(0xffffffff, 0xffffffff)] }))!.negativeTtl, 0)
  t.equal(scanResponse(resp({ flags: 0x8183, authorities: [soa(600, 0x80000000)] }))!.negativeTtl, 0)
  t.equal(scanResponse(resp({ flags: 0x8183, authorities: [soa(600, MAX_TTL)] }))!.negativeTtl, 600, 'the largest TTL there is is not 0')
})

/** An OPT record: owner, type 41, UDP size, flags, and options [code, data]. */
const opt = (options: [number, Buffer][], owner = Buffer.from([0])): Buffer => {
  const body = Buffer.concat(options.map(([code, data]) => Buffer.concat([Buffer.from([code >> 8, code & 255, data.length >> 8, data.length & 255]), data])))
  const h = Buffer.from([0, 41, 4, 208, 0, 0, 0, 0, body.length >> 8, body.length & 255])
  return Buffer.concat([owner, h, body])
}
/** A reply to q.test A: its answer records, then additional records (raw), counts set. */
const raw = (answers: Buffer[], additional: Buffer[]): Buffer => {
  const head = Buffer.from([0, 1, 0x81, 0x80, 0, 1, 0, answers.length, 0, 0, 0, additional.length])
  return Buffer.concat([head, Buffer.from([1, 113, 4, 116, 101, 115, 116, 0, 0, 1, 0, 1]), ...answers, ...additional])
}
const a = (ttl: number): Buffer => Buffer.from([0xc0, 12, 0, 1, 0, 1, ttl >>> 24, (ttl >> 16) & 255, (ttl >> 8) & 255, ttl & 255, 0, 4, 192, 0, 2, 1])

t.test('an OPT record: one, owned by the root, in the additional section, its options whole; else the reply is malformed', async t => {
  const cookie: [number, Buffer] = [10, Buffer.alloc(16, 67)]
  const ok = scanResponse(raw([a(60)], [opt([[65000, Buffer.from('x')]])]))!
  t.equal(ok.clientOptions, false, 'an option of its own (unknown): passed on as it came')
  t.ok(ok.optRdata > 0 && ok.optEnd === ok.optRdata + 5)
  t.equal(scanResponse(raw([a(60)], []))!.optRdata, -1)
  t.equal(scanResponse(raw([a(60)], [opt([cookie])]))!.clientOptions, true)
  t.equal(scanResponse(raw([a(60)], [opt([]), opt([])])), undefined, 'two OPT records')
  t.equal(scanResponse(raw([a(60), opt([])], [])), undefined, 'an OPT in the answer section')
  t.equal(scanResponse(raw([a(60)], [opt([], Buffer.from([1, 120, 0]))])), undefined, 'an OPT owned by "x"')
  const cut = raw([a(60)], [opt([cookie])])
  cut.writeUInt16BE(18, cut.length - 20 - 2 + 0)                 // the option says 18 octets where its record has 16
  t.equal(scanResponse(cut), undefined, 'an option past the end of its record')
  const short = raw([a(60)], [opt([[65000, Buffer.from('x')]])])
  short.writeUInt16BE(3, short.length - 5 - 2)                    // RDLENGTH 3: less than an option header
  t.equal(scanResponse(short.subarray(0, short.length - 2)), undefined, 'an option header cut by its record')
})

t.test('withoutReplyClientOptions: COOKIE, NSID, Client Subnet and MAC options out, the rest kept, TTL offsets after moved', async t => {
  const plain = raw([a(60)], [opt([[65000, Buffer.from('keep')]])])
  const s0 = scanResponse(plain)!
  t.equal(withoutReplyClientOptions(plain, s0), plain, 'none: the reply itself')
  const rec = raw([a(60)], [opt([[10, Buffer.alloc(16, 67)], [3, Buffer.from('NSID')], [65000, Buffer.from('keep')], [8, Buffer.from([0, 1, 32, 0, 1, 2, 3, 4])]]), a(7)])
  rec.writeUInt16BE(2, 10)
  const scan = scanResponse(rec)!
  const before = scan.ttlOffsets.slice()
  const out = withoutReplyClientOptions(rec, scan)
  const removed = rec.length - out.length
  t.equal(removed, 20 + 8 + 12)
  const d = dnsPacket.decode(out)
  const o = d.additionals!.find(x => x.type === 'OPT') as unknown as { options: { code: number }[] }
  t.same(o.options.map(x => x.code), [65000])
  t.same(scan.ttlOffsets, [before[0], before[1]! - removed], 'the record after the OPT: its TTL offset moved')
  t.equal(out.readUInt32BE(scan.ttlOffsets[1]!), 7, 'and it points at that TTL')
  t.equal(out.readUInt32BE(scan.ttlOffsets[0]!), 60)
})

t.test('the rcode takes its upper bits from the OPT record: an upstream\'s BADVERS is 16, logged as such and never cached', async t => {
  const soa: dnsPacket.Answer = {
    type: 'SOA', name: 'test', ttl: 300,
    data: { mname: 'ns.test', rname: 'h.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 300 },
  }
  const badvers = resp({ authorities: [soa], additionals: [optRr(1232)] })
  const opt = badvers.length - 11                                   // the OPT record: root, type, class, then the TTL
  t.equal(badvers.readUInt16BE(opt + 1), 41)
  badvers[opt + 5] = 1                                              // extended rcode 1, header rcode 0: BADVERS
  const s = scanResponse(badvers)!
  t.equal(s.rcode, 16)
  t.equal(rcodeName(s.rcode), 'BADVERS')
  t.equal(answerTtl(s), -1, 'not a NOERROR: not cached (its SOA would have made it a cached NODATA)')
  badvers[opt + 5] = 0
  t.equal(scanResponse(badvers)!.rcode, 0, 'extended rcode 0: the header\'s alone')
  t.equal(answerTtl(scanResponse(badvers)!), 300)
})
