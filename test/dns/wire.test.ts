import t from 'tap'
import dnsPacket from 'dns-packet'
import { optRr } from '../fixtures/dig.js'
import { Q_CASE, Q_OTHER, Q_SAME, matchQuestion, parseQuery, readName, readQuestion, sameQuestion, skipName, skipRecord, type Query } from '../../src/dns/wire.js'
import { withoutClientOptions, ednsClient } from '../../src/dns/client-options.js'
import { keyFlags } from '../../src/dns/cache-key.js'

const query = (name: string, type: dnsPacket.RecordType = 'A', extra: Partial<dnsPacket.Packet> = {}): Buffer =>
  dnsPacket.encode({ type: 'query', id: 4660, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }], ...extra })

/** header (id 1, RD, counts) + raw question bytes */
const raw = (qd: number, body: number[], counts: [number, number, number] = [0, 0, 0]): Buffer => {
  const h = Buffer.alloc(12)
  h.writeUInt16BE(1, 0)
  h.writeUInt16BE(0x0100, 2)
  h.writeUInt16BE(qd, 4)
  h.writeUInt16BE(counts[0], 6)
  h.writeUInt16BE(counts[1], 8)
  h.writeUInt16BE(counts[2], 10)
  return Buffer.concat([h, Buffer.from(body)])
}

t.test('parses header, question and OPT', async t => {
  const q = parseQuery(query('WwW.Example.COM', 'AAAA')) as Query
  t.match(q, { id: 4660, name: 'www.example.com', qtype: 28, qclass: 1, edns: false, udpSize: 512, dnssecOk: false })
  t.equal(q.qEnd, 12 + 17 + 4)
  const e = parseQuery(query('a.test', 'A', {
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED,
    additionals: [optRr(4096, dnsPacket.DNSSEC_OK)],
  })) as Query
  t.match(e, { edns: true, udpSize: 4096, dnssecOk: true })
  t.equal(e.flags & 0x0010, 0x0010, 'CD kept in flags')
  const small = parseQuery(query('a.test', 'A', { additionals: [optRr(100)] })) as Query
  t.equal(small.udpSize, 512, 'an advertised size below 512 counts as 512')
  t.equal((parseQuery(query('.')) as Query).name, '', 'the root')
  // the one additional record allowed is the OPT: a lone TSIG, SIG(0) or other record is FORMERR
  // (a query signed without EDNS would go upstream with its key name and MAC, and its answer be cached)
  t.equal(parseQuery(query('a.test', 'A', { additionals: [{ type: 'TXT', name: 'k.test', data: 'x' }] })), 'formerr')
  for (const [type, name] of [[250, 'TSIG'], [24, 'SIG(0)']] as const) {
    // owner key.test., the type, class ANY, TTL 0, 8 octets of RDATA
    const rr = Buffer.from([3, 107, 101, 121, 4, 116, 101, 115, 116, 0, type >> 8, type & 255, 0, 255, 0, 0, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8])
    const signed = Buffer.concat([query('a.test', 'A'), rr])
    signed.writeUInt16BE(1, 10)
    t.equal(parseQuery(signed), 'formerr', `${name} alone, no OPT`)
    // the same record after an OPT: two additional records, FORMERR as before
    const both = Buffer.concat([query('a.test', 'A', { additionals: [optRr(1232)] }), rr])
    both.writeUInt16BE(2, 10)
    t.equal(parseQuery(both), 'formerr', `OPT and ${name}`)
  }
  t.match(parseQuery(query('a.test', 'A', { additionals: [optRr(1232)] })), { edns: true }, 'the OPT alone is the query\'s EDNS')
  // readQuestion reads past records in every section, the header's counts unchecked (NOTIMP echoes an UPDATE's zone)
  const update = query('a.test', 'SOA', { answers: [{ type: 'A', name: 'a.test', data: '1.2.3.4' }], authorities: [{ type: 'A', name: 'b.test', data: '1.2.3.5' }] })
  t.match(readQuestion(update, update.readUInt16BE(2)), { name: 'a.test', qtype: 6 })
})

t.test('a query with TC set, answer or authority records, or more than one additional record, is FORMERR (unbound: worker_check_request)', async t => {
  const a = { type: 'A', name: 'a.test', data: '1.2.3.4' } as const
  t.equal(parseQuery(query('a.test', 'A', { answers: [a] })), 'formerr', 'ANCOUNT 1')
  t.equal(parseQuery(query('a.test', 'A', { authorities: [a] })), 'formerr', 'NSCOUNT 1')
  t.equal(parseQuery(query('a.test', 'A', { additionals: [optRr(1232), a] })), 'formerr', 'ARCOUNT 2: an OPT and another record')
  const tsig = { type: 'TXT', name: 'key.test', data: 'not a real TSIG' } as const
  t.equal(parseQuery(query('a.test', 'A', { additionals: [tsig, tsig] })), 'formerr', 'ARCOUNT 2 without an OPT')
  // read from the header alone: the counts say it, whatever follows (nothing here)
  t.equal(parseQuery(raw(1, [1, 97, 0, 0, 1, 0, 1], [1, 0, 0])), 'formerr', 'an answer announced, not sent')
  t.equal(parseQuery(raw(1, [1, 97, 0, 0, 1, 0, 1], [0, 0xffff, 0])), 'formerr', 'authority records announced')
  t.equal(parseQuery(raw(1, [1, 97, 0, 0, 1, 0, 1], [0, 0, 2])), 'formerr', 'two additional records announced')
  t.equal(parseQuery(query('a.test', 'A', { flags: dnsPacket.RECURSION_DESIRED | dnsPacket.TRUNCATED_RESPONSE })), 'formerr', 'TC set: a query is never truncated')
  const notify = query('a.test', 'SOA', { answers: [a] })
  notify.writeUInt16BE(4 << 11, 2)
  t.equal(parseQuery(notify), 'notimp', 'another opcode is NOTIMP first, whatever its sections')
})

t.test('rejects what is not a usable query', async t => {
  t.equal(parseQuery(Buffer.alloc(5)), 'drop', 'shorter than a header')
  const resp = query('a.test')
  resp.writeUInt16BE(0x8000, 2)
  t.equal(parseQuery(resp), 'drop', 'a response (QR=1)')
  const notify = query('a.test')
  notify.writeUInt16BE(4 << 11, 2)
  t.equal(parseQuery(notify), 'notimp', 'opcode NOTIFY')
  t.equal(parseQuery(raw(0, [])), 'formerr', 'no question')
  t.equal(parseQuery(raw(2, [1, 97, 0, 0, 1, 0, 1, 1, 98, 0, 0, 1, 0, 1])), 'formerr', 'two questions')
  t.equal(parseQuery(raw(1, [1, 97, 0, 0, 1])), 'formerr', 'truncated question')
  t.equal(parseQuery(raw(1, [5, 97])), 'formerr', 'truncated label')
  t.equal(parseQuery(raw(1, [0xc0, 12, 0, 1, 0, 1])), 'formerr', 'a pointer to itself (loop)')
  t.equal(parseQuery(raw(1, [1, 97, 0xc0, 12, 0, 1, 0, 1])), 'formerr', 'a pointer back into its own name (loop)')
  t.equal(parseQuery(raw(1, [0xc0, 40, 0, 1, 0, 1])), 'formerr', 'a forward pointer')
  t.equal(parseQuery(raw(1, [0xc0, 2, 0, 1, 0, 1])), 'formerr', 'a pointer into the header')
  t.equal(parseQuery(raw(1, [0xc0])), 'formerr', 'a cut pointer')
  t.equal(parseQuery(raw(1, [0x41, 97, 0, 0, 1, 0, 1])), 'formerr', 'label type 0x40')
  const long: number[] = []
  for (let i = 0; i < 5; i++) long.push(63, ...new Array<number>(63).fill(97))
  t.equal(parseQuery(raw(1, [...long, 0, 0, 1, 0, 1])), 'formerr', 'a name over 255 octets')
  const opt = [0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 0]
  t.equal(parseQuery(raw(1, [1, 97, 0, 0, 1, 0, 1, ...opt, ...opt], [0, 0, 2])), 'formerr', 'two OPT records')
  // ARCOUNT 2 alone makes parseQuery refuse that; readQuestion (the NOTIMP echo of another
  // opcode, its counts unchecked) must refuse the second OPT itself (RFC 6891 §6.1.1)
  const twoOpt = raw(1, [1, 97, 0, 0, 1, 0, 1, ...opt, ...opt], [0, 0, 2])
  t.equal(readQuestion(twoOpt, twoOpt.readUInt16BE(2)), 'formerr', 'two OPT records: readQuestion too')
  t.equal(parseQuery(raw(1, [1, 97, 0, 0, 1, 0, 1, 1, 98, 0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 0], [0, 0, 1])), 'formerr', 'OPT not owned by the root')
  t.equal(parseQuery(raw(1, [1, 97, 0, 0, 1, 0, 1, 0, 0, 41, 16, 0], [0, 0, 1])), 'formerr', 'truncated OPT')
  t.equal(parseQuery(raw(1, [1, 97, 0, 0, 1, 0, 1, 0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 9], [0, 0, 1])), 'formerr', 'rdata past the end')
})

t.test('readName writes a dot or a backslash inside a label escaped, as presentation form does; the longest such name fits', async t => {
  const wire = (labels: string[]): Buffer => {
    const parts: number[] = []
    for (const l of labels) parts.push(l.length, ...Buffer.from(l, 'latin1'))
    return raw(0, [...parts, 0])
  }
  t.same(readName(wire(['x.www', 'example', 'test']), 12), { name: 'x\\.www.example.test', end: 12 + 20 }, 'x\\.www.example.test: two labels under example.test')
  t.same(readName(wire(['a\\b', 'test']), 12), { name: 'a\\\\b.test', end: 12 + 10 }, 'a backslash: doubled')
  t.same(readName(wire(['.', 'test']), 12, false), { name: '\\..test', end: 12 + 8 })
  // 255 octets in all: labels of 63, 63, 63 and 61 dots, each written as two characters
  const dots = [63, 63, 63, 61].map(n => '.'.repeat(n))
  const long = readName(wire(dots), 12)!
  t.equal(long.name, dots.map(d => '\\.'.repeat(d.length)).join('.'))
  t.equal(long.name.length, 2 * 250 + 3)
  t.equal(long.end, 12 + 255)
  // as dig writes them: a space, controls, a quote and the other specials, UTF-8 octets
  t.same(readName(wire(['has space', 'line\nfeed\t', 'a"b(c)d;e@f$g', 'test']), 12)!.name,
    'has\\032space.line\\010feed\\009.a\\"b\\(c\\)d\\;e\\@f\\$g.test')
  t.same(readName(wire(['\xe2\x80\xaeevil', '\x00\x1f\x7f', 'test']), 12)!.name, '\\226\\128\\174evil.\\000\\031\\127.test',
    'U+202E (right-to-left override) and the controls at both ends of ASCII: no raw byte reaches a line')
  t.same(readName(wire(['a-b_c*d+e/f', 'test']), 12)!.name, 'a-b_c*d+e/f.test', 'printable ASCII dig leaves alone stays as it is')
  // 255 octets of 0xff: every one written as \255, four characters each
  const high = [63, 63, 63, 61].map(n => '\xff'.repeat(n))
  const widest = readName(wire(high), 12)!
  t.equal(widest.name, high.map(d => '\\255'.repeat(d.length)).join('.'))
  t.equal(widest.name.length, 4 * 250 + 3)
  t.equal(readName(wire(['a', 'test']), 12)!.name, 'a.test', 'a short name after the widest: nothing left over')
})

t.test('readName follows backward pointers and lowercases only when asked', async t => {
  // question a.test at 12, then a record owned by "x" + pointer to "test" (offset 14)
  const b = raw(1, [1, 65, 4, 116, 101, 115, 116, 0, 0, 1, 0, 1, 1, 88, 0xc0, 14])
  t.same(readName(b, 12), { name: 'a.test', end: 20 })
  t.same(readName(b, 24), { name: 'x.test', end: 28 })
  t.same(readName(b, 24, false), { name: 'X.test', end: 28 })
  t.equal(readName(b, 200), undefined, 'past the end')
  // a chain of 70 pointers, each to the previous: over the jump limit
  const chain: number[] = [0]
  for (let i = 0; i < 70; i++) chain.push(0xc0, 12 + chain.length - (i === 0 ? 1 : 2))
  const c = raw(0, chain)
  t.equal(readName(c, c.length - 2), undefined, 'too many jumps')
  t.same(readName(c, 13), { name: '', end: 15 }, 'one jump to the root')
})

t.test('readName folds ASCII case only and reads the longest name there is', async t => {
  // "Zz@[`{\xc0\xff" . "COM": the bytes around A-Z and a-z are not folded
  const b = raw(1, [8, 0x5a, 0x7a, 0x40, 0x5b, 0x60, 0x7b, 0xc0, 0xff, 3, 67, 79, 77, 0, 0, 1, 0, 1])
  t.same(readName(b, 12), { name: 'zz\\@[`{\\192\\255.com', end: 26 })
  t.same(readName(b, 12, false), { name: 'Zz\\@[`{\\192\\255.COM', end: 26 })
  // 255 octets: three labels of 63 and one of 61, all upper case
  const labels = [63, 63, 63, 61].map((n, i) => [n, ...Array<number>(n).fill(65 + i)])
  const long = raw(1, [...labels.flat(), 0, 0, 1, 0, 1])
  const want = ['a', 'b', 'c', 'd'].map((ch, i) => ch.repeat(labels[i]![0]!)).join('.')
  t.same(readName(long, 12), { name: want, end: 12 + 255 })
  t.equal(want.length, 253)
  t.same(readName(b, 12), { name: 'zz\\@[`{\\192\\255.com', end: 26 }, 'a short name after a long one: nothing left over')
})

t.test('skipName and skipRecord', async t => {
  const b = raw(1, [1, 97, 0, 0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 1, 2, 3, 4])
  t.equal(skipName(b, 12), 15)
  t.equal(skipName(b, 19), 21)
  t.equal(skipName(b, 100), -1)
  t.equal(skipName(raw(0, [0xc0]), 12), -1, 'cut pointer')
  t.equal(skipName(raw(0, [0x80, 1]), 12), -1, 'bad label type')
  const long: number[] = []
  for (let i = 0; i < 5; i++) long.push(63, ...new Array<number>(63).fill(97))
  t.equal(skipName(raw(0, [...long, 0]), 12), -1, 'over 255 octets')
  t.equal(skipRecord(b, 19), b.length)
  t.equal(skipRecord(b.subarray(0, b.length - 1), 19), -1, 'rdata cut')
  t.equal(skipRecord(b, 100), -1)
})

t.test('sameQuestion compares the name without case', async t => {
  const q = query('a.test')
  const qEnd = (parseQuery(q) as Query).qEnd
  const r = dnsPacket.encode({ type: 'response', id: 1, questions: [{ type: 'A', name: 'A.TEST' }] })
  t.ok(sameQuestion(q, qEnd, r))
  const upper = query('A.TEST')
  t.ok(sameQuestion(upper, qEnd, dnsPacket.encode({ type: 'response', id: 1, questions: [{ type: 'A', name: 'a.test' }] })))
  const other = dnsPacket.encode({ type: 'response', id: 1, questions: [{ type: 'A', name: 'b.test' }] })
  t.notOk(sameQuestion(q, qEnd, other), 'another name')
  const aaaa = dnsPacket.encode({ type: 'response', id: 1, questions: [{ type: 'AAAA', name: 'a.test' }] })
  t.notOk(sameQuestion(q, qEnd, aaaa), 'another type')
  t.notOk(sameQuestion(q, qEnd, r.subarray(0, 14)), 'too short')
  const none = dnsPacket.encode({ type: 'response', id: 1, questions: [] })
  t.notOk(sameQuestion(q, qEnd, Buffer.concat([none, Buffer.alloc(20)])), 'no question')
})

t.test('type and class are compared as octets: a reply for type 0x0061 is not one for HTTPS (0x0041)', async t => {
  const https = (): Buffer => {
    const b = query('a.test')
    b.writeUInt16BE(0x0041, b.length - 4)                      // dns-packet has no name for type 65
    return b
  }
  const q = https()
  const qEnd = (parseQuery(q) as Query).qEnd
  const reply = (type: number, cls: number, name = 'a.test'): Buffer => {
    const r = dnsPacket.encode({ type: 'response', id: 1, questions: [{ type: 'A', name }] })
    r.writeUInt16BE(type, qEnd - 4)
    r.writeUInt16BE(cls, qEnd - 2)
    return r
  }
  t.equal(matchQuestion(q, qEnd, reply(0x0041, 1)), Q_SAME)
  t.equal(matchQuestion(q, qEnd, reply(0x0041, 1, 'A.Test')), Q_CASE, 'the name may differ in case')
  t.equal(matchQuestion(q, qEnd, reply(0x0061, 1)), Q_OTHER, 'type 97 for 65')
  t.notOk(sameQuestion(q, qEnd, reply(0x0061, 1, 'A.TEST')))
  const c = https()
  c.writeUInt16BE(0x0041, qEnd - 2)
  t.equal(matchQuestion(c, qEnd, reply(0x0041, 0x0041)), Q_SAME)
  t.equal(matchQuestion(c, qEnd, reply(0x0041, 0x0061)), Q_OTHER, 'class 0x0061 for 0x0041')
})

t.test('keyFlags: the DO, CD, EDNS, RD and AD bits of the cache key', async t => {
  const flags = (extra: Partial<dnsPacket.Packet>): number => {
    const b = query('a.test', 'A', extra)
    return keyFlags(b, (readQuestion(b, b.readUInt16BE(2)) as Query).qEnd)
  }
  t.equal(flags({}), 0)
  t.equal(flags({ additionals: [optRr(1232)] }), 4)
  t.equal(flags({ additionals: [optRr(1232, dnsPacket.DNSSEC_OK)] }), 5)
  t.equal(flags({ flags: dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED }), 2)
  t.equal(flags({ flags: 0 }), 8, 'RD clear')
  const AD = dnsPacket.AUTHENTIC_DATA
  t.equal(flags({ flags: dnsPacket.RECURSION_DESIRED | AD }), 16, 'AD')
  t.equal(flags({ flags: AD | dnsPacket.CHECKING_DISABLED }), 26, 'AD, CD, RD clear')
  t.equal(flags({ flags: dnsPacket.RECURSION_DESIRED | AD, additionals: [optRr(1232)] }), 20, 'AD with EDNS')
  t.equal(flags({ flags: dnsPacket.RECURSION_DESIRED | AD, additionals: [optRr(1232, dnsPacket.DNSSEC_OK)] }), 5, 'AD with DO: as DO alone')
  t.equal(flags({
    answers: [{ type: 'OPT', name: '.', udpPayloadSize: 512, flags: dnsPacket.DNSSEC_OK } as unknown as dnsPacket.Answer],
    additionals: [{ type: 'A', name: 'x.test', data: '1.2.3.4' }, optRr(4096, dnsPacket.DNSSEC_OK)],
  }), 5, 'an OPT in the answer section is not the query\'s; other additional records are walked past')
  const b = query('a.test', 'A', { additionals: [optRr(1232, dnsPacket.DNSSEC_OK)] })
  const qEnd = (parseQuery(b) as Query).qEnd
  t.equal(keyFlags(b.subarray(0, b.length - 1), qEnd), 0, 'a record cut short ends the walk')
})

t.test('withoutClientOptions: COOKIE, NSID, Client Subnet, the MAC options and TCP keepalive taken out of the OPT record, the rest kept byte for byte', async t => {
  const opt = (options: { code: number; data: Buffer }[]): dnsPacket.Answer => optRr(1232, dnsPacket.DNSSEC_OK, options)
  const strip = (b: Buffer): Buffer => withoutClientOptions(b, readQuestion(b, b.readUInt16BE(2)) as Query)
  const cookie = { code: 10, data: Buffer.from('0102030405060708', 'hex') }
  const ecs = { code: 8, data: Buffer.from([0, 1, 24, 0, 198, 51, 100]) }
  const pad = { code: 12, data: Buffer.alloc(5) }
  const nsid = { code: 3, data: Buffer.alloc(0) }
  const mac = { code: 65001, data: Buffer.from('020000000005', 'hex') }
  const macText = { code: 65073, data: Buffer.from('02:00:00:00:00:05') }
  const other = { code: 65002, data: Buffer.from('abcd', 'hex') }
  const keepalive = { code: 11, data: Buffer.alloc(0) }           // RFC 7828: about the client's own connection, never over UDP upstream
  const all = [cookie, pad, ecs, mac, nsid, other, macText, keepalive]
  const b = query('a.test', 'A', { additionals: [opt(all)] })
  const out = strip(b)
  t.ok(out.equals(query('a.test', 'A', { additionals: [opt([pad, other])] })), 'the same query with padding and the other option only')
  const q = parseQuery(out) as Query
  t.match(q, { name: 'a.test', edns: true, dnssecOk: true, udpSize: 1232 })
  t.ok(b.equals(query('a.test', 'A', { additionals: [opt(all)] })), 'the client\'s query is not changed')
  for (const o of [cookie, ecs, mac, nsid, macText, keepalive]) {
    t.ok(strip(query('a.test', 'A', { additionals: [opt([o])] })).equals(query('a.test', 'A', { additionals: [opt([])] })), `option ${o.code} taken out`)
  }
  // the OPT record followed by another additional record: copied after it
  const after = query('a.test', 'A', { additionals: [opt([cookie]), { type: 'A', name: 'x.test', ttl: 1, data: '192.0.2.1' }] })
  t.ok(strip(after).equals(query('a.test', 'A', { additionals: [opt([]), { type: 'A', name: 'x.test', ttl: 1, data: '192.0.2.1' }] })))
  // nothing to take out, or no OPT: the very same buffer
  for (const same of [query('a.test', 'A', { additionals: [opt([pad, other])] }), query('a.test'), query('a.test', 'A', { additionals: [opt([])] })]) {
    t.equal(strip(same), same)
  }
  // options that do not fill the RDATA exactly (an option header cut short, a length past the RDATA): FORMERR
  const cut = query('a.test', 'A', { additionals: [opt([cookie])] })
  t.equal(cut.readUInt16BE(cut.length - 14), 12, 'RDLENGTH of the OPT')
  const short = Buffer.from(cut.subarray(0, cut.length - 10))                            // RDATA: 2 octets of an option header
  short.writeUInt16BE(2, short.length - 4)
  t.equal(parseQuery(short), 'formerr', 'a cut option header')
  const long = Buffer.from(cut)
  long.writeUInt16BE(9, long.length - 10)                                                 // the cookie claims 9 octets of 8
  t.equal(parseQuery(long), 'formerr', 'an option longer than the RDATA')
  const shorter = Buffer.from(cut)
  shorter.writeUInt16BE(7, shorter.length - 10)                                           // 7 of 8 octets: one left over
  t.equal(parseQuery(shorter), 'formerr', 'an octet after the last option')
  t.equal(typeof parseQuery(cut), 'object', 'the same query, well formed')
})

t.test('ednsClient: the machine a resolver in front names by Client Subnet (a whole address) and by dnsmasq\'s MAC options', async t => {
  const withOpts = (options: { code: number; data: Buffer }[]): Buffer => query('a.test', 'A', { additionals: [optRr(1232, 0, options)] })
  const read = (options: { code: number; data: Buffer }[], fromLoopback = false) => {
    const b = withOpts(options)
    return ednsClient(b, parseQuery(b) as Query, fromLoopback)
  }
  const ecs = (family: number, source: number, scope: number, addr: number[]) => ({ code: 8, data: Buffer.from([0, family, source, scope, ...addr]) })
  const v6 = (hex: string) => [...Buffer.from(hex, 'hex')]
  t.same(read([ecs(1, 32, 0, [192, 0, 2, 7])]), { ip: '192.0.2.7', mac: undefined }, 'IPv4 /32')
  t.same(read([ecs(2, 128, 0, v6('20010db8000000000000000000000007'))]), { ip: '2001:db8::7', mac: undefined }, 'IPv6 /128, as RFC 5952 text')
  t.same(read([ecs(2, 128, 0, v6('00000000000000000000ffffc0000207'))]), { ip: '192.0.2.7', mac: undefined }, 'IPv4-mapped IPv6: the IPv4 address')
  t.equal(read([ecs(1, 24, 0, [192, 0, 2])]), undefined, 'a /24 is a network, not a machine')
  t.equal(read([ecs(2, 64, 0, v6('20010db800000000'))]), undefined, 'a /64 likewise')
  t.equal(read([ecs(1, 0, 0, [])]), undefined, 'a /0 (dnsmasq\'s default: "add none of it")')
  t.equal(read([ecs(1, 32, 8, [192, 0, 2, 7])]), undefined, 'a scope other than 0 (RFC 7871 §6: 0 in queries)')
  t.equal(read([ecs(1, 32, 0, [192, 0, 2])]), undefined, 'a /32 with three octets of address')
  t.equal(read([ecs(3, 32, 0, [192, 0, 2, 7])]), undefined, 'an unknown family')
  t.equal(read([ecs(1, 32, 0, [0, 0, 0, 0])]), undefined, '0.0.0.0 names no machine')
  t.equal(read([ecs(2, 128, 0, v6('00000000000000000000000000000000'))]), undefined, ':: names no machine')
  t.equal(read([ecs(1, 32, 0, [127, 0, 0, 5])]), undefined, 'a loopback address from a resolver on another host: its own machine')
  t.equal(read([ecs(2, 128, 0, v6('00000000000000000000000000000001'))]), undefined, '::1 likewise')
  t.same(read([ecs(1, 32, 0, [127, 0, 0, 5])], true), { ip: '127.0.0.5', mac: undefined }, 'from a resolver on this host: a machine here')
  t.same(read([{ code: 65001, data: Buffer.from('02005e10000a', 'hex') }]), { ip: undefined, mac: '02-00-5E-10-00-0A' }, '--add-mac: six octets')
  t.same(read([{ code: 65073, data: Buffer.from('02:00:5e:10:00:0a') }]), { ip: undefined, mac: '02-00-5E-10-00-0A' }, '--add-mac=text')
  // dnsmasq's --add-mac=base64: each three octets as four characters of the standard alphabet (02 00 5e → AgBe, 10 00 0a → EAAK)
  t.same(read([{ code: 65073, data: Buffer.from('AgBeEAAK') }]), { ip: undefined, mac: '02-00-5E-10-00-0A' }, '--add-mac=base64')
  t.same(read([{ code: 65073, data: Buffer.from('+/+/+/+/') }]), { ip: undefined, mac: 'FB-FF-BF-FB-FF-BF' }, 'base64: the last two characters of the alphabet')
  t.equal(read([{ code: 65073, data: Buffer.from('AgBe*AAK') }]), undefined, 'base64 with a character outside the alphabet')
  t.equal(read([{ code: 65073, data: Buffer.from('02-00-5e-10-00-0a') }]), undefined, 'text not in dnsmasq\'s form')
  t.equal(read([{ code: 65073, data: Buffer.from('a device id') }]), undefined, 'a device ID of another length')
  t.equal(read([{ code: 65001, data: Buffer.from('02005e1000', 'hex') }]), undefined, 'a MAC of five octets')
  t.same(read([{ code: 12, data: Buffer.alloc(3) }, ecs(1, 32, 0, [10, 1, 2, 3]), { code: 65001, data: Buffer.from('02005e10000a', 'hex') }]),
    { ip: '10.1.2.3', mac: '02-00-5E-10-00-0A' }, 'both, among other options')
  t.equal(read([]), undefined, 'an OPT record without options')
  const plain = query('a.test')
  t.equal(ednsClient(plain, parseQuery(plain) as Query, false), undefined, 'no OPT record')
})
