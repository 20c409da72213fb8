import t from 'tap'
import type { Test } from 'tap'
import dnsPacket from 'dns-packet'
import { startDns } from '../../src/dns/server.js'
import { frame } from '../../src/dns/framing.js'
import type { ConfigInput } from '../../src/config/schema.js'
import { memoryEvidence, type MemoryEvidence } from '../fixtures/evidence.js'
import { makeSnapshot } from '../fixtures/snapshot.js'
import { decodeMsg, dig } from '../fixtures/dig.js'
import { slowUpstream } from '../fixtures/slow-upstream.js'
import { openTcp as open } from '../fixtures/dns-tcp-conn.js'

// DNS over TCP against the limits a client could abuse to hold the listener's connections.
// The queries are for the DoH canary (use-application-dns.net), answered by the server itself.

const CANARY = 'use-application-dns.net'
const q = (id: number, name = CANARY): Buffer => dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] })
const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))

async function server(t: Test, dns: NonNullable<ConfigInput['dns']>): Promise<{ port: number; ev: MemoryEvidence }> {
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { dns } })
  const s = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev })
  t.teardown(() => s.close())
  return { port: s.addresses[1]!.port, ev }
}

const within = (p: Promise<void>, ms: number): Promise<boolean> =>
  Promise.race([p.then(() => true), sleep(ms).then(() => false)])
const until = async (cond: () => boolean, ms = 5000): Promise<void> => {
  for (let i = 0; i < ms / 10 && !cond(); i++) await sleep(10)
}

t.test('a client outside allowClients is refused at accept: closed at once, before it sends a byte', async t => {
  const s = await server(t, { allowClients: ['127.0.0.1/32'] })
  const strangers = await Promise.all(Array.from({ length: 5 }, () => open(s.port, '127.0.0.77')))
  for (const c of strangers) t.ok(await within(c.closed, 5000), 'closed without a query')
  t.equal(s.ev.counts['dropped.refused'], 5)
  t.equal(s.ev.counts['conn.dns-tcp'] ?? 0, 0, 'never counted as open')
  t.same(s.ev.messages.filter(m => m.msg === 'dns client refused').map(m => m.fields), [
    { 'client.ip': '127.0.0.77', refused: 1, reason: 'not in dns.allowClients' },
  ], 'named once per window, as over UDP')
  const ok = await dig({ address: '127.0.0.1', port: s.port }, CANARY, 'A', ['+tcp'])
  t.equal(ok.status, 'NXDOMAIN', 'an allowed client is served')
})

t.test('connections per client are capped (dns.tcp.maxConnectionsPerClient); other clients still get in', async t => {
  const s = await server(t, { tcp: { maxConnectionsPerClient: 3 } })
  const mine = await Promise.all([open(s.port), open(s.port), open(s.port)])
  t.teardown(() => { for (const c of mine) c.sock.destroy() })
  const over = await open(s.port)
  t.ok(await within(over.closed, 5000), 'the fourth from the same address is closed at once')
  t.equal(s.ev.counts['dropped.overload'], 1)
  t.same(s.ev.messages.filter(m => m.msg === 'dns tcp connection refused: too many from this client').map(m => m.fields), [
    { 'client.ip': '127.0.0.1', refused: 1, maxConnectionsPerClient: 3 },
  ])
  const other = await open(s.port, '127.0.0.2')
  other.sock.write(frame(q(7)))
  await until(() => other.frames.length === 1)
  t.equal(decodeMsg(other.frames[0]!).id, 7, 'another address is served')
  other.sock.destroy()
  mine[0]!.sock.write(frame(q(8)))
  await until(() => mine[0]!.frames.length === 1)
  t.equal(decodeMsg(mine[0]!.frames[0]!).id, 8, 'the held connections still work')
  mine[0]!.sock.destroy()
  await mine[0]!.closed
  await sleep(50)
  const again = await open(s.port)
  again.sock.write(frame(q(9)))
  await until(() => again.frames.length === 1)
  t.equal(again.frames.length, 1, 'a closed connection gives its place back')
  again.sock.destroy()
})

t.test('a resolver in front (dns.trustEdnsFrom) is not held to the per-client cap; its TCP queries name the machine it gives', async t => {
  const s = await server(t, { tcp: { maxConnectionsPerClient: 2 }, trustEdnsFrom: ['127.0.0.3/32'] })
  const held = await Promise.all([1, 2, 3, 4].map(() => open(s.port, '127.0.0.3')))
  t.teardown(() => { for (const c of held) c.sock.destroy() })
  const ecs = { code: 8, data: Buffer.from([0, 1, 32, 0, 10, 4, 4, 4]) }
  const asked = dnsPacket.encode({ type: 'query', id: 11, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: CANARY }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0, options: [ecs] } as unknown as dnsPacket.Answer] })
  held[3]!.sock.write(frame(asked))
  await until(() => held[3]!.frames.length === 1)
  t.equal(decodeMsg(held[3]!.frames[0]!).rcode, 'NXDOMAIN', 'its fourth connection (the cap is 2) is served')
  t.equal(s.ev.counts['dropped.overload'], undefined, 'none refused')
  t.match(s.ev.events.at(-1), { client: { ip: '10.4.4.4', port: 0 }, transport: 'tcp', extra: { 'source.ip': '127.0.0.3' } })
  const mine = await Promise.all([open(s.port, '127.0.0.4'), open(s.port, '127.0.0.4')])
  t.teardown(() => { for (const c of mine) c.sock.destroy() })
  const over = await open(s.port, '127.0.0.4')
  t.ok(await within(over.closed, 5000), 'an untrusted client still is: its third is closed at once')
})

t.test('a message must be complete within the idle timeout of its first octet, however often octets come', async t => {
  const s = await server(t, { tcp: { idleTimeout: '500ms' } })
  const drip = await open(s.port)
  drip.sock.write(Buffer.from([0xff, 0xff]))         // a 65,535-octet message announced
  for (let i = 0; i < 100 && !drip.isClosed(); i++) {   // then an octet every 100 ms: each would restart an idle timer
    drip.sock.write(Buffer.from([0x41]))
    await sleep(100)
  }
  t.ok(drip.isClosed(), 'closed before 10 s of dripping (the deadline is 0.5 s)')
})

t.test('RFC 7766 kept: a connection in use outlives the idle timeout; each message has its own deadline', async t => {
  const s = await server(t, { tcp: { idleTimeout: '500ms' } })
  const c = await open(s.port)
  // every write ends inside a message and finishes the one before: a message is always pending on
  // the connection for 2 s, but none takes more than 200 ms
  const wire = Buffer.concat(Array.from({ length: 10 }, (_, i) => frame(q(i))))
  const step = Math.ceil(wire.length / 10)
  for (let at = 0; at < wire.length; at += step) {
    c.sock.write(wire.subarray(at, at + step))
    await sleep(200)
  }
  await until(() => c.frames.length === 10)
  t.same(c.frames.map(f => decodeMsg(f).id), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'all answered, in order')
  t.notOk(c.isClosed(), 'still open')
  t.ok(await within(c.closed, 5000), 'then closed by the idle timeout')
})

t.test('pipelining is capped per query: at most 128 of one connection\'s queries in flight, the rest taken as answers go out', async t => {
  let now = 0
  let most = 0
  const slow = await slowUpstream(t, 200, { onQuery: () => { most = Math.max(most, ++now) }, onAnswer: () => { now-- } })
  const s = await server(t, { upstreams: [slow.url] })
  const c = await open(s.port)
  t.teardown(() => c.sock.destroy())
  c.sock.write(Buffer.concat(Array.from({ length: 300 }, (_, i) => frame(q(i, `n${i}.slow.test`)))))   // one write
  await until(() => c.frames.length === 300, 30_000)
  t.equal(new Set(c.frames.map(f => decodeMsg(f).id)).size, 300, 'all 300 answered')
  t.ok(most <= 128, `at most 128 at the upstream at once (${most})`)
  t.ok(most >= 64, `and pipelined, not one by one (${most})`)
})

t.test('a client that does not read its answers: no more of its queries are taken until it does', async t => {
  const ev = memoryEvidence({ logsPass: false })
  const snap = makeSnapshot()
  const dns = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev })
  t.teardown(() => dns.close())
  const c = await open(dns.addresses[1]!.port)
  t.teardown(() => c.sock.destroy())
  c.sock.pause()                                   // reads nothing
  // ~100-octet answers: the kernel holds what the server writes up to its send buffer's
  // ceiling (net.ipv4.tcp_wmem, 4 MiB by default: ~40,000 answers) and the client's receive buffer
  const n = 200_000
  c.sock.write(Buffer.concat(Array.from({ length: n }, (_, i) => frame(q(i & 0xffff)))))
  const answered = (): number => ev.counts['decided.pass'] ?? 0
  for (let i = 0, last = -1; i < 100; i++) {       // until the server stops taking queries
    await sleep(200)
    if (answered() === last) break
    last = answered()
  }
  t.ok(answered() < n / 2, `${answered()} of ${n} answered while none was read: the rest wait in the client's socket`)
  c.sock.resume()
  await until(() => c.frames.length === n, 120_000)
  t.equal(c.frames.length, n, 'all answered once the client reads')
})

t.test('a client gone (reset) before its answer: the answer is dropped, nothing is written to the closed connection, the next client is served', async t => {
  let answered = 0
  const slow = await slowUpstream(t, 300, { onAnswer: () => { answered++ } })
  const s = await server(t, { upstreams: [slow.url] })
  const c = await open(s.port)
  c.sock.write(frame(q(1, 'gone.slow.test')))
  await sleep(50)                                     // the query is with the upstream
  c.sock.resetAndDestroy()
  await c.closed
  for (let i = 0; i < 100 && answered === 0; i++) await sleep(20)
  t.equal(answered, 1, 'the upstream answered after the client had gone')
  await sleep(50)
  const next = await open(s.port)
  t.teardown(() => next.sock.destroy())
  next.sock.write(frame(q(2)))
  await until(() => next.frames.length === 1)
  t.equal(decodeMsg(next.frames[0]!).id, 2, 'served')
  t.same(s.ev.events.filter(e => e.dns?.name === 'gone.slow.test').map(e => e.dns!.rcode), ['NOERROR'], 'the query is logged (decided and answered) once')
})

t.test('a client that closes its side after its queries (half-close) still gets every answer, then the FIN', async t => {
  const slow = await slowUpstream(t, 100)           // answers after 100 ms: the answers go out after the client's FIN
  const s = await server(t, { upstreams: [slow.url] })
  const c = await open(s.port)
  t.teardown(() => c.sock.destroy())
  c.sock.end(Buffer.concat([frame(q(1, 'a.slow.test')), frame(q(2, 'b.slow.test')), frame(q(3))]))
  t.ok(await within(c.closed, 5000), 'closed by the server once answered')
  t.same(c.frames.map(f => [decodeMsg(f).id, decodeMsg(f).rcode]).sort(), [[1, 'NOERROR'], [2, 'NOERROR'], [3, 'NXDOMAIN']],
    'the canary at once and both forwarded answers, after the FIN')

  // a FIN with half a message: the whole ones are answered, then the connection is ended
  const part = await open(s.port)
  t.teardown(() => part.sock.destroy())
  const cut = frame(q(5, 'c.slow.test'))
  part.sock.end(Buffer.concat([frame(q(4, 'd.slow.test')), cut.subarray(0, 7)]))
  t.ok(await within(part.closed, 5000), 'ended, not held until the idle timeout')
  t.same(part.frames.map(f => decodeMsg(f).id), [4])

  // a FIN alone: ended at once
  const idle = await open(s.port)
  idle.sock.end()
  t.ok(await within(idle.closed, 2000), 'no query: ended at once')
  t.equal(idle.frames.length, 0)
})
