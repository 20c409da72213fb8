import t from 'tap'
import type { Test } from 'tap'
import { createSocket } from 'node:dgram'
import { connect, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import dnsPacket from 'dns-packet'
import { startDns, type DnsService } from '../../src/dns/server.js'
import { frame, FrameReader } from '../../src/dns/framing.js'
import { memoryEvidence, type MemoryEvidence } from '../fixtures/evidence.js'
import { makeSnapshot } from '../fixtures/snapshot.js'
import { startUnbound } from '../fixtures/unbound.js'
import { decodeMsg, dig } from '../fixtures/dig.js'

async function stack(t: Test): Promise<{ dns: DnsService; ev: MemoryEvidence; port: number }> {
  const ub = await startUnbound(t)
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { dns: { upstreams: [ub.url], tcp: { idleTimeout: '300ms', maxConnections: 3 } } } })
  const dns = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev })
  t.teardown(() => dns.close())
  return { dns, ev, port: dns.addresses[0]!.port }
}

/** Send datagrams from one socket; the replies that came back within `ms` (sooner once `want` came). */
async function udp(port: number, msgs: Buffer[], ms = 250, want = Infinity): Promise<Buffer[]> {
  const s = createSocket('udp4')
  const got: Buffer[] = []
  let enough: () => void = () => {}
  s.on('message', m => { if (got.push(m) >= want) enough() })
  await new Promise<void>(r => s.bind(0, '127.0.0.1', () => r()))
  for (const m of msgs) s.send(m, port, '127.0.0.1')
  await new Promise<void>(r => { enough = r; setTimeout(r, ms) })
  s.close()
  return got
}

const header = (flags: number, qd: number, ar = 0): Buffer => {
  const h = Buffer.alloc(12)
  h.writeUInt16BE(0xbeef, 0)
  h.writeUInt16BE(flags, 2)
  h.writeUInt16BE(qd, 4)
  h.writeUInt16BE(ar, 10)
  return h
}
const notify = (): Buffer => {
  const m = dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'SOA', name: 'test' }] })
  m.writeUInt16BE(4 << 11, 2)
  return m
}
const longName = (): Buffer => {
  const parts: number[] = []
  for (let i = 0; i < 5; i++) parts.push(63, ...new Array<number>(63).fill(97))
  return Buffer.from([...parts, 0, 0, 1, 0, 1])
}

t.test('hostile datagrams: FORMERR or dropped, and the next query is still served', async t => {
  const s = await stack(t)
  const cases: [string, Buffer, string | undefined][] = [
    ['truncated header', Buffer.from([1, 2, 3, 4, 5]), undefined],
    ['empty datagram', Buffer.alloc(0), undefined],
    ['a response sent to the server', dnsPacket.encode({ type: 'response', id: 1, questions: [{ type: 'A', name: 'a.test' }] }), undefined],
    ['header only, one question announced', header(0x0100, 1), 'FORMERR'],
    ['compression pointer loop', Buffer.concat([header(0x0100, 1), Buffer.from([1, 97, 0xc0, 12, 0, 1, 0, 1])]), 'FORMERR'],
    ['pointer to itself', Buffer.concat([header(0x0100, 1), Buffer.from([0xc0, 12, 0, 1, 0, 1])]), 'FORMERR'],
    ['name over 255 octets', Buffer.concat([header(0x0100, 1), longName()]), 'FORMERR'],
    ['garbage OPT', Buffer.concat([header(0x0100, 1, 1), Buffer.from([1, 97, 0, 0, 1, 0, 1, 0, 0, 41])]), 'FORMERR'],
    ['opcode NOTIFY', notify(), 'NOTIMP'],
  ]
  for (const [what, msg, expect] of cases) {
    const got = expect === undefined ? await udp(s.port, [msg]) : await udp(s.port, [msg], 3000, 1)
    if (expect === undefined) t.equal(got.length, 0, `${what}: dropped`)
    else {
      t.equal(got.length, 1, what)
      t.equal(decodeMsg(got[0]!).rcode, expect, `${what}: ${expect}`)
    }
    t.equal((await dig({ address: '127.0.0.1', port: s.port }, 'a.test')).status, 'NOERROR', `served after: ${what}`)
  }
  t.ok(s.ev.counts['dropped.malformed']! >= 8)
})

t.test('a query with TC set, or carrying answer or authority records, or two additional ones, is FORMERR with its question, though dig has its answer cached', async t => {
  const s = await stack(t)
  const server = { address: '127.0.0.1', port: s.port }
  // cached under the keys the queries below have (no AD; without EDNS, and with it)
  t.equal((await dig(server, 'a.test', 'A', ['+noedns', '+noadflag'])).status, 'NOERROR', 'asked by dig: answered, and cached')
  t.equal((await dig(server, 'a.test', 'A', ['+noadflag'])).status, 'NOERROR', 'with EDNS too')
  const a: dnsPacket.Answer = { type: 'A', name: 'a.test', ttl: 60, data: '192.0.2.66' }
  const opt = { type: 'OPT', name: '.', udpPayloadSize: 1232 } as unknown as dnsPacket.Answer
  const base: dnsPacket.Packet = { type: 'query', id: 0x5151, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'a.test' }] }
  const before = s.ev.counts['dropped.malformed'] ?? 0
  for (const [what, msg] of [
    ['ANCOUNT 1', dnsPacket.encode({ ...base, answers: [a] })],
    ['NSCOUNT 1', dnsPacket.encode({ ...base, authorities: [a] })],
    ['ARCOUNT 2 (OPT and another record)', dnsPacket.encode({ ...base, additionals: [opt, a] })],
    ['TC set', dnsPacket.encode({ ...base, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.TRUNCATED_RESPONSE })],
  ] as const) {
    const got = await udp(s.port, [msg], 3000, 1)
    t.equal(got.length, 1, what)
    t.match(decodeMsg(got[0]!), { id: 0x5151, rcode: 'FORMERR', questions: [{ name: 'a.test', type: 'A' }], answers: [] }, `${what}: FORMERR, the question echoed, no cached answer`)
    t.equal(decodeMsg(got[0]!).additionals.length, what.startsWith('ARCOUNT') ? 1 : 0, `${what}: an OPT only for a query that had one (RFC 6891 §6.1.1)`)
  }
  // a well-formed OPT beside what is wrong: the FORMERR has one, as unbound's has (RFC 6891 §6.1.1)
  for (const [what, msg, questions] of [
    ['TC set, with an OPT', dnsPacket.encode({ ...base, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.TRUNCATED_RESPONSE, additionals: [opt] }), 1],
    ['no question, an OPT (RFC 7873 §5.4)', dnsPacket.encode({ ...base, questions: [], additionals: [opt] }), 0],
  ] as const) {
    const got = await udp(s.port, [msg], 3000, 1)
    t.equal(got.length, 1, what)
    t.match(decodeMsg(got[0]!), { id: 0x5151, rcode: 'FORMERR', questions: { length: questions }, additionals: [{ type: 'OPT', udpPayloadSize: 1232 }] }, what)
  }
  // a query signed with TSIG by dig, without EDNS: its one additional record is no OPT
  const signed = await dig(server, 'a.test', 'A', ['+noedns', '+noadflag', '-y', 'hmac-sha256:key.test:c2VjcmV0c2VjcmV0c2VjcmV0'])
  t.equal(signed.status, 'FORMERR', 'TSIG alone: FORMERR, not sent upstream nor answered from the cache')
  t.equal(signed.answer.length, 0)
  t.equal(s.ev.counts['dropped.malformed'], before + 7, 'counted as malformed')
  t.equal(s.ev.events.filter(e => e.client.port !== 0 && e.dns?.rcode === 'FORMERR').length, 0, 'no decision line for them')
  t.equal((await dig(server, 'a.test')).answer.length, 1, 'the cached answer is still served to a plain query')
})

t.test('random bytes in volume: no crash, memory stays bounded', async t => {
  const s = await stack(t)
  setFlagsFromString('--expose_gc')
  const gc = runInNewContext('gc') as () => void
  const sample = (): Buffer[] => Array.from({ length: 500 }, () => randomBytes(Math.floor(Math.random() * 700)))
  await udp(s.port, sample(), 50)
  gc()
  const before = process.memoryUsage().heapUsed
  for (let round = 0; round < 20; round++) await udp(s.port, sample(), 20)
  gc()
  const grown = process.memoryUsage().heapUsed - before
  t.ok(grown < 16 * 1024 * 1024, `heap grew ${Math.round(grown / 1024)} KiB over 10,000 random datagrams`)
  for (let i = 0, last = -1; i < 50; i++) {                // let the server work through its socket buffer
    const n = s.ev.counts['dropped.malformed'] ?? 0
    if (n === last) break
    last = n
    await new Promise(r => setTimeout(r, 200))
  }
  const after = await dig({ address: '127.0.0.1', port: s.port }, 'a.test', 'A', ['+time=5'])
  t.equal(after.status, 'NOERROR')
})

/** Open a TCP connection; collect the frames it answers. */
function tcp(port: number): Promise<{ sock: Socket; frames: Buffer[]; closed: Promise<void> }> {
  return new Promise(resolve => {
    const sock = connect(port, '127.0.0.1')
    const frames: Buffer[] = []
    const reader = new FrameReader()
    sock.on('data', c => reader.push(c, m => frames.push(Buffer.from(m))))
    sock.on('error', () => {})
    const closed = new Promise<void>(r => sock.once('close', () => r()))
    sock.once('connect', () => resolve({ sock, frames, closed }))
  })
}
const q = (id: number, name: string): Buffer => dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] })
const until = async (cond: () => boolean, ms = 2000): Promise<void> => {
  for (let i = 0; i < ms / 10 && !cond(); i++) await new Promise(r => setTimeout(r, 10))
}

t.test('TCP: frames in pieces, several per segment, answered as they complete', async t => {
  const s = await stack(t)
  const c = await tcp(s.port)
  t.teardown(() => c.sock.destroy())
  const all = Buffer.concat([frame(q(1, 'a.test')), frame(q(2, 'tunnel.ngrok.io')), frame(q(3, 'zz.test'))])
  // the first frame in three reads (its length split), the last read with the other two: the
  // synthetic answer goes out in the same turn, before the upstream can answer the forwarded one
  c.sock.write(all.subarray(0, 1))
  await new Promise(r => setTimeout(r, 20))
  c.sock.write(all.subarray(1, 20))
  await new Promise(r => setTimeout(r, 20))
  c.sock.write(all.subarray(20))
  await until(() => c.frames.length === 3)
  const byId = new Map(c.frames.map(f => [decodeMsg(f).id, decodeMsg(f)]))
  t.equal(byId.get(1)?.answers[0]?.data, '192.0.2.1')
  t.equal(byId.get(2)?.answers[0]?.data, '0.0.0.0')
  t.equal(byId.get(3)?.rcode, 'NXDOMAIN')
  t.equal(decodeMsg(c.frames[0]!).id, 2, 'the synthetic answer did not wait for the forwarded ones')
  c.frames.length = 0
  c.sock.write(Buffer.concat(Array.from({ length: 150 }, (_, i) => frame(q(100 + i, `n${i}.zz.test`)))))
  await until(() => c.frames.length === 150, 20_000)
  t.equal(new Set(c.frames.map(f => decodeMsg(f).id)).size, 150, '150 pipelined queries on one connection, all answered')
})

t.test('TCP: a frame announced and never sent is closed at the idle timeout; connections are capped (an idle one makes room)', async t => {
  const s = await stack(t)
  const half = await tcp(s.port)
  half.sock.write(Buffer.from([0, 100, 1, 2, 3]))
  await half.closed
  t.pass('closed by the idle timeout')
  // four idle connections at a cap of three: the one idle longest makes room for the fourth
  // (none idle: refused, dns-tcp-shed.test.ts)
  const conns = await Promise.all([tcp(s.port), tcp(s.port), tcp(s.port), tcp(s.port)])
  t.teardown(() => { for (const c of conns) c.sock.destroy() })
  await Promise.race(conns.map(c => c.closed))
  t.ok(s.ev.counts['dropped.shed']! >= 1, 'an idle connection was closed for the one over the cap')
  t.match(s.ev.messages.filter(m => m.msg === 'dns tcp connection closed: idle, to make room for a new one'), [
    { level: 'warn', fields: { 'client.ip': '127.0.0.1', closed: 1 } },
  ], 'and logged')
  for (const c of conns) c.sock.destroy()
  await Promise.all(conns.map(c => c.closed))
  const after = await dig({ address: '127.0.0.1', port: s.port }, 'a.test', 'A', ['+tcp'])
  t.equal(after.status, 'NOERROR', 'TCP still served')
  const bad = await tcp(s.port)
  bad.sock.write(frame(dnsPacket.encode({ type: 'response', id: 9, questions: [{ type: 'A', name: 'a.test' }] })))
  bad.sock.write(frame(q(10, 'a.test')))
  await until(() => bad.frames.length === 1)
  t.same(bad.frames.map(f => decodeMsg(f).id), [10], 'a response on TCP is dropped, the connection goes on')
  bad.sock.destroy()
})
