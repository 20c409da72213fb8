import t from 'tap'
import type { Test } from 'tap'
import dnsPacket from 'dns-packet'
import { startDns } from '../../src/dns/server.js'
import { frame } from '../../src/dns/framing.js'
import type { ConfigInput } from '../../src/config/schema.js'
import { FdBudget } from '../../src/observe/fd-check.js'
import { memoryEvidence, type MemoryEvidence } from '../fixtures/evidence.js'
import { makeSnapshot } from '../fixtures/snapshot.js'
import { dig } from '../fixtures/dig.js'
import { openTcp, type TcpConn as Conn } from '../fixtures/dns-tcp-conn.js'

// A TCP DNS listener at its cap (dns.tcp.maxConnections), or with the process's descriptors
// within their reserve: a new connection closes the one idle longest (RFC 7766 §6.2.3) and is
// served; it is refused only when none is idle (a query in flight, part of a message received).
// The queries are for the DoH canary, answered by the server itself.

const CANARY = 'use-application-dns.net'
const q = (id: number): Buffer => dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: CANARY }] })
const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))

async function server(t: Test, dns: NonNullable<ConfigInput['dns']>, fds?: FdBudget): Promise<{ port: number; ev: MemoryEvidence }> {
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { dns } })
  const s = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev, fds })
  t.teardown(() => s.close())
  return { port: s.addresses[1]!.port, ev }
}

/** A TCP connection from `from`, once the server has it (a query answered on it, unless `quiet`). */
async function open(t: Test, port: number, from = '127.0.0.1', quiet = false): Promise<Conn> {
  const conn = await openTcp(port, from)
  t.teardown(() => conn.sock.destroy())
  if (!quiet) await ask(conn)
  return conn
}
/** Send a query on `c` and wait for its answer: the connection is busy, then idle again. */
async function ask(c: Conn): Promise<void> {
  const n = c.frames.length
  c.sock.write(frame(q(n + 1)))
  await until(() => c.frames.length > n || c.isClosed())
}
const until = async (cond: () => boolean, ms = 5000): Promise<void> => {
  for (let i = 0; i < ms / 10 && !cond(); i++) await sleep(10)
}
const msgs = (ev: MemoryEvidence, msg: string) => ev.messages.filter(m => m.msg === msg).map(m => m.fields)

t.test('at the cap, a new connection closes the one idle longest and is served (dig +tcp)', async t => {
  const s = await server(t, { tcp: { maxConnections: 4, idleTimeout: '30s' } })
  const a = await open(t, s.port, '127.0.0.2')
  const b = await open(t, s.port, '127.0.0.3')
  const c = await open(t, s.port, '127.0.0.4')
  const d = await open(t, s.port, '127.0.0.5')
  await ask(a)                                       // a was busy last: b has been idle longest
  const got = await dig({ address: '127.0.0.1', port: s.port }, CANARY, 'A', ['+tcp'])
  t.equal(got.status, 'NXDOMAIN', 'the newcomer is answered, not refused')
  await until(() => b.isClosed())
  t.ok(b.isClosed(), 'the connection idle longest was closed')
  t.notOk(a.isClosed() || c.isClosed() || d.isClosed(), 'the others stay open')
  t.equal(s.ev.counts['dropped.shed'], 1, 'counted as dropped, reason shed')
  t.equal(s.ev.counts['dropped.overload'], undefined, 'nothing refused')
  t.same(msgs(s.ev, 'dns tcp connection closed: idle, to make room for a new one'), [{ 'client.ip': '127.0.0.3', closed: 1 }], 'said, naming the client closed')
  await ask(c)
  t.equal(c.frames.length, 2, 'the connections kept are still served')
  // dig's connection has closed: a place is free, nothing is shed for the next one
  await until(() => (s.ev.counts['conn.dns-tcp'] ?? 0) === 3)
  await open(t, s.port, '127.0.0.6')
  t.equal(s.ev.counts['dropped.shed'], 1, 'below the cap, nothing is shed')
})

t.test('a connection with a query in flight or part of a message is never shed; with none idle the newcomer is refused', async t => {
  const s = await server(t, { tcp: { maxConnections: 3, idleTimeout: '30s' } })
  const partial = await open(t, s.port, '127.0.0.2')
  partial.sock.write(Buffer.from([0, 40, 1, 2]))      // a message begun, not finished
  const idle = await open(t, s.port, '127.0.0.3')
  const third = await open(t, s.port, '127.0.0.4')
  third.sock.write(Buffer.from([0]))                 // half of a length
  await sleep(100)
  const first = await open(t, s.port, '127.0.0.5', true)
  await until(() => idle.isClosed())
  t.ok(idle.isClosed(), 'the idle one made room, though the partial one is older')
  t.notOk(partial.isClosed() || third.isClosed(), 'the busy ones stay')
  await ask(first)
  t.equal(first.frames.length, 1, 'the newcomer is served')
  first.sock.write(Buffer.from([0, 30]))              // now none is idle
  await sleep(100)
  const refused = await open(t, s.port, '127.0.0.6', true)
  await until(() => refused.isClosed())
  t.ok(refused.isClosed(), 'none idle: the newcomer is refused')
  t.notOk(partial.isClosed() || third.isClosed() || first.isClosed(), 'and nothing else is closed')
  t.equal(s.ev.counts['dropped.shed'], 1)
  t.equal(s.ev.counts['dropped.overload'], 1)
  t.same(msgs(s.ev, 'dns tcp connection refused: too many open'), [{ 'client.ip': '127.0.0.6', refused: 1, maxConnections: 3 }])
})

t.test('a refused connection does not count against its client (maxConnectionsPerClient)', async t => {
  const s = await server(t, { tcp: { maxConnections: 1, maxConnectionsPerClient: 2, idleTimeout: '30s' } })
  const busy = await open(t, s.port, '127.0.0.2')
  busy.sock.write(Buffer.from([0, 40]))
  await sleep(50)
  for (let i = 0; i < 3; i++) {
    const c = await open(t, s.port, '127.0.0.3', true)
    await until(() => c.isClosed())
  }
  t.equal(s.ev.counts['dropped.overload'], 3)
  t.same(msgs(s.ev, 'dns tcp connection refused: too many from this client'), [], 'each refused for the cap, never for the client\'s own')
})

t.test('open files within the reserve of the limit: an idle connection makes room, or the newcomer is refused', async t => {
  let open_ = 10
  let now = 0
  const limit = 200                                  // reserve 64: low from 136 open
  const fds = new FdBudget(() => now, () => limit, () => open_)
  const s = await server(t, { tcp: { maxConnections: 100, idleTimeout: '30s' } }, fds)
  const a = await open(t, s.port, '127.0.0.2')
  const b = await open(t, s.port, '127.0.0.3')
  t.equal(s.ev.counts['dropped.shed'], undefined, 'far from the limit: both kept')
  open_ = 140
  now += 1000                                        // counted again at the next accept
  const c = await open(t, s.port, '127.0.0.4')
  await until(() => a.isClosed())
  t.ok(a.isClosed(), 'the connection idle longest closed for the new one')
  t.notOk(b.isClosed(), 'one only')
  t.equal(c.frames.length, 1, 'the newcomer is served')
  t.equal(s.ev.counts['dropped.shed'], 1)
  b.sock.write(Buffer.from([0, 40]))
  c.sock.write(Buffer.from([0, 40]))
  await sleep(100)
  const d = await open(t, s.port, '127.0.0.5', true)
  await until(() => d.isClosed())
  t.ok(d.isClosed(), 'none idle: refused')
  t.equal(s.ev.counts['dropped.overload'], 1)
  t.same(msgs(s.ev, 'dns tcp connection refused: open files near the limit'), [{ 'client.ip': '127.0.0.5', refused: 1, fdLimit: 200 }])
  open_ = 20
  now += 1000
  const e = await open(t, s.port, '127.0.0.6')
  t.equal(e.frames.length, 1, 'descriptors back: served, nothing closed for it')
  t.equal(s.ev.counts['dropped.shed'], 1)
})
