import t from 'tap'
import dnsPacket from 'dns-packet'
import { decodeMsg, edeOf, optRr } from '../fixtures/dig.js'
import { addressBytes, badversReply, buildReply, fitUdp, formErrReply, headerReply, notImpReply, record, soaRecord, zoneOffset } from '../../src/dns/build.js'
import { actionReply, answerSettings, blockedText, bypassReply } from '../../src/dns/actions.js'
import { parseQuery, type Query } from '../../src/dns/wire.js'
import type { Decision } from '../../src/policy/types.js'
import { makeSnapshot } from '../fixtures/snapshot.js'

const mk = (name: string, type: dnsPacket.RecordType = 'A', edns = false, flags = dnsPacket.RECURSION_DESIRED): { buf: Buffer; q: Query } => {
  const buf = dnsPacket.encode({
    type: 'query', id: 99, flags, questions: [{ type, name }],
    additionals: edns ? [optRr(4096, dnsPacket.DNSSEC_OK)] : [],
  })
  return { buf, q: parseQuery(buf) as Query }
}

t.test('buildReply: header, question, answer, SOA, OPT with EDE', async t => {
  const { buf, q } = mk('X.test', 'A', true, dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED)
  const r = decodeMsg(buildReply(buf, q, 3, { authority: soaRecord(42), ede: Buffer.from('why') }))
  t.equal(r.id, 99)
  t.equal(r.rcode, 'NXDOMAIN')
  t.ok(r.flag_qr && r.flag_rd && r.flag_ra && r.flag_cd)
  t.same(r.questions, [{ name: 'X.test', type: 'A', class: 'IN' }])
  const soa = r.authorities[0]
  t.match(soa, { type: 'SOA', name: 'X.test', ttl: 42, data: { minimum: 42, mname: 'tunnelguard.invalid' } })
  t.same(edeOf(r), [15, 'why'])
  const opt = r.additionals[0]!
  t.equal(opt.udpPayloadSize, 1232)
  t.equal(opt.flags! & dnsPacket.DNSSEC_OK, dnsPacket.DNSSEC_OK, 'DO echoed')
  const plain = mk('a.test')
  const p = decodeMsg(buildReply(plain.buf, plain.q, 0, { answer: record(1, 5, Buffer.from([1, 2, 3, 4])), ede: Buffer.from('ignored') }))
  t.same(p.answers, [{ name: 'a.test', type: 'A', class: 'IN', ttl: 5, flush: false, data: '1.2.3.4' }])
  t.same(p.additionals, [], 'no OPT (and so no EDE) when the query had none')
  const noEde = decodeMsg(buildReply(buf, q, 5))
  t.equal(edeOf(noEde), undefined)
  t.equal(noEde.rcode, 'REFUSED')
  t.equal(noEde.additionals.length, 1, 'an OPT without options')
  t.equal(noEde.additionals[0]!.flags! & dnsPacket.DNSSEC_OK, dnsPacket.DNSSEC_OK)
  const noDo = mk('b.test', 'A', false)
  const withOpt = { ...noDo.q, edns: true, dnssecOk: false }
  const r2 = buildReply(noDo.buf, withOpt, 3, { ede: Buffer.from('via café.test ✓') })
  t.same(edeOf(decodeMsg(r2)), [15, 'via café.test ✓'], 'UTF-8 text: length counted in bytes')
  t.equal(decodeMsg(r2).additionals[0]!.flags, 0, 'DO clear when the query had it clear')
  t.equal(r2.length, noDo.q.qEnd + 11 + 6 + Buffer.byteLength('via café.test ✓'), 'nothing after the OPT')
  const bytes = Buffer.from('via café.test ✓')
  const r3 = buildReply(noDo.buf, withOpt, 3, { ede: bytes })
  t.same(r3, r2, 'another buffer of the same text: the same reply')
  t.equal(bytes.toString(), 'via café.test ✓', 'the bytes given are not changed')
})

t.test('headerReply', async t => {
  const { buf } = mk('a.test')
  const h = decodeMsg(headerReply(buf, 1))
  t.match(h, { id: 99, rcode: 'FORMERR', flag_qr: true, flag_rd: true, questions: [] })
})

t.test('formErrReply: the header and the question when it reads, no record but an OPT of ours for a well-formed one; else the header alone', async t => {
  const a = { type: 'A', name: 'a.test', data: '1.2.3.4' } as const
  const q = dnsPacket.encode({ type: 'query', id: 77, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED, questions: [{ type: 'AAAA', name: 'A.Test' }], answers: [a], authorities: [a], additionals: [optRr(1232), a] })
  const r = formErrReply(q)
  t.match(decodeMsg(r), { id: 77, rcode: 'FORMERR', flag_qr: true, flag_rd: true, flag_cd: true, flag_ra: true, questions: [{ name: 'A.Test', type: 'AAAA', class: 'IN' }], answers: [], authorities: [], additionals: [{ type: 'OPT', udpPayloadSize: 1232 }] })
  t.same([r.readUInt16BE(6), r.readUInt16BE(8), r.readUInt16BE(10)], [0, 0, 1], 'no record but the OPT (RFC 6891 §6.1.1: the query had a well-formed one)')
  t.equal(r.length, 12 + 8 + 4 + 11, 'the header, the question and an OPT without options')
  const bare = dnsPacket.encode({ type: 'query', id: 78, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'a.test' }], answers: [a] })
  t.equal(formErrReply(bare).readUInt16BE(10), 0, 'no OPT in the query: none in the answer')
  // the OPT is kept whatever else was wrong: a TC bit, no question (RFC 7873 §5.4 asks for a cookie so)
  const tc = dnsPacket.encode({ type: 'query', id: 79, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.TRUNCATED_RESPONSE, questions: [{ type: 'A', name: 'a.test' }], additionals: [optRr(4096, dnsPacket.DNSSEC_OK)] })
  t.match(decodeMsg(formErrReply(tc)), { rcode: 'FORMERR', questions: [{ name: 'a.test' }], additionals: [{ type: 'OPT', udpPayloadSize: 1232, flags: dnsPacket.DNSSEC_OK }] }, 'TC: an OPT, DO copied (RFC 3225)')
  const none = dnsPacket.encode({ type: 'query', id: 80, flags: 0, questions: [], additionals: [optRr(4096)] })
  const n = formErrReply(none)
  t.equal(n.length, 12 + 11)
  t.match(decodeMsg(n), { id: 80, rcode: 'FORMERR', questions: [], additionals: [{ type: 'OPT', flags: 0 }] }, 'no question: the header and an OPT (no DO asked, none set)')
  // an OPT that may be what was wrong: none
  const opt = (more: Partial<dnsPacket.Packet>) => formErrReply(dnsPacket.encode({ type: 'query', id: 81, flags: 0, questions: [{ type: 'A', name: 'a.test' }], ...more })).readUInt16BE(10)
  t.equal(opt({ additionals: [optRr(1232), optRr(1232)] }), 0, 'two OPTs')
  t.equal(opt({ answers: [optRr(1232) as never] }), 0, 'an OPT in the answer section')
  const v1 = dnsPacket.encode({ type: 'query', id: 82, flags: 0, questions: [{ type: 'A', name: 'a.test' }], additionals: [optRr(1232)] })
  v1[v1.length - 11 + 6] = 1                                     // EDNS version 1
  t.equal(formErrReply(v1).readUInt16BE(10), 0, 'EDNS version 1')
  const owned = Buffer.concat([v1.subarray(0, v1.length - 11), Buffer.from([1, 0x61, 0]), v1.subarray(v1.length - 10)])
  owned[owned.length - 5] = 0                                    // version 0 again: only its owner is wrong
  t.equal(formErrReply(owned).readUInt16BE(10), 0, 'an OPT not owned by the root')
  const ragged = Buffer.concat([v1, Buffer.from([0, 10, 0, 9, 1])])
  ragged[ragged.length - 5 - 11 + 6] = 0
  ragged.writeUInt16BE(5, ragged.length - 5 - 2)
  t.equal(formErrReply(ragged).readUInt16BE(10), 0, 'options that do not fill the RDATA')
  ragged.writeUInt16BE(1, ragged.length - 3)                    // the option's length: 1, as its data
  t.equal(formErrReply(ragged).readUInt16BE(10), 1, 'the same OPT with its option whole: kept')
  t.equal(formErrReply(Buffer.concat([v1.subarray(0, v1.length - 3)])).readUInt16BE(10), 0, 'a record cut short')
  const two = Buffer.from(q)
  two.writeUInt16BE(2, 4)
  t.equal(formErrReply(two).length, 12, 'two questions: the header alone')
  const loop = Buffer.concat([q.subarray(0, 12), Buffer.from([0xc0, 12, 0, 1, 0, 1])])
  t.equal(formErrReply(loop).length, 12, 'a name that does not read: the header alone')
  const cut = q.subarray(0, 12 + 8 + 2)
  const h = formErrReply(cut)
  t.equal(h.length, 12, 'no room for type and class: the header alone')
  t.match(decodeMsg(h), { id: 77, rcode: 'FORMERR', questions: [] })
})

/** A reply to a.test with the given sections, encoded by dns-packet (names compressed). */
const replyOf = (sections: Partial<dnsPacket.Packet>, edns = true): { reply: Buffer; qEnd: number } => {
  const { q } = mk('a.test', 'MX', edns)
  const reply = dnsPacket.encode({
    type: 'response', id: 99, flags: 0x8180, questions: [{ type: 'MX', name: 'a.test' }], ...sections,
    additionals: [...(sections.additionals ?? []), ...(edns ? [optRr(4096, dnsPacket.DNSSEC_OK)] : [])],
  })
  return { reply, qEnd: q.qEnd }
}
const mx = (i: number): dnsPacket.Answer => ({ type: 'MX', name: 'a.test', ttl: 60, data: { preference: i, exchange: `mail${i}.a.test` } })
const glue = (i: number): dnsPacket.Answer => ({ type: 'A', name: `mail${i}.a.test`, ttl: 60, data: `192.0.2.${i}` })

t.test('fitUdp: cut to header, question and OPT with TC when the answer does not fit', async t => {
  const { reply, qEnd } = replyOf({ answers: Array.from({ length: 40 }, (_, i) => mx(i)) })
  t.ok(reply.length > 512)
  const fit = fitUdp(reply, qEnd, 512)
  const d = decodeMsg(fit)
  t.ok(d.flag_tc, 'TC')
  t.same([d.answers.length, d.authorities.length], [0, 0])
  t.equal(d.additionals.length, 1, 'the OPT record stays (RFC 6891 §7)')
  t.equal(d.additionals[0]!.type, 'OPT')
  t.equal(d.additionals[0]!.flags! & dnsPacket.DNSSEC_OK, dnsPacket.DNSSEC_OK, 'DO with it')
  t.equal(fit.length, qEnd + 11)
  // without an OPT record (the query had no EDNS): header and question alone
  const plain = replyOf({ answers: Array.from({ length: 40 }, (_, i) => mx(i)) }, false)
  const p = fitUdp(plain.reply, plain.qEnd, 512)
  t.equal(p.length, plain.qEnd)
  t.ok(decodeMsg(p).flag_tc)
  t.equal(decodeMsg(p).additionals.length, 0)
})

t.test('fitUdp: never over the limit: an OPT whose options do not fit beside the question goes without them', async t => {
  // an upstream's 1400 octets of padding (option 12), extended rcode and DO kept in the OPT's TTL
  const padded = dnsPacket.encode({
    type: 'response', id: 99, flags: 0x8180, questions: [{ type: 'MX', name: 'a.test' }], answers: [mx(1)],
    additionals: [optRr(4096, dnsPacket.DNSSEC_OK, [{ code: 12, data: Buffer.alloc(1400) }])],
  })
  const qEnd = mk('a.test', 'MX', true).q.qEnd
  t.ok(padded.length > 1232)
  for (const limit of [512, 1232]) {
    const f = fitUdp(padded, qEnd, limit)
    t.ok(f.length <= limit, `${f.length} octets within ${limit}`)
    t.equal(f.length, qEnd + 11, 'header, question, an OPT without options')
    const d = decodeMsg(f)
    t.ok(d.flag_tc, 'TC: ask over TCP')
    t.same(d.additionals.map(r => [r.type, r.options?.length]), [['OPT', 0]])
    t.equal(d.additionals[0]!.flags! & dnsPacket.DNSSEC_OK, dnsPacket.DNSSEC_OK, 'DO kept')
    t.equal(d.additionals[0]!.udpPayloadSize, 4096)
  }
  // options that fit beside the question are kept whole (a short EDE)
  const small = dnsPacket.encode({
    type: 'response', id: 99, flags: 0x8180, questions: [{ type: 'MX', name: 'a.test' }], answers: Array.from({ length: 40 }, (_, i) => mx(i)),
    additionals: [optRr(4096, 0, [{ code: 15, data: Buffer.from([0, 15, 104, 105]) }])],
  })
  const k = decodeMsg(fitUdp(small, qEnd, 512))
  t.same([k.flag_tc, k.additionals[0]!.options?.length], [true, 1])
})

t.test('fitUdp: only the additional section left out: no TC (RFC 2181 §9), the OPT kept', async t => {
  const { reply, qEnd } = replyOf({ answers: [mx(1), mx(2), mx(3)], additionals: Array.from({ length: 40 }, (_, i) => glue(i)) })
  t.ok(reply.length > 512)
  const d = decodeMsg(fitUdp(reply, qEnd, 512))
  t.notOk(d.flag_tc, 'no TC')
  t.equal(d.answers.length, 3, 'the whole answer')
  t.same(d.additionals.map(r => r.type), ['OPT'])
  // the OPT record found among the additional records wherever it is
  const first = dnsPacket.encode({
    type: 'response', id: 99, flags: 0x8180, questions: [{ type: 'MX', name: 'a.test' }], answers: [mx(1)],
    additionals: [optRr(4096, 0), ...Array.from({ length: 40 }, (_, i) => glue(i))],
  })
  const f = decodeMsg(fitUdp(first, qEnd, 512))
  t.same([f.flag_tc, f.answers.length, f.additionals.map(r => r.type)], [false, 1, ['OPT']])
  // an answer that fits only without its OPT record: TC, OPT kept
  const tight = replyOf({ answers: [mx(1)] })
  const noRoom = decodeMsg(fitUdp(tight.reply, tight.qEnd, tight.reply.length - 5))
  t.same([noRoom.flag_tc, noRoom.answers.length, noRoom.additionals.map(r => r.type)], [true, 0, ['OPT']])
  // records that cannot be read: cut to the question
  const broken = Buffer.concat([tight.reply.subarray(0, tight.qEnd + 4)])
  broken.writeUInt16BE(1, 6)
  broken.writeUInt16BE(0, 10)
  const b = fitUdp(broken, tight.qEnd, tight.qEnd + 2)
  t.equal(b.length, tight.qEnd)
  t.equal(b.readUInt16BE(2) & 0x0200, 0x0200)
})

t.test('badversReply: BADVERS (extended rcode 1), the question, an OPT of version 0', async t => {
  const buf = dnsPacket.encode({
    type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'a.test' }],
    additionals: [{ ...optRr(1232, dnsPacket.DNSSEC_OK), ednsVersion: 1 } as unknown as dnsPacket.Answer],
  })
  const q = parseQuery(buf) as Query
  t.equal(q.ednsVersion, 1)
  const r = badversReply(buf, q)
  const d = decodeMsg(r)
  t.same([d.id, d.questions[0]!.name, d.answers.length], [7, 'a.test', 0])
  t.equal(r.readUInt16BE(2) & 0xf, 0, 'header rcode 0')
  const opt = d.additionals[0] as unknown as { extendedRcode: number; ednsVersion: number; flags: number }
  t.same([opt.extendedRcode, opt.ednsVersion, opt.flags & dnsPacket.DNSSEC_OK], [1, 0, dnsPacket.DNSSEC_OK])
  t.equal(r.length, q.qEnd + 11)
})

t.test('addressBytes', async t => {
  t.same([...addressBytes('192.0.2.1', 4)], [192, 0, 2, 1])
  t.same([...addressBytes('::1', 16)], [...new Array<number>(15).fill(0), 1])
  t.same([...addressBytes('::ffff:1.2.3.4', 16)].slice(10), [255, 255, 1, 2, 3, 4])
  t.same([...addressBytes('1.2.3.4', 16)].slice(10), [255, 255, 1, 2, 3, 4], 'IPv4 as mapped IPv6')
  t.throws(() => addressBytes('nope', 4), TypeError)
  t.throws(() => addressBytes('::1', 4), TypeError)
})

const decision = (d: Partial<Decision>): Decision => ({ action: 'block', reason: 'r', group: 'default', name: 'x.ngrok.io', where: 'qname', ...d })

t.test('actionReply per action and blockResponse', async t => {
  const snap = makeSnapshot({ config: { sinkhole: { ipv4: '10.9.9.9', ipv6: 'fd00::9', ttl: '30s' } } })
  const s = answerSettings(snap.config)
  const entry = { list: 'ngrok', name: 'ngrok.io', kind: 'domain' as const, allow: false, pattern: 'ngrok.io', source: 'ngrok.txt:1' }
  const sink = decision({ action: 'sinkhole', entry, list: 'ngrok' })
  const a = mk('x.ngrok.io', 'A', true)
  const ra = decodeMsg(actionReply(a.buf, a.q, sink, s).reply)
  t.match(ra.answers, [{ type: 'A', data: '10.9.9.9', ttl: 30 }])
  t.same(edeOf(ra), [15, 'blocked by tunnelguard: ngrok.io in list ngrok'])
  const aaaa = mk('x.ngrok.io', 'AAAA')
  t.match(decodeMsg(actionReply(aaaa.buf, aaaa.q, sink, s).reply).answers, [{ type: 'AAAA', data: 'fd00::9' }])
  const txt = mk('x.ngrok.io', 'TXT')
  const rt = actionReply(txt.buf, txt.q, sink, s)
  t.equal(rt.rcode, 0)
  t.match(decodeMsg(rt.reply), { answers: [], authorities: [{ type: 'SOA', ttl: 30 }] }, 'other types: NODATA')
  const block = decision({ entry, list: 'ngrok' })
  t.equal(actionReply(a.buf, a.q, block, s).rcode, 3)
  t.match(decodeMsg(actionReply(a.buf, a.q, block, s).reply), { rcode: 'NXDOMAIN', authorities: [{ type: 'SOA' }] })
  const refused = answerSettings(makeSnapshot({ config: { dns: { blockResponse: 'refused' } } }).config)
  t.match(decodeMsg(actionReply(a.buf, a.q, block, refused).reply), { rcode: 'REFUSED', authorities: [] })
  const nodata = answerSettings(makeSnapshot({ config: { dns: { blockResponse: 'nodata' } } }).config)
  t.match(decodeMsg(actionReply(a.buf, a.q, block, nodata).reply), { rcode: 'NOERROR', answers: [], authorities: [{ type: 'SOA' }] })
  // the SOA is the listed zone's (the entry's name in the question), and the question's own for a CNAME match
  t.match(decodeMsg(actionReply(a.buf, a.q, block, s).reply).authorities, [{ name: 'ngrok.io', type: 'SOA' }])
  t.match(decodeMsg(rt.reply).authorities, [{ name: 'ngrok.io' }], 'the sinkhole\'s NODATA too')
  const viaCname = decision({ entry, list: 'ngrok', where: 'cname', name: 'edge.ngrok.io' })
  t.match(decodeMsg(actionReply(a.buf, a.q, viaCname, s).reply).authorities, [{ name: 'x.ngrok.io', type: 'SOA' }])
  const unlisted = decision({ reason: 'unparseable name (empty label)', unparseable: true })
  t.match(decodeMsg(actionReply(a.buf, a.q, unlisted, s).reply).authorities, [{ name: 'x.ngrok.io' }], 'no entry: the question name')
})

t.test('actionReply: the EDE text per decision, the same for every reply to the same entry', async t => {
  const s = answerSettings(makeSnapshot().config)
  const e1 = { list: 'ngrok', name: 'ngrok.io', kind: 'domain' as const, allow: false, pattern: 'ngrok.io', source: 'a:1' }
  const e2 = { list: 'tunnels', name: 'loca.lt', kind: 'domain' as const, allow: false, pattern: '*.loca.lt', source: 'b:2' }
  const a = mk('x.ngrok.io', 'A', true)
  const ede = (d: Decision): unknown => edeOf(decodeMsg(actionReply(a.buf, a.q, d, s).reply))
  for (let i = 0; i < 3; i++) {
    t.same(ede(decision({ entry: e1, list: 'ngrok' })), [15, 'blocked by tunnelguard: ngrok.io in list ngrok'], `entry 1, reply ${i}`)
    t.same(ede(decision({ entry: e2, list: 'tunnels' })), [15, 'blocked by tunnelguard: *.loca.lt in list tunnels'], `entry 2, reply ${i}`)
  }
  t.same(ede(decision({ entry: e1, list: 'ngrok', where: 'cname', name: 'a.ngrok.io' })),
    [15, 'blocked by tunnelguard: ngrok.io in list ngrok (via a.ngrok.io)'], 'a CNAME match names its target')
  t.same(ede(decision({ entry: e1, list: 'ngrok', where: 'cname', name: 'b.ngrok.io' })),
    [15, 'blocked by tunnelguard: ngrok.io in list ngrok (via b.ngrok.io)'], 'per target, not per entry')
  t.same(ede(decision({ entry: e1, list: 'ngrok' })), [15, 'blocked by tunnelguard: ngrok.io in list ngrok'], 'the question match after a CNAME one')
  t.same(ede(decision({ reason: 'unparseable name (empty label)', unparseable: true })), [15, 'blocked by tunnelguard: unparseable name (empty label)'])
  const plain = mk('x.ngrok.io', 'A', false)
  t.same(decodeMsg(actionReply(plain.buf, plain.q, decision({ entry: e1, list: 'ngrok' }), s).reply).additionals, [], 'no EDNS: no OPT, no EDE')
})

t.test('blockedText names the list and entry, the CNAME target, or the reason', async t => {
  const entry = { list: 'ngrok', name: 'ngrok.io', kind: 'domain' as const, allow: false, pattern: '||ngrok.io^', source: 'x:1' }
  t.equal(blockedText(decision({ entry, list: 'ngrok', where: 'cname' })), 'blocked by tunnelguard: ||ngrok.io^ in list ngrok (via x.ngrok.io)')
  t.equal(blockedText(decision({ reason: 'unparseable name', unparseable: true })), 'blocked by tunnelguard: unparseable name')
})

t.test('bypassReply: DoH canary and DDR, each switchable', async t => {
  const on = makeSnapshot().config
  const s = answerSettings(on)
  const canary = mk('use-application-dns.net')
  t.match(decodeMsg(bypassReply(canary.buf, canary.q, on, s)!.reply), { rcode: 'NXDOMAIN', authorities: [{ type: 'SOA' }] })
  const ddr = mk('_dns.resolver.arpa', 'SVCB' as dnsPacket.RecordType)
  t.match(bypassReply(ddr.buf, ddr.q, on, s), { rcode: 0 })
  t.equal(bypassReply(mk('a.test').buf, mk('a.test').q, on, s), undefined)
  const off = makeSnapshot({ config: { dns: { dohCanary: false, blockDdr: false } } }).config
  t.equal(bypassReply(canary.buf, canary.q, off, s), undefined)
  t.equal(bypassReply(ddr.buf, ddr.q, off, s), undefined)
})

t.test('notImpReply: the opcode, question and OPT of the query; header only when the rest does not read', async t => {
  const { buf } = mk('a.test', 'A', true)
  buf.writeUInt16BE((buf.readUInt16BE(2) & ~0x7800) | (5 << 11), 2)        // UPDATE
  const r = notImpReply(buf)
  t.equal((r.readUInt16BE(2) >> 11) & 0xf, 5, 'opcode UPDATE echoed')
  t.equal(r.readUInt16BE(2) & 0x8000, 0x8000, 'QR')
  t.equal(r[3]! & 0xf, 4, 'NOTIMP')
  const m = decodeMsg(r)
  t.same(m.questions, [{ name: 'a.test', type: 'A', class: 'IN' }])
  t.same(m.additionals.map(a => a.type), ['OPT'])
  t.equal(buf.readUInt16BE(2) >> 11 & 0xf, 5, 'the query itself is not changed')
  // an UPDATE's prerequisite and update sections are ANCOUNT and NSCOUNT: its zone is echoed all the same
  const update = dnsPacket.encode({ type: 'query', id: 5, questions: [{ type: 'SOA', name: 'zone.test' }], answers: [{ type: 'A', name: 'x.zone.test', data: '1.2.3.4' }], authorities: [{ type: 'A', name: 'y.zone.test', data: '1.2.3.5' }] })
  update.writeUInt16BE(5 << 11, 2)
  t.same(decodeMsg(notImpReply(update)).questions, [{ name: 'zone.test', type: 'SOA', class: 'IN' }])
  const garbage = Buffer.concat([buf.subarray(0, 12), Buffer.from([0xc0, 12, 0, 1, 0, 1])])
  const h = notImpReply(garbage)
  t.equal(h.length, 12, 'a question that does not read: the header alone')
  t.same([(h.readUInt16BE(2) >> 11) & 0xf, h[3]! & 0xf, h.readUInt16BE(4)], [5, 4, 0])
})

t.test('zoneOffset: where a zone apex starts in the question name, or the question name itself', async t => {
  const q = (name: string) => dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name }] })
  t.equal(zoneOffset(q('x.ngrok-free.app'), 'ngrok-free.app'), 12 + 2, 'past the label x')
  t.equal(zoneOffset(q('A.b.NGROK.io'), 'ngrok.io'), 12 + 4, 'letter case aside')
  t.equal(zoneOffset(q('ngrok.io'), 'ngrok.io'), 12, 'the apex asked')
  t.equal(zoneOffset(q('io'), 'ngrok.io'), 12, 'more labels than the question: its own name')
  t.equal(zoneOffset(q('x.myngrok.io'), 'ngrok.io'), 12, 'whole labels only')
  t.equal(zoneOffset(q('x.ngrok.iox'), 'ngrok.io'), 12, 'a longer last label')
  t.equal(zoneOffset(q('x.ngrok.i'), 'ngrok.io'), 12, 'a shorter last label')
  t.equal(zoneOffset(q('x.ngrok.io'), 'ngrok.i'), 12, 'a shorter apex')
  t.equal(zoneOffset(q('x.ab.io'), 'a.bio'), 12, 'a dot where the apex has a letter')
  t.equal(zoneOffset(q('x.ab.cd'), 'abc.d'), 12, 'a letter where the apex has a dot')
})
