import t from 'tap'
import dnsPacket from 'dns-packet'
import { restoreCase } from '../../src/dns/case.js'
import { HEADER } from '../../src/dns/wire.js'

const query = (name: string): Buffer => dnsPacket.encode({ type: 'query', id: 7, flags: 0x0100, questions: [{ type: 'A', name }] })

/** A reply as a server writes it: the question sent, and (dns-packet does not compress) every name written out. */
const reply = (asked: string, answers: dnsPacket.Answer[], authorities: dnsPacket.Answer[] = []): Buffer =>
  dnsPacket.encode({ type: 'response', id: 7, flags: 0x8180, questions: [{ type: 'A', name: asked }], answers, authorities })

const names = (b: Buffer): string[] => {
  const p = dnsPacket.decode(b)
  return [...(p.answers ?? []), ...(p.authorities ?? [])].map(a => {
    const data = (a as { data?: unknown }).data
    return `${a.name} ${a.type} ${typeof data === 'string' ? data : ''}`.trim()
  })
}

t.test('a DNAME\'s CNAME and the owners written out get the client\'s case back', async t => {
  const sent = query('aBcDeFgH.Dn.tEsT')
  const client = query('abcdefgh.DN.test')
  const r = reply('aBcDeFgH.Dn.tEsT', [
    { type: 'DNAME', name: 'Dn.tEsT', ttl: 300, data: 'target.test' },
    { type: 'CNAME', name: 'aBcDeFgH.Dn.tEsT', ttl: 0, data: 'aBcDeFgH.target.tEsT' },
    { type: 'A', name: 'aBcDeFgH.target.tEsT', ttl: 60, data: '192.0.2.1' },
  ])
  restoreCase(r, sent, client)
  t.same(names(r), [
    'Dn.tEsT DNAME target.test',                       // its own name starts at the question's second label: not the same place
    'abcdefgh.DN.test CNAME abcdefgh.target.test',
    'abcdefgh.target.test A 192.0.2.1',
  ])
})

t.test('only labels that are the question\'s own, case and all, at the same place', async t => {
  const sent = query('XyZ.example.TeSt')
  const client = query('xyz.example.test')
  const r = reply('XyZ.example.TeSt', [
    { type: 'CNAME', name: 'XyZ.example.TeSt', ttl: 60, data: 'xYz.Other.TeSt' },    // the zone's own spelling: kept
    { type: 'CNAME', name: 'xYz.Other.TeSt', ttl: 60, data: 'XyZ.XyZ.XyZ' },         // labels 2 and 3 are not the question's there
    { type: 'NS', name: 'XyZ.example.TeSt', ttl: 60, data: 'XyZ.example.TeSt' },   // NS targets are not visited
  ], [{ type: 'SOA', name: 'TeSt', ttl: 60, data: { mname: 'XyZ.example.TeSt', rname: 'h.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 1 } }])
  restoreCase(r, sent, client)
  t.same(names(r), [
    // "TeSt" is the question's third label, case and all: rewritten (the same name without case either way)
    'xyz.example.test CNAME xYz.Other.test',
    'xYz.Other.test CNAME xyz.XyZ.XyZ',
    'xyz.example.test NS XyZ.example.TeSt',
    'TeSt SOA',
  ])
})

t.test('a name with a pointer: the labels before it, then it stops', async t => {
  const sent = query('AbC.tEsT')
  const client = query('abc.test')
  // header, question AbC.tEsT A IN, then one CNAME: owner = pointer to the question, target = "AbC" + pointer to "tEsT"
  const q = Buffer.from(sent.subarray(HEADER))
  const owner = Buffer.from([0xc0, HEADER])
  const target = Buffer.from([3, ...Buffer.from('AbC'), 0xc0, HEADER + 4])
  const rr = Buffer.concat([owner, Buffer.from([0, 5, 0, 1, 0, 0, 0, 60, 0, target.length]), target])
  const head = Buffer.from([0, 7, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0])
  const r = Buffer.concat([head, q, rr])
  restoreCase(r, sent, client)
  t.same(r.subarray(r.length - target.length), Buffer.from([3, ...Buffer.from('abc'), 0xc0, HEADER + 4]), 'the written label restored, the pointer left')
  t.equal(r.subarray(HEADER, HEADER + q.length).toString('latin1'), q.toString('latin1'), 'the question is the caller\'s to write')
})

t.test('a malformed or short reply is left as it is', async t => {
  const sent = query('AbC.tEsT')
  const client = query('abc.test')
  const good = reply('AbC.tEsT', [{ type: 'CNAME', name: 'AbC.tEsT', ttl: 60, data: 'AbC.x.test' }])
  for (const cut of [4, HEADER + 3, good.length - 20, good.length - 5, good.length - 1]) {
    const r = Buffer.from(good.subarray(0, cut))
    const before = Buffer.from(r)
    restoreCase(r, sent, client)
    t.same(r, before, `cut at ${cut}`)
  }
  // the CNAME's rdlength past the end: the record is not visited
  const past = Buffer.from(good)
  past.writeUInt16BE(13, past.length - 14)
  const copy = Buffer.from(past)
  restoreCase(past, sent, client)
  t.same(past, copy)
  // a target inside its rdata whose label runs past the end, or that ends without its root label:
  // the owner is restored, the target's labels as far as they are whole
  for (const rdata of [[5, 0x41, 0x62], [3, 0x41, 0x62, 0x43]]) {
    const head = Buffer.from(good.subarray(0, good.length - 14))
    const r = Buffer.concat([head, Buffer.from([0, rdata.length]), Buffer.from(rdata)])
    restoreCase(r, sent, client)
    t.equal(dnsPacket.decode(Buffer.concat([r.subarray(0, head.length), Buffer.from([0, 1, 0])])).answers![0]!.name, 'abc.test')
    t.same(r.subarray(head.length + 2), Buffer.from(rdata[0] === 3 ? [3, 0x61, 0x62, 0x63] : rdata), `rdata ${JSON.stringify(rdata)}`)
  }
})
