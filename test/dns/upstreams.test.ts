import t from 'tap'
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { createServer, type Socket as TcpSocket } from 'node:net'
import dnsPacket from 'dns-packet'
import { FrameReader, frame } from '../../src/dns/framing.js'
import { CASE_MISMATCH, PendingTable, mixCase } from '../../src/dns/pending.js'
import { UDP_SOCKET_BUFFER, UdpTransport } from '../../src/dns/upstream-udp.js'
import { TcpTransport } from '../../src/dns/upstream-tcp.js'
import { parseUpstream } from '../../src/dns/upstream.js'
import { MAX_UDP_QUERY } from '../../src/dns/exchange.js'
import { UpstreamPool, questionHash } from '../../src/dns/upstreams.js'
import { keyFlags } from '../../src/dns/cache-key.js'
import { parseQuery, readQuestion, type Query } from '../../src/dns/wire.js'
import type { AppError } from '../../src/errors.js'
import { memoryEvidence } from '../fixtures/evidence.js'
import { decodeMsg, optRr } from '../fixtures/dig.js'
import { freePort } from '../fixtures/unbound.js'
import type { Test } from 'tap'

const query = (name = 'a.test', id = 0x1234): { buf: Buffer; qEnd: number } => {
  const buf = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] })
  return { buf, qEnd: (parseQuery(buf) as Query).qEnd }
}
/** An answer to `q` (same ID and question) with one A record, optionally TC. */
const answer = (q: Buffer, tc = false, data = '192.0.2.1'): Buffer => {
  const d = decodeMsg(q)
  return dnsPacket.encode({
    type: 'response', id: d.id, flags: 0x8180 | (tc ? 0x0200 : 0), questions: d.questions as dnsPacket.Question[],
    answers: tc ? [] : [{ type: 'A', name: d.questions[0]!.name, ttl: 60, data }],
  })
}

type UdpBehaviour = (msg: Buffer, r: RemoteInfo, s: Socket) => void
async function fakeUdp(t: Test, behave: UdpBehaviour, port = 0): Promise<{ port: number; seen: Buffer[] }> {
  const s = createSocket('udp4')
  const seen: Buffer[] = []
  s.on('message', (m, r) => { seen.push(m); behave(m, r, s) })
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject)
    s.bind(port, '127.0.0.1', () => resolve())
  })
  t.teardown(() => new Promise<void>(r => s.close(() => r())))
  return { port: s.address().port, seen }
}
async function fakeTcp(t: Test, port: number, onQuery: (msg: Buffer, sock: TcpSocket) => void): Promise<number> {
  const socks = new Set<TcpSocket>()
  const srv = createServer(sock => {
    socks.add(sock)
    sock.on('error', () => {})
    const reader = new FrameReader()
    sock.on('data', c => reader.push(c, m => onQuery(Buffer.from(m), sock)))
  })
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject)
    srv.listen(port, '127.0.0.1', () => resolve())
  })
  t.teardown(() => { for (const s of socks) s.destroy(); return new Promise<void>(r => srv.close(() => r())) })
  return (srv.address() as { port: number }).port
}
const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))
const reply = (m: Buffer, r: RemoteInfo, s: Socket): void => { s.send(answer(m), r.port, r.address) }
const forward = (pool: UpstreamPool, name = 'a.test', timeout = 1000): Promise<{ err?: AppError; reply?: Buffer; upstream?: string }> => {
  const { buf, qEnd } = query(name)
  return new Promise(resolve => pool.forward(buf, qEnd, timeout, (err, r, upstream) => resolve({ err, reply: r, upstream })))
}
const clock = (): { now: () => number; advance: (ms: number) => void } => {
  let offset = 0
  return { now: () => Date.now() + offset, advance: ms => { offset += ms } }
}

t.test('parseUpstream', async t => {
  t.same(parseUpstream('udp://10.0.0.1'), { proto: 'udp', host: '10.0.0.1', port: 53 })
  t.same(parseUpstream('tcp://[::1]:5300'), { proto: 'tcp', host: '::1', port: 5300 })
  t.throws(() => parseUpstream('https://x'), { code: 'CONFIG_INVALID' })
})

t.test('a fresh random ID per query; the reply carries it back', async t => {
  const up = await fakeUdp(t, reply)
  const ev = memoryEvidence()
  const pool = new UpstreamPool([`udp://127.0.0.1:${up.port}`], ev, Date.now)
  t.teardown(() => pool.close())
  for (let i = 0; i < 8; i++) {
    const r = await forward(pool)
    t.equal(r.err, undefined)
    t.equal(r.upstream, `udp://127.0.0.1:${up.port}`)
    t.equal(decodeMsg(r.reply!).answers[0]!.data, '192.0.2.1')
  }
  const ids = new Set(up.seen.map(m => m.readUInt16BE(0)))
  t.ok(ids.size >= 7, 'IDs differ from query to query')
  t.notOk(ids.has(0x1234), 'the client\'s ID is never sent upstream')
  t.equal(ev.counts['upstream.ok'], 8)
})

t.test('replies with a wrong ID or question are dropped', async t => {
  const up = await fakeUdp(t, (m, r, s) => {
    const wrongId = answer(m)
    wrongId.writeUInt16BE((m.readUInt16BE(0) + 1) & 0xffff, 0)
    const other = answer(dnsPacket.encode({ type: 'query', id: m.readUInt16BE(0), questions: [{ type: 'A', name: 'evil.test' }] }))
    s.send(wrongId, r.port, r.address)
    s.send(other, r.port, r.address)
    s.send(Buffer.from([1, 2, 3]), r.port, r.address)
    setTimeout(() => s.send(answer(m), r.port, r.address), 50)
  })
  const ev = memoryEvidence()
  const pool = new UpstreamPool([`udp://127.0.0.1:${up.port}`], ev, Date.now)
  t.teardown(() => pool.close())
  const r = await forward(pool)
  t.equal(decodeMsg(r.reply!).questions[0]!.name, 'a.test')
  t.equal(ev.counts['dropped.mismatch'], 3)
})

t.test('timeout → error within the budget; failover; health', async t => {
  const dead = await fakeUdp(t, () => {})
  let alive = false
  const flaky = await fakeUdp(t, (m, r, s) => { if (alive) reply(m, r, s) })
  const live = await fakeUdp(t, reply)
  const ev = memoryEvidence()
  const c = clock()
  const one = new UpstreamPool([`udp://127.0.0.1:${dead.port}`], ev, c.now)
  t.teardown(() => one.close())
  const r = await forward(one, 'a.test', 150)
  t.equal(r.err?.code, 'UPSTREAM_TIMEOUT')
  t.equal(ev.counts['upstream.timeout'], 1)

  const ev2 = memoryEvidence()
  const flakyUrl = `udp://127.0.0.1:${flaky.port}`
  const pool = new UpstreamPool([flakyUrl, `udp://127.0.0.1:${live.port}`], ev2, c.now)
  t.teardown(() => pool.close())
  for (let i = 0; i < 3; i++) {
    const f = await forward(pool, 'a.test', 800)
    t.equal(f.upstream, `udp://127.0.0.1:${live.port}`, 'failed over to the second')
  }
  t.match(ev2.messages, [{ level: 'warn', msg: 'dns upstream down', fields: { upstream: flakyUrl } }])
  const before = flaky.seen.length
  await forward(pool, 'a.test', 800)
  t.equal(flaky.seen.length, before, 'a down upstream is skipped')
  c.advance(2_500)
  alive = true
  const back = await forward(pool, 'a.test', 800)
  t.equal(back.upstream, flakyUrl, 'tried again after its backoff')
  t.match(ev2.messages[1], { level: 'info', msg: 'dns upstream up' })

  // all down: the least recently failed is still tried
  alive = false
  for (let i = 0; i < 3; i++) await forward(pool, 'a.test', 100)
  for (let i = 0; i < 2; i++) c.advance(2_500), await forward(pool, 'a.test', 100)
  t.ok(ev2.messages.filter(m => m.msg === 'dns upstream down').length >= 2)
})

t.test('a truncated UDP answer is asked again over TCP', async t => {
  let up: { port: number } | undefined
  for (let i = 0; i < 10 && !up; i++) {                         // a port free for both UDP and TCP
    const port = await freePort()
    try {
      await fakeTcp(t, port, (m, sock) => sock.write(frame(answer(m, false, '192.0.2.99'))))
      up = await fakeUdp(t, (m, r, s) => s.send(answer(m, true), r.port, r.address), port)
    } catch { /* taken meanwhile: try another */ }
  }
  const pool = new UpstreamPool([`udp://127.0.0.1:${up!.port}`], memoryEvidence(), Date.now)
  t.teardown(() => pool.close())
  const r = await forward(pool)
  t.equal(decodeMsg(r.reply!).answers[0]!.data, '192.0.2.99')
  t.notOk(decodeMsg(r.reply!).flag_tc)
})

t.test('tcp:// upstream: pipelined, answers in any order; a closed connection fails over', async t => {
  const held: [Buffer, TcpSocket][] = []
  const port = await fakeTcp(t, 0, (m, sock) => {
    held.push([m, sock])
    if (held.length === 3) for (const [q, s] of held.reverse()) s.write(frame(answer(q)))
  })
  const ev = memoryEvidence()
  const pool = new UpstreamPool([`tcp://127.0.0.1:${port}`], ev, Date.now)
  t.teardown(() => pool.close())
  const rs = await Promise.all(['a.test', 'b.test', 'c.test'].map(n => forward(pool, n)))
  t.same(rs.map(r => decodeMsg(r.reply!).questions[0]!.name), ['a.test', 'b.test', 'c.test'])

  const closer = await fakeTcp(t, 0, (_m, sock) => sock.destroy())
  const live = await fakeUdp(t, reply)
  const ev2 = memoryEvidence()
  const p2 = new UpstreamPool([`tcp://127.0.0.1:${closer}`, `udp://127.0.0.1:${live.port}`], ev2, Date.now)
  t.teardown(() => p2.close())
  const r = await forward(p2)
  t.equal(r.upstream, `udp://127.0.0.1:${live.port}`)
  t.equal(ev2.counts['upstream.error'], 1)
})

t.test('tcp:// upstream that closes connections under queries: those unanswered are sent again on a new one (RFC 7766 §6.2.1)', async t => {
  // one answer per connection, then the upstream closes it: every query is answered in the end
  let conns = 0
  const seenBy = new Set<TcpSocket>()
  const one = await fakeTcp(t, 0, (m, sock) => {
    if (seenBy.has(sock)) return                   // one query per connection; the rest go unanswered
    seenBy.add(sock)
    conns++
    sock.end(frame(answer(m)))
  })
  const ev = memoryEvidence()
  const pool = new UpstreamPool([`tcp://127.0.0.1:${one}`], ev, Date.now)
  t.teardown(() => pool.close())
  const rs = await Promise.all(['a.test', 'b.test', 'c.test', 'd.test'].map(n => forward(pool, n, 5000)))
  t.same(rs.map(r => r.err?.code), [undefined, undefined, undefined, undefined], 'all four answered')
  t.same(rs.map(r => decodeMsg(r.reply!).questions[0]!.name), ['a.test', 'b.test', 'c.test', 'd.test'])
  t.equal(conns, 4, 'on four connections')
  t.equal(ev.counts['upstream.error'], undefined, 'a connection closed by the upstream is not its failure')

  // an upstream that takes connections and closes them unanswered: each query is sent once more, then fails
  const asked: string[] = []
  const mute = await fakeTcp(t, 0, (m, sock) => { asked.push(decodeMsg(m).questions[0]!.name); sock.destroy() })
  const ev2 = memoryEvidence()
  const p2 = new UpstreamPool([`tcp://127.0.0.1:${mute}`], ev2, Date.now)
  t.teardown(() => p2.close())
  const r = await forward(p2, 'e.test', 5000)
  t.equal(r.err?.code, 'UPSTREAM_FAILED', 'failed, long before its 5 s budget')
  t.same(asked, ['e.test', 'e.test'], 'sent twice: once, and once again on a new connection')

  // nothing listening: the connection never opens, and the query fails at once, not sent again
  const ev3 = memoryEvidence()
  const p3 = new UpstreamPool([`tcp://127.0.0.1:${await freePort()}`], ev3, Date.now)
  t.teardown(() => p3.close())
  t.equal((await forward(p3, 'f.test', 5000)).err?.code, 'UPSTREAM_FAILED')
  t.equal(ev3.counts['upstream.error'], 1)
})

t.test('tcp:// upstream: a query whose budget ran out before the close was seen times out, and is not sent again', async t => {
  const asked: string[] = []
  let tcp!: TcpTransport
  const port = await fakeTcp(t, 0, m => {
    asked.push(decodeMsg(m).questions[0]!.name)
    if (asked.length > 1) return
    // the process busy past a.test's 300 ms budget, then its connection closed: the close is seen
    // (close callbacks) before a.test's timer runs (the next turn's timers); the budget wide of
    // any stall before the server reads the query (a 30 ms one timed out by its timer on a loaded box)
    const until = Date.now() + 400
    while (Date.now() < until) { /* busy */ }
    ;(tcp as unknown as { conn: { socket: TcpSocket } }).conn.socket.destroy()
  })
  tcp = new TcpTransport('127.0.0.1', port, memoryEvidence().counters)
  t.teardown(() => tcp.close())
  const a = query('a.test')
  const err = await new Promise<AppError | undefined>(r => tcp.send(a.buf, a.qEnd, 300, e => r(e)))
  t.equal(err?.code, 'UPSTREAM_TIMEOUT', `timed out: ${err?.message}`)
  t.match(err?.message, /no answer within its budget; TCP connection to 127\.0\.0\.1:\d+ closed/, 'at the close, not by its timer')
  await sleep(100)
  t.same(asked, ['a.test'], 'not sent again after its deadline')
})

t.test('health: a query that fails while its upstream answers others is not the upstream\'s failure', async t => {
  // the upstream drops questions for *.mute.test (a name whose servers never answer) and answers the rest
  const up = await fakeUdp(t, (m, r, s) => { if (!decodeMsg(m).questions[0]!.name.toLowerCase().endsWith('mute.test')) reply(m, r, s) })
  const other = await fakeUdp(t, reply)
  const ev = memoryEvidence()
  const url = `udp://127.0.0.1:${up.port}`
  const pool = new UpstreamPool([url, `udp://127.0.0.1:${other.port}`], ev, Date.now)
  t.teardown(() => pool.close())
  // four at once (half the budget at each upstream: 1 s here, then the other), and an answer
  // meanwhile (well within that second, whatever the box's stalls)
  const muted = [0, 1, 2, 3].map(i => forward(pool, `n${i}.mute.test`, 2000))
  await sleep(20)
  t.equal((await forward(pool, 'ok.test')).upstream, url, 'answered meanwhile')
  for (const m of await Promise.all(muted)) t.equal(m.upstream, `udp://127.0.0.1:${other.port}`, 'the muted name failed over')
  t.equal(ev.messages.filter(m => m.msg === 'dns upstream down').length, 0, 'never marked down')
  t.equal(ev.counts['upstream.timeout'], 4, 'each timeout still counted')
  t.equal((await forward(pool, 'ok2.test')).upstream, url, 'still asked first')
  // with nothing answered meanwhile, three in a row do mark it down
  for (let i = 0; i < 3; i++) await forward(pool, `m${i}.mute.test`, 300)
  t.same(ev.messages.filter(m => m.msg === 'dns upstream down').map(m => m.fields), [{ upstream: url, failures: 3 }])
})

t.test('a query longer than a UDP upstream should take is sent to it over TCP', async t => {
  const port = await freePort()
  const udp = await fakeUdp(t, reply, port)
  const tcpSeen: number[] = []
  await fakeTcp(t, port, (m, sock) => { tcpSeen.push(m.length); sock.write(frame(answer(m))) })
  const pool = new UpstreamPool([`udp://127.0.0.1:${port}`], memoryEvidence(), Date.now)
  t.teardown(() => pool.close())
  const big = dnsPacket.encode({
    type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'big.test' }],
    additionals: [optRr(1232, 0, [{ code: 12, data: Buffer.alloc(MAX_UDP_QUERY) }])],
  })
  const r = await new Promise<{ err?: AppError; reply?: Buffer }>(resolve =>
    pool.forward(big, (parseQuery(big) as Query).qEnd, 2000, (err, rep) => resolve({ err, reply: rep })))
  t.equal(r.err, undefined)
  t.same(tcpSeen, [big.length], `the ${big.length}-octet query went over TCP`)
  t.equal(udp.seen.length, 0, 'not over UDP')
  t.equal((await forward(pool)).err, undefined, 'a usual query still goes over UDP')
  t.equal(udp.seen.length, 1)
})

t.test('a pool lets tunnelguard_upstream_up read its upstreams (each once, as a reload leaves them) and their markings, until it closes', async t => {
  const dead = await fakeUdp(t, () => {})
  let alive = true
  const flaky = await fakeUdp(t, (m, r, s) => { if (alive) reply(m, r, s) })
  const deadUrl = `udp://127.0.0.1:${dead.port}`
  const flakyUrl = `udp://127.0.0.1:${flaky.port}`
  const ev = memoryEvidence()
  const c = clock()
  const pool = new UpstreamPool([flakyUrl], ev, c.now, {}, { 'corp.example': [flakyUrl, deadUrl] })
  t.teardown(() => pool.close())
  const health = () => [...ev.pools].flatMap(read => [...read()]).map(h => ({ url: h.url, down: h.down, changed: h.changed }))
  t.equal(ev.pools.size, 1, 'watched from the start')
  t.same(health(), [{ url: flakyUrl, down: false, changed: 0 }, { url: deadUrl, down: false, changed: 0 }], 'the default list\'s and the zones\', each once; never marked')
  t.equal((await forward(pool)).upstream, flakyUrl)
  t.equal(health()[0]!.changed, 0, 'an answer is no marking')
  alive = false
  for (let i = 0; i < 3; i++) await forward(pool, 'a.test', 100)
  const [down] = health()
  t.match(down, { url: flakyUrl, down: true }, 'marked down')
  t.ok(down!.changed > 0, 'a marking')
  for (let i = 0; i < 2; i++) c.advance(2_500), await forward(pool, 'a.test', 100)
  t.equal(health()[0]!.changed, down!.changed, 'failing again while down is no new marking')
  alive = true
  c.advance(5_000)
  t.equal((await forward(pool)).upstream, flakyUrl)
  const [up] = health()
  t.match(up, { url: flakyUrl, down: false }, 'marked up')
  t.ok(up!.changed > down!.changed, 'a later marking')
  pool.update([deadUrl])
  t.same(health().map(h => h.url), [deadUrl], 'a reload: the upstreams it left, not those it took out')
  pool.close()
  t.equal(ev.pools.size, 0, 'closed: no longer read')
})

t.test('update keeps the state of upstreams that stay and closes the others', async t => {
  const dead = await fakeUdp(t, () => {})
  const live = await fakeUdp(t, reply)
  const deadUrl = `udp://127.0.0.1:${dead.port}`
  const liveUrl = `udp://127.0.0.1:${live.port}`
  const ev = memoryEvidence()
  const pool = new UpstreamPool([deadUrl], ev, Date.now)
  t.teardown(() => pool.close())
  for (let i = 0; i < 3; i++) await forward(pool, 'a.test', 50)
  pool.update([deadUrl, liveUrl])
  const n = dead.seen.length
  t.equal((await forward(pool)).upstream, liveUrl)
  t.equal(dead.seen.length, n, 'still down after the update')
  pool.update([liveUrl])
  t.equal((await forward(pool)).upstream, liveUrl)
})

t.test('an upstream a reload takes out answers what it has in flight, within the grace; nothing new goes to it', async t => {
  const slow = await fakeUdp(t, (m, r, s) => { setTimeout(() => reply(m, r, s), 150) })
  const other = await fakeUdp(t, reply)
  const slowUrl = `udp://127.0.0.1:${slow.port}`
  const otherUrl = `udp://127.0.0.1:${other.port}`
  const pool = new UpstreamPool([slowUrl], memoryEvidence(), Date.now)
  t.teardown(() => pool.close())
  const inFlight = [forward(pool, 'a.test'), forward(pool, 'b.test')]
  await new Promise(r => setTimeout(r, 30))                   // both are at the slow upstream
  pool.update([otherUrl], 1000)
  const done = await Promise.all(inFlight)
  t.same(done.map(d => [d.err, d.upstream]), [[undefined, slowUrl], [undefined, slowUrl]], 'answered by the upstream taken out (they were SERVFAIL at once)')
  const n = slow.seen.length
  t.equal((await forward(pool, 'c.test')).upstream, otherUrl)
  t.equal(slow.seen.length, n, 'nothing new to it')
  // without a grace its sockets close at once: what it had in flight fails over
  const third = await fakeUdp(t, () => {})
  pool.update([`udp://127.0.0.1:${third.port}`, otherUrl])
  const pending = forward(pool, 'd.test', 2000)
  await new Promise(r => setTimeout(r, 30))
  pool.update([otherUrl])
  t.equal((await pending).upstream, otherUrl, 'the next in its order answered')
})

t.test('close() closes an upstream a reload took out too: a stop does not wait for its grace', async t => {
  const slow = await fakeUdp(t, (m, r, s) => { setTimeout(() => { try { reply(m, r, s) } catch { /* closed by then */ } }, 300) })
  const other = await fakeUdp(t, reply)
  const pool = new UpstreamPool([`udp://127.0.0.1:${slow.port}`], memoryEvidence(), Date.now)
  const atSlow = forward(pool, 'a.test', 5000)
  await new Promise(r => setTimeout(r, 30))
  pool.update([`udp://127.0.0.1:${other.port}`], 60_000)
  const t0 = Date.now()
  pool.close()
  const r = await atSlow
  t.ok(r.err, 'failed by the close, not answered 300 ms later')
  t.ok(Date.now() - t0 < 2000, 'at once, not at the query\'s 5 s timeout (its sockets closed, no timer left to hold the process)')
})

t.test('when every upstream is down, all are still tried, the earliest back first', async t => {
  const a = await fakeUdp(t, () => {})
  const b = await fakeUdp(t, () => {})
  const ev = memoryEvidence()
  const frozen = (): number => 1000                // the budget never runs out: each gets its share, however late timers fire
  const pool = new UpstreamPool([`udp://127.0.0.1:${a.port}`, `udp://127.0.0.1:${b.port}`], ev, frozen)
  t.teardown(() => pool.close())
  for (let i = 0; i < 3; i++) await forward(pool, 'a.test', 80)
  t.equal(ev.messages.filter(m => m.msg === 'dns upstream down').length, 2)
  const r = await forward(pool, 'a.test', 80)
  t.equal(r.err?.code, 'UPSTREAM_TIMEOUT')
  t.same([a.seen.length, b.seen.length], [4, 4], 'both tried again')
})

t.test('closing fails what is in flight; a closed pool answers nothing', async t => {
  const dead = await fakeUdp(t, () => {})
  const dead2 = await fakeUdp(t, () => {})
  const pool = new UpstreamPool([`udp://127.0.0.1:${dead.port}`, `udp://127.0.0.1:${dead2.port}`], memoryEvidence(), Date.now)
  const p = forward(pool, 'a.test', 5000)
  await new Promise(r => setTimeout(r, 20))
  pool.close()
  t.equal((await p).err?.code, 'UPSTREAM_FAILED')
  t.equal((await forward(pool)).err?.code, 'UPSTREAM_TIMEOUT', 'no upstreams left')
})

t.test('IPv6 upstream', async t => {
  const s = createSocket({ type: 'udp6', ipv6Only: true })
  s.on('message', (m, r) => s.send(answer(m), r.port, r.address))
  await new Promise<void>(r => s.bind(0, '::1', () => r()))
  t.teardown(() => s.close())
  const pool = new UpstreamPool([`udp://[::1]:${s.address().port}`], memoryEvidence(), Date.now)
  t.teardown(() => pool.close())
  t.equal((await forward(pool)).upstream, `udp://[::1]:${s.address().port}`)
})

t.test('the UDP transport asks for the socket buffers of the listeners: answers wait there while the process is busy', async t => {
  const up = await fakeUdp(t, reply)
  const u = new UdpTransport('127.0.0.1', up.port, memoryEvidence().counters, () => {})
  t.teardown(() => u.close())
  const { buf, qEnd } = query()
  const got = await new Promise<Buffer | undefined>(resolve => u.send(buf, qEnd, 1000, (err, r) => resolve(err ? undefined : r)))
  t.ok(got, 'answered')
  // what a socket asking for UDP_SOCKET_BUFFER gets here (the kernel caps it at net.core.rmem_max and doubles it)
  const ref = createSocket({ type: 'udp4', recvBufferSize: UDP_SOCKET_BUFFER })
  await new Promise<void>(r => ref.bind(0, '127.0.0.1', () => r()))
  const expected = ref.getRecvBufferSize()
  ref.close()
  t.equal(u.recvBufferSize, expected, `the upstream socket's receive buffer: ${u.recvBufferSize} bytes`)
})

t.test('transports refuse to send once closed', async t => {
  const ev = memoryEvidence()
  const u = new UdpTransport('127.0.0.1', 9, ev.counters, () => {})
  u.close()
  u.close()
  const { buf, qEnd } = query()
  t.notOk(u.send(buf, qEnd, 10, () => t.fail()))
  t.equal(u.pending, 0)
  const tcp = new TcpTransport('127.0.0.1', 9, ev.counters)
  t.equal(tcp.pending, 0)
  tcp.close()
  t.notOk(tcp.send(buf, qEnd, 10, () => t.fail()))
})

t.test('TCP transport: idle connection closed; unsolicited answers dropped', async t => {
  // watched from the moment it is seen: on a loaded box the idle close can come before the test awaits it
  let closed: Promise<void> | undefined
  const port = await fakeTcp(t, 0, (m, s) => {
    closed ??= new Promise<void>(r => s.once('close', () => r()))
    s.write(frame(answer(dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'x.test' }] }))))
    s.write(frame(answer(m)))
  })
  const ev = memoryEvidence()
  const tcp = new TcpTransport('127.0.0.1', port, ev.counters, 100)
  t.teardown(() => tcp.close())
  const { buf, qEnd } = query()
  const got = await new Promise<Buffer | undefined>(r => tcp.send(buf, qEnd, 1000, (_e, rep) => r(rep)))
  t.ok(got)
  t.equal(ev.counts['dropped.mismatch'], 1)
  await closed
  t.equal(tcp.pending, 0, 'closed after being idle')
})

t.test('PendingTable: no free ID after 64 tries', async t => {
  const table = new PendingTable()
  const { buf, qEnd } = query()
  let n = 0
  for (let i = 0; i < 200_000 && table.size < 65_536; i++) if (table.add(Buffer.from(buf), qEnd, 60_000, () => { n++ })) { /* counted by size */ }
  t.equal(table.size, 65_536)
  t.notOk(table.add(Buffer.from(buf), qEnd, 60_000, () => {}))
  t.notOk(table.take(Buffer.alloc(4)), 'too short to be a reply')
  table.failAll('test over')
  t.equal(n, 65_536)
  t.equal(table.size, 0)
})


t.test('PendingTable: each query times out after its own duration, not before; answered ones never', async t => {
  const table = new PendingTable()
  const outcomes = new Map<string, { code?: string; at: number }>()
  const t0 = performance.now()
  const add = (label: string, ms: number): Buffer => {
    const { buf, qEnd } = query(`${label}.test`)
    t.ok(table.add(buf, qEnd, ms, err => { outcomes.set(label, { code: err?.code, at: performance.now() - t0 }) }))
    return buf
  }
  add('slow1', 300)
  const answered = add('answered', 60)
  add('fast', 60)
  add('slow2', 300)
  t.ok(table.take(answer(answered)))
  t.equal(outcomes.get('answered')?.code, undefined, 'answered at once')
  await sleep(150)
  t.equal(outcomes.get('fast')?.code, 'UPSTREAM_TIMEOUT', 'the 60 ms query timed out')
  t.ok(outcomes.get('fast')!.at >= 59, `not before its 60 ms (${outcomes.get('fast')!.at.toFixed(1)})`)
  t.notOk(outcomes.has('slow1') || outcomes.has('slow2'), 'the 300 ms ones still wait')
  t.equal(table.size, 2)
  await sleep(300)
  t.equal(outcomes.get('slow1')?.code, 'UPSTREAM_TIMEOUT')
  t.equal(outcomes.get('slow2')?.code, 'UPSTREAM_TIMEOUT')
  t.ok(outcomes.get('slow1')!.at >= 299 && outcomes.get('slow2')!.at >= 299, 'not before 300 ms')
  t.equal(table.size, 0)
  t.equal(outcomes.get('answered')!.code, undefined, 'the answered query was not failed later')
})

const ask = (u: UdpTransport, name = 'a.test', timeout = 1000): Promise<{ err?: AppError; reply?: Buffer }> => {
  const { buf, qEnd } = query(name)
  return new Promise(resolve => {
    if (!u.send(buf, qEnd, timeout, (err, reply) => resolve({ err, reply }))) resolve({})
  })
}
const nameOf = (m: Buffer): string => decodeMsg(m).questions[0]!.name

t.test('UDP source ports: each query on one of several sockets at random, each on a port the kernel picked', async t => {
  const from: number[] = []
  const up = await fakeUdp(t, (m, r, s) => { from.push(r.port); reply(m, r, s) })
  const ev = memoryEvidence()
  const u = new UdpTransport('127.0.0.1', up.port, ev.counters, () => {}, Date.now, { sockets: 4, queriesPerSocket: 1000, socketLifeMs: 60_000 })
  t.teardown(() => u.close())
  t.same(u.localPorts, [], 'no socket before the first query')
  t.equal(u.recvBufferSize, -1)
  for (let i = 0; i < 48; i++) t.equal((await ask(u)).err, undefined)
  const ports = new Set(from)
  t.ok(ports.size >= 2 && ports.size <= 4, `queries went out from ${ports.size} ports`)
  t.same(new Set(u.localPorts), ports, 'the ports of the sockets in use')
  t.ok(u.localPorts.every(p => p !== up.port && p > 1023), 'ephemeral ports')
  t.equal(u.sockets, u.localPorts.length)
  t.equal(ev.counts['dropped.mismatch'], undefined)
})

t.test('UDP: a reply is taken only on the socket its query went out on', async t => {
  let wrongSocket = true
  let u!: UdpTransport
  const up = await fakeUdp(t, (m, r, s) => {
    const other = u.localPorts.find(p => p !== r.port)
    if (wrongSocket && other !== undefined) s.send(answer(m), other, r.address)   // right ID and question, other port
    else reply(m, r, s)
  })
  const ev = memoryEvidence()
  u = new UdpTransport('127.0.0.1', up.port, ev.counters, () => {}, Date.now, { sockets: 2, queriesPerSocket: 1000, socketLifeMs: 60_000 })
  t.teardown(() => u.close())
  wrongSocket = false
  for (let i = 0; i < 40 && u.localPorts.length < 2; i++) await ask(u)    // both sockets open
  t.equal(u.localPorts.length, 2)
  wrongSocket = true
  for (let i = 0; i < 4; i++) t.equal((await ask(u, 'a.test', 150)).err?.code, 'UPSTREAM_TIMEOUT', 'the reply reached the other socket')
  t.equal(ev.counts['dropped.mismatch'], 4)
  wrongSocket = false
  t.equal((await ask(u)).err, undefined)
})

t.test('UDP: a socket is replaced after queriesPerSocket queries; a replaced one closes once its queries are done', async t => {
  const from: number[] = []
  const held: (() => void)[] = []
  const up = await fakeUdp(t, (m, r, s) => {
    from.push(r.port)
    if (nameOf(m).startsWith('hold')) held.push(() => reply(m, r, s))
    else reply(m, r, s)
  })
  const ev = memoryEvidence()
  const u = new UdpTransport('127.0.0.1', up.port, ev.counters, () => {}, Date.now, { sockets: 2, queriesPerSocket: 3, socketLifeMs: 60_000 })
  t.teardown(() => u.close())
  for (let i = 0; i < 30; i++) t.equal((await ask(u)).err, undefined)
  t.ok(new Set(from).size >= 8, `30 queries, at most 3 per socket: ${new Set(from).size} ports (10 but for a port the kernel gave out again)`)
  t.ok(u.sockets <= 2, 'the replaced sockets are closed')

  const one = new UdpTransport('127.0.0.1', up.port, ev.counters, () => {}, Date.now, { sockets: 1, queriesPerSocket: 1, socketLifeMs: 60_000 })
  t.teardown(() => one.close())
  const first = ask(one, 'hold1.test')
  const second = ask(one, 'hold2.test', 10_000)                  // (held: failed by the close below)
  const third = ask(one, 'hold3.test', 1000)                      // (held: it times out, after the counts below)
  while (held.length < 2) await sleep(5)
  t.equal(one.sockets, 3, 'two replaced sockets wait for their queries')
  t.equal(one.pending, 3)
  held[0]!()
  t.equal((await first).err, undefined)
  t.equal(one.sockets, 2, 'answered: closed')
  t.equal((await third).err?.code, 'UPSTREAM_TIMEOUT')
  t.equal(one.sockets, 2, 'the socket taking queries stays open when its query times out')
  one.close()
  t.equal((await second).err?.code, 'UPSTREAM_FAILED', 'closing fails the query of a replaced socket')
  t.equal(one.sockets, 0)
})

t.test('UDP: a socket is replaced once it is socketLifeMs old', async t => {
  const from: string[] = []
  const up = await fakeUdp(t, (m, r, s) => {
    from.push(`${nameOf(m)} ${r.port}`)
    if (!nameOf(m).startsWith('hold')) reply(m, r, s)
  })
  let now = 0
  const u = new UdpTransport('127.0.0.1', up.port, memoryEvidence().counters, () => {}, () => now, { sockets: 1, queriesPerSocket: 1e6, socketLifeMs: 1000 })
  t.teardown(() => u.close())
  t.equal((await ask(u, 'a1.test')).err, undefined)
  const [p1] = u.localPorts
  now += 999
  const held = ask(u, 'hold.test', 5000)                       // keeps the first socket open
  now += 1
  t.equal((await ask(u, 'a2.test')).err, undefined)
  // by name: the held query (sent at the end of its turn) and a2 (sent once the new socket connected) may arrive in either order
  t.same(Object.fromEntries(from.map(l => l.split(' '))), { 'a1.test': String(p1), 'hold.test': String(p1), 'a2.test': String(u.localPorts[0]) })
  t.not(u.localPorts[0], p1, 'a new port')
  t.equal(u.sockets, 2)
  u.close()
  t.equal((await held).err?.code, 'UPSTREAM_FAILED')
})

t.test('UDP: a socket error (the port refused) is logged', async t => {
  const dead = await freePort()
  const ev = memoryEvidence()
  const pool = new UpstreamPool([`udp://127.0.0.1:${dead}`], ev, Date.now, { ports: { sockets: 1, queriesPerSocket: 1000, socketLifeMs: 60_000 } })
  t.teardown(() => pool.close())
  for (let i = 0; i < 20 && !ev.messages.some(m => m.msg === 'dns upstream socket error'); i++) await forward(pool, 'a.test', 100)
  t.match(ev.messages.find(m => m.msg === 'dns upstream socket error'), { level: 'warn', fields: { upstream: `udp://127.0.0.1:${dead}` } })
})

/** A query for `name` with this ID, type, header flags, and an OPT record (with these flags) when `edns` is set. */
const custom = (name: string, id: number, o: { type?: dnsPacket.RecordType; flags?: number; noRd?: boolean; edns?: boolean; ednsFlags?: number; udp?: number } = {}): { buf: Buffer; qEnd: number } => {
  const buf = dnsPacket.encode({
    type: 'query', id, flags: (o.noRd ? 0 : dnsPacket.RECURSION_DESIRED) | (o.flags ?? 0), questions: [{ type: o.type ?? 'A', name }],
    additionals: o.edns ? [optRr(o.udp ?? 1232, o.ednsFlags ?? 0)] : [],
  })
  return { buf, qEnd: (parseQuery(buf) as Query).qEnd }
}
type Outcome = { err?: AppError; reply?: Buffer; upstream?: string }
const send = (pool: UpstreamPool, q: { buf: Buffer; qEnd: number }, timeout = 2000): Promise<Outcome> =>
  new Promise(resolve => pool.forward(q.buf, q.qEnd, timeout, (err, reply, upstream) => resolve({ err, reply, upstream })))

/**
 * A seed under which the different questions among `qs` (by their hash) take different slots of
 * the pool's table of exchanges in flight (1024): with a random one, two of six questions share a
 * slot about once in seventy runs, and the one asked second is then asked on its own (by design).
 */
function apartSeed(t: Test, qs: readonly { buf: Buffer; qEnd: number }[]): number {
  for (let seed = 1; seed < 1000; seed++) {
    const hashes = new Set(qs.map(q => questionHash(seed, q.buf, q.qEnd, keyFlags(q.buf, q.qEnd))))
    if (new Set([...hashes].map(h => h & 1023)).size === hashes.size) return seed
  }
  t.fail('no seed keeps the questions apart')
  return 0
}

t.test('identical questions in flight are asked once; every asker gets its own ID and letter case (RFC 5452 §5)', async t => {
  const held: (() => void)[] = []
  const up = await fakeUdp(t, (m, r, s) => { held.push(() => reply(m, r, s)) })
  const url = `udp://127.0.0.1:${up.port}`
  const names = ['merge.test', 'MERGE.test', 'MeRgE.TeSt', 'merge.TEST']
  const same = Array.from({ length: 40 }, (_, i) => custom(names[i % 4]!, 1000 + i))
  const sameCopies = same.map(q => Buffer.from(q.buf))
  // what the cache keeps apart is asked apart: type, DO, CD, EDNS, RD; the EDNS payload size is not in the key
  const apart = [
    custom('merge.test', 1, { type: 'AAAA' }),
    custom('merge.test', 2, { edns: true }),
    custom('merge.test', 3, { edns: true, ednsFlags: dnsPacket.DNSSEC_OK }),
    custom('merge.test', 4, { flags: dnsPacket.CHECKING_DISABLED }),
    custom('merge.test', 6, { noRd: true }),
  ]
  const bigger = custom('MERGE.TEST', 5, { edns: true, udp: 4096 })
  const pool = new UpstreamPool([url], memoryEvidence(), Date.now, { seed: apartSeed(t, [...same, ...apart, bigger]) })
  t.teardown(() => pool.close())
  const all = [...same, ...apart, bigger].map(q => send(pool, q))
  t.equal(pool.exchanges, 6)
  while (held.length < 6) await sleep(5)
  await sleep(30)
  t.equal(up.seen.length, 6, '46 queries, 6 questions: 6 sent upstream')
  for (const h of held) h()
  const rs = await Promise.all(all)
  const asked = [...same, ...apart, bigger]
  rs.forEach((r, i) => {
    const q = asked[i]!
    t.equal(r.err, undefined)
    t.equal(r.upstream, url)
    t.equal(r.reply!.readUInt16BE(0), q.buf.readUInt16BE(0), 'its own ID')
    t.ok(r.reply!.subarray(12, q.qEnd).equals(q.buf.subarray(12, q.qEnd)), `its own question: ${decodeMsg(r.reply!).questions[0]!.name}`)
  })
  t.equal(decodeMsg(rs[0]!.reply!).answers[0]!.data, '192.0.2.1')
  t.equal(new Set(rs.map(r => r.reply)).size, rs.length, 'a reply buffer each')
  same.forEach((q, i) => t.ok(q.buf.equals(sameCopies[i]!), 'the query is not changed'))
  t.equal(pool.exchanges, 0, 'the exchanges are over')
  held.length = 0
  const again = send(pool, same[0]!)
  while (held.length < 1) await sleep(5)
  held[0]!()
  t.equal((await again).err, undefined)
  t.equal(up.seen.length, 7, 'asked again once the first exchange is over')
})

t.test('AD is in the key of questions in flight unless DO is set: an AD answer is not handed to a query without AD', async t => {
  const held: (() => void)[] = []
  const up = await fakeUdp(t, (m, r, s) => { held.push(() => reply(m, r, s)) })
  const AD = dnsPacket.AUTHENTIC_DATA
  const DO = dnsPacket.DNSSEC_OK
  const asked = [
    custom('ad.test', 1), custom('ad.test', 2, { flags: AD }),
    custom('ad.test', 3, { edns: true }), custom('ad.test', 4, { edns: true, flags: AD }),
    custom('ad.test', 5, { edns: true, ednsFlags: DO }), custom('ad.test', 6, { edns: true, ednsFlags: DO, flags: AD }),
  ]
  const pool = new UpstreamPool([`udp://127.0.0.1:${up.port}`], memoryEvidence(), Date.now, { seed: apartSeed(t, asked) })
  t.teardown(() => pool.close())
  const all = asked.map(q => send(pool, q))
  t.equal(pool.exchanges, 5, 'with and without AD asked apart; with DO, AD or not, once')
  for (let i = 0; i < 200 && held.length < 5; i++) await sleep(5)
  await sleep(30)
  // the queries go out on several sockets: they may arrive in any order
  const sent = up.seen.map(m => {
    const d = decodeMsg(m)
    const opt = d.additionals.find(a => a.type === 'OPT')
    return `${(m.readUInt16BE(2) & AD) !== 0 ? 'AD' : '-'} ${opt ? 'EDNS' : '-'} ${opt && (opt.flags! & DO) !== 0 ? 'DO' : '-'}`
  }).sort()
  t.same(sent, ['- - -', '- EDNS -', '- EDNS DO', 'AD - -', 'AD EDNS -'], 'each goes upstream with its own AD bit; the DO one as its first asker sent it')
  for (const h of held) h()
  const rs = await Promise.all(all)
  t.same(rs.map(r => r.reply!.readUInt16BE(0)), [1, 2, 3, 4, 5, 6])
  t.equal(pool.exchanges, 0)
})

t.test('every asker waiting on an exchange gets its error', async t => {
  const up = await fakeUdp(t, () => {})
  const pool = new UpstreamPool([`udp://127.0.0.1:${up.port}`], memoryEvidence(), Date.now)
  t.teardown(() => pool.close())
  const rs = await Promise.all([1, 2, 3].map(id => send(pool, custom('dead.test', id), 100)))
  t.same(rs.map(r => [r.err?.code, r.reply]), Array(3).fill(['UPSTREAM_TIMEOUT', undefined]))
  t.equal(up.seen.length, 1)
})

t.test('two questions under one hash are asked apart', async t => {
  const held: (() => void)[] = []
  const up = await fakeUdp(t, (m, r, s) => { held.push(() => reply(m, r, s)) })
  const seed = 12345
  const seen = new Map<number, string>()
  let pair: [string, string] | undefined
  for (let i = 0; !pair && i < 1_000_000; i++) {
    const name = `c${i}.test`
    const q = custom(name, 0)
    const h = questionHash(seed, q.buf, q.qEnd, 0)
    const other = seen.get(h)
    if (other !== undefined) pair = [other, name]
    else seen.set(h, name)
  }
  t.ok(pair, `${pair?.join(' and ')} share a hash`)
  const pool = new UpstreamPool([`udp://127.0.0.1:${up.port}`], memoryEvidence(), Date.now, { seed })
  t.teardown(() => pool.close())
  const [a, b] = pair!
  const p = [send(pool, custom(a, 1)), send(pool, custom(b, 2)), send(pool, custom(b, 3)), send(pool, custom(a, 4))]
  t.equal(pool.exchanges, 1, 'the first holds the index')
  while (held.length < 3) await sleep(5)
  await sleep(30)
  t.same(up.seen.map(m => nameOf(m).toLowerCase()), [a, b, b], 'the second question is not merged into the first; nor into itself (not indexed)')
  for (const h of held) h()
  const rs = await Promise.all(p)
  t.same(rs.map(r => decodeMsg(r.reply!).questions[0]!.name), [a, b, b, a])
  t.equal(pool.exchanges, 0)
})

/** A fake upstream on one port for both UDP and TCP. */
async function fakeBoth(t: Test, udp: UdpBehaviour, tcp: (msg: Buffer, sock: TcpSocket) => void): Promise<{ port: number; seen: Buffer[]; tcpSeen: Buffer[] }> {
  const tcpSeen: Buffer[] = []
  for (let i = 0; i < 10; i++) {                                   // a port free for both UDP and TCP
    const port = await freePort()
    try {
      await fakeTcp(t, port, (m, sock) => { tcpSeen.push(m); tcp(m, sock) })
      return { ...await fakeUdp(t, udp, port), tcpSeen }
    } catch { /* taken meanwhile: try another */ }
  }
  throw new Error('no port free for both UDP and TCP')
}
/** The message with the letters of its question's name in lower case (an upstream that does not keep the case). */
const lowered = (b: Buffer): Buffer => {
  const qEnd = (readQuestion(b, 0) as Query).qEnd
  for (let i = 12; i < qEnd - 4; i++) if (b[i]! >= 65 && b[i]! <= 90) b[i]! |= 0x20
  return b
}
const LONG = 'averyveryverylongname.test'                          // 25 letters: 0x20 gives 2^25 spellings

t.test('mixCase: a random case for each letter of the name, nothing else changed', async t => {
  const q = custom('ab-c9.x_y@z[1]`{.Test', 1, { type: 'AAAA' })
  q.buf[q.buf.indexOf('@')] = 0xc1                             // latin1 Á: not an ASCII letter
  const orig = Buffer.from(q.buf)
  const spellings = new Set<string>()
  for (let i = 0; i < 64; i++) {
    mixCase(q.buf, 12, q.qEnd - 4)
    t.equal(q.buf.length, orig.length)
    for (let k = 0; k < q.buf.length; k++) {
      const a = orig[k]!
      const b = q.buf[k]!
      const letter = (a | 0x20) >= 97 && (a | 0x20) <= 122 && k >= 12 && k < q.qEnd - 4
      if (letter ? (a | 0x20) !== (b | 0x20) : a !== b) t.fail(`byte ${k}: ${a} became ${b}`)
    }
    spellings.add(q.buf.toString('latin1', 12, q.qEnd))
  }
  t.ok(spellings.size > 32, `${spellings.size} spellings in 64 draws`)
  t.equal(decodeMsg(q.buf).questions[0]!.type, 'AAAA', 'type and class untouched')
})

t.test('PendingTable: a query sent with exactCase fails on a reply that differs in letter case', async t => {
  const table = new PendingTable()
  const a = query('abc.test')
  const got: (AppError | undefined)[] = []
  t.ok(table.add(a.buf, a.qEnd, 1000, err => got.push(err), true))
  const r = answer(a.buf)
  r[13] = 65                                                    // 'A'
  t.notOk(table.take(r), 'not taken')
  t.equal(got[0], CASE_MISMATCH, 'the query fails at once')
  t.equal(table.size, 0)
  const b = query('abc.test')
  t.ok(table.add(b.buf, b.qEnd, 1000, err => got.push(err)))
  const r2 = answer(b.buf)
  r2[13] = 65
  t.ok(table.take(r2), 'without exactCase the name is compared without case')
  t.equal(got[1], undefined)
})

t.test('0x20: a UDP query goes out with its name in a random letter case; the answer carries the client\'s', async t => {
  const up = await fakeUdp(t, reply)
  const tcp = await fakeTcp(t, 0, (m, sock) => sock.write(frame(answer(m))))
  const ev = memoryEvidence()
  const pool = new UpstreamPool([`udp://127.0.0.1:${up.port}`], ev, Date.now)
  t.teardown(() => pool.close())
  const asked = 'AVeryVeryVeryLongName.test'
  for (let i = 0; i < 8; i++) {
    const r = await send(pool, custom(asked, 77 + i))
    t.equal(decodeMsg(r.reply!).questions[0]!.name, asked, 'the client\'s letter case')
    t.equal(decodeMsg(r.reply!).id, 77 + i)
  }
  const sent = up.seen.map(nameOf)
  t.ok(sent.every(n => n.toLowerCase() === asked.toLowerCase()))
  t.ok(new Set(sent).size >= 7, `${new Set(sent).size} spellings in 8 queries`)
  t.equal(ev.counts['upstream.ok'], 8)

  const tp = new UpstreamPool([`tcp://127.0.0.1:${tcp}`], memoryEvidence(), Date.now)
  t.teardown(() => tp.close())
  const seenTcp: string[] = []
  for (let i = 0; i < 3; i++) seenTcp.push(decodeMsg((await send(tp, custom(asked, 1))).reply!).questions[0]!.name)
  t.same(seenTcp, [asked, asked, asked], 'over TCP, no 0x20 (an off-path spoofer cannot answer there)')
})

t.test('0x20: a reply in another letter case (a spoof that guessed port and ID) is not taken; the query is asked again over TCP', async t => {
  const up = await fakeBoth(t, (m, r, s) => {
    const spoof = lowered(answer(m, false, '6.6.6.6'))
    s.send(spoof, r.port, r.address)                             // the right socket and ID, the case guessed wrong
    setTimeout(() => reply(m, r, s), 300)                        // well after the TCP re-ask, however slow the box
  }, (m, sock) => sock.write(frame(answer(m, false, '192.0.2.99'))))
  const ev = memoryEvidence()
  const pool = new UpstreamPool([`udp://127.0.0.1:${up.port}`], ev, Date.now)
  t.teardown(() => pool.close())
  const r = await send(pool, custom(LONG, 1))
  t.equal(decodeMsg(r.reply!).answers[0]!.data, '192.0.2.99', 'the answer over TCP')
  t.equal(up.tcpSeen.length, 1)
  t.equal(ev.counts['dropped.mismatch'], 1)
  t.equal(ev.counts['upstream.ok'], 1)
  t.notOk(ev.messages.some(m => m.msg.includes('letter case')), 'the upstream keeps the case over TCP: 0x20 stays on')
  await sleep(350)
  t.equal(ev.counts['dropped.mismatch'], 2, 'the genuine UDP answer came too late')
  await send(pool, custom(LONG, 2))
  t.not(nameOf(up.seen[1]!), LONG, 'still mixed')
  await sleep(350)                                              // the second genuine answer, before the fake closes
})

t.test('0x20: an upstream that does not keep the case is found out over TCP, and gets the client\'s case from then on', async t => {
  const up = await fakeBoth(t, (m, r, s) => s.send(lowered(answer(m)), r.port, r.address),
    (m, sock) => sock.write(frame(lowered(answer(m, false, '192.0.2.99')))))
  const ev = memoryEvidence()
  const url = `udp://127.0.0.1:${up.port}`
  const pool = new UpstreamPool([url], ev, Date.now)
  t.teardown(() => pool.close())
  const rs = await Promise.all([send(pool, custom(LONG, 1)), send(pool, custom(`x${LONG}`, 2))])   // found out by both at once
  t.same(rs.map(r => decodeMsg(r.reply!).answers[0]!.data), ['192.0.2.99', '192.0.2.99'], 'answered over TCP')
  t.same(rs.map(r => decodeMsg(r.reply!).questions[0]!.name), [LONG, `x${LONG}`])
  t.equal(up.tcpSeen.length, 2)
  t.same(ev.messages.filter(m => m.msg.includes('letter case')), [{
    level: 'warn', msg: 'dns upstream does not keep the letter case of questions',
    fields: { upstream: url, detail: "queries to it go out in the client's letter case from now on (no 0x20)" },
  }], 'one warning')
  const asked = 'AVeryVeryVeryLongName.test'
  const r = await send(pool, custom(asked, 3))
  t.equal(decodeMsg(r.reply!).answers[0]!.data, '192.0.2.1', 'over UDP')
  t.equal(decodeMsg(r.reply!).questions[0]!.name, asked)
  t.equal(nameOf(up.seen.at(-1)!), asked, 'sent in the client\'s case')
  t.equal(up.tcpSeen.length, 2, 'no more TCP')
})

t.test('0x20: failing over from a UDP upstream to a tcp:// one sends the client\'s letter case again', async t => {
  const dead = await fakeUdp(t, () => {})
  const tcp = await fakeTcp(t, 0, (m, sock) => sock.write(frame(answer(m))))
  const seen: string[] = []
  const pool = new UpstreamPool([`udp://127.0.0.1:${dead.port}`, `tcp://127.0.0.1:${tcp}`], memoryEvidence(), Date.now)
  t.teardown(() => pool.close())
  const r = await send(pool, custom(LONG, 1), 400)
  seen.push(nameOf(dead.seen[0]!))
  t.not(seen[0], LONG, 'mixed over UDP')
  t.equal(decodeMsg(r.reply!).questions[0]!.name, LONG)
  t.equal(r.upstream, `tcp://127.0.0.1:${tcp}`)
})

/** A reply to `q` with its question and the given rcode, no records. */
const rcodeReply = (q: Buffer, rcode: number): Buffer => {
  const b = answer(q, true)
  b.writeUInt16BE(0x8180 | rcode, 2)
  return b
}
/** The header of `q` alone, as a reply with the given rcode (QDCOUNT 0: unbound's `refuse`). */
const headerOnly = (q: Buffer, rcode: number): Buffer => {
  const b = Buffer.alloc(12)
  b.writeUInt16BE(q.readUInt16BE(0), 0)
  b.writeUInt16BE(0x8100 | rcode, 2)
  return b
}

t.test('a reply that says the server could not answer (SERVFAIL, REFUSED, NOTIMP, FORMERR) is asked of the next upstream (RFC 1034 §5.3.3)', async t => {
  for (const rcode of [1, 2, 4, 5]) {
    const refusing = await fakeUdp(t, (m, r, s) => { s.send(rcodeReply(m, rcode), r.port, r.address) })
    const live = await fakeUdp(t, reply)
    const ev = memoryEvidence()
    const liveUrl = `udp://127.0.0.1:${live.port}`
    const pool = new UpstreamPool([`udp://127.0.0.1:${refusing.port}`, liveUrl], ev, Date.now)
    t.teardown(() => pool.close())
    const r = await forward(pool)
    t.equal(r.upstream, liveUrl, `rcode ${rcode}: the second upstream answered`)
    t.equal(decodeMsg(r.reply!).answers[0]?.data, '192.0.2.1')
    t.equal(ev.counts['upstream.error'], 1, 'the refusal counted as the first upstream\'s error')
    t.equal(refusing.seen.length, 1)
  }
})

t.test('when no upstream does better, the last such reply is the answer, with the client\'s ID and question', async t => {
  const a = await fakeUdp(t, (m, r, s) => { s.send(rcodeReply(m, 5), r.port, r.address) })
  const b = await fakeUdp(t, (m, r, s) => { s.send(rcodeReply(m, 2), r.port, r.address) })
  const ev = memoryEvidence()
  const bUrl = `udp://127.0.0.1:${b.port}`
  const pool = new UpstreamPool([`udp://127.0.0.1:${a.port}`, bUrl], ev, Date.now)
  t.teardown(() => pool.close())
  const r = await forward(pool, 'Mixed.Test')
  t.equal(r.err, undefined)
  t.equal(r.upstream, bUrl)
  const d = decodeMsg(r.reply!)
  t.equal(d.rcode, 'SERVFAIL', 'the last upstream\'s reply')
  t.equal(d.id, 0x1234)
  t.equal(d.questions[0]!.name, 'Mixed.Test')
  // a later upstream that times out does not hide an earlier one's reply
  const dead = await fakeUdp(t, () => {})
  const pool2 = new UpstreamPool([`udp://127.0.0.1:${a.port}`, `udp://127.0.0.1:${dead.port}`], memoryEvidence(), Date.now)
  t.teardown(() => pool2.close())
  const r2 = await forward(pool2, 'a.test', 300)
  t.equal(r2.err, undefined)
  t.equal(decodeMsg(r2.reply!).rcode, 'REFUSED')
})

t.test('health: a reply that says the server could not answer never marks it down: it answered', async t => {
  const refusing = await fakeUdp(t, (m, r, s) => { s.send(rcodeReply(m, 5), r.port, r.address) })
  const live = await fakeUdp(t, reply)
  const ev = memoryEvidence()
  const url = `udp://127.0.0.1:${refusing.port}`
  const liveUrl = `udp://127.0.0.1:${live.port}`
  const pool = new UpstreamPool([url, liveUrl], ev, Date.now)
  t.teardown(() => pool.close())
  for (let i = 0; i < 5; i++) t.equal((await forward(pool, `r${i}.test`)).upstream, liveUrl)
  t.equal(refusing.seen.length, 5, 'asked first every time')
  t.equal(ev.messages.filter(m => m.msg === 'dns upstream down').length, 0)

  // a quiet resolver: one good answer, then SERVFAILs in a row for a bogus name (DNSSEC), nothing in between
  const picky = await fakeUdp(t, (m, r, s) => {
    if (decodeMsg(m).questions[0]!.name.toLowerCase().endsWith('bogus.test')) s.send(rcodeReply(m, 2), r.port, r.address)
    else reply(m, r, s)
  })
  const ev2 = memoryEvidence()
  const pickyUrl = `udp://127.0.0.1:${picky.port}`
  const pool2 = new UpstreamPool([pickyUrl, liveUrl], ev2, Date.now)
  t.teardown(() => pool2.close())
  t.equal((await forward(pool2, 'yes.test')).upstream, pickyUrl)
  for (let i = 0; i < 4; i++) t.equal((await forward(pool2, `n${i}.bogus.test`)).upstream, liveUrl)
  t.equal(ev2.messages.filter(m => m.msg === 'dns upstream down').length, 0, 'never marked down')
  t.equal((await forward(pool2, 'yes2.test')).upstream, pickyUrl, 'still asked first')
})

t.test('an error reply without the question (header only) fails the query at once, once TCP says it too: no wait for the timeout', async t => {
  const bare = await fakeBoth(t, (m, r, s) => {
    s.send(headerOnly(m, 0), r.port, r.address)                                // NOERROR without a question: not an answer
    s.send(headerOnly(m, 3), r.port, r.address)                                // nor NXDOMAIN: it says what the name holds
    const notResponse = headerOnly(m, 5)
    notResponse[2] = notResponse[2]! & 0x7f
    s.send(notResponse, r.port, r.address)                                     // QR clear: not a response
    const wrongId = headerOnly(m, 5)
    wrongId.writeUInt16BE((m.readUInt16BE(0) + 1) & 0xffff, 0)
    s.send(wrongId, r.port, r.address)                                         // another ID: not this query's
    s.send(headerOnly(m, 5), r.port, r.address)
  }, (m, sock) => sock.write(frame(headerOnly(m, 5))))                          // over TCP, which no spoofer reaches: it is so
  const live = await fakeUdp(t, reply)
  const ev = memoryEvidence()
  const liveUrl = `udp://127.0.0.1:${live.port}`
  const pool = new UpstreamPool([`udp://127.0.0.1:${bare.port}`, liveUrl], ev, Date.now)
  t.teardown(() => pool.close())
  const t0 = Date.now()
  const r = await forward(pool, 'a.test', 4000)
  t.equal(r.upstream, liveUrl, 'the next upstream asked')
  t.ok(Date.now() - t0 < 1500, 'not after the first upstream\'s share of the budget (2 s)')
  t.equal(bare.tcpSeen.length, 1, 'asked again over TCP first')
  t.equal(ev.counts['dropped.mismatch'], 4)
  t.equal(ev.counts['upstream.error'], 1)
  t.equal(ev.messages.filter(m => m.msg === 'dns upstream down').length, 0)
  // the only upstream: the error, at once
  const one = new UpstreamPool([`udp://127.0.0.1:${bare.port}`], memoryEvidence(), Date.now)
  t.teardown(() => one.close())
  const t1 = Date.now()
  const e = await forward(one, 'a.test', 4000)
  t.equal(e.err?.code, 'UPSTREAM_FAILED')
  t.match(e.err?.message, 'answered REFUSED without the question')
  t.ok(Date.now() - t1 < 1500)
  t.equal(bare.tcpSeen.length, 2)
})

t.test('a spoofed error without the question (it needs only port and ID, no 0x20 case) loses to the answer over TCP', async t => {
  const up = await fakeBoth(t, (m, r, s) => { s.send(headerOnly(m, 2), r.port, r.address) }, (m, sock) => sock.write(frame(answer(m))))
  const url = `udp://127.0.0.1:${up.port}`
  const pool = new UpstreamPool([url], memoryEvidence(), Date.now)
  t.teardown(() => pool.close())
  const r = await forward(pool, 'a.test', 4000)
  t.equal(r.err, undefined)
  t.equal(r.upstream, url)
  t.equal(decodeMsg(r.reply!).answers.length, 1, 'the answer, from the same upstream over TCP')
  t.equal(up.seen.length, 1)
  t.equal(up.tcpSeen.length, 1)
})

type Slots = { slots: ({ socket: Socket } | undefined)[] }
const socketOf = (u: UdpTransport): Socket => (u as unknown as Slots).slots.find(Boolean)!.socket

t.test('UDP: a socket whose connect fails (a broadcast address: EACCES) fails its queries at once and leaves its slot; the process goes on', async t => {
  // connect(2) refuses a broadcast address without SO_BROADCAST: no datagram leaves the host.
  // Node hands that failure to connect()'s callback, which took it for a success and sent on an
  // unconnected socket: a throw outside any handler, which ended the process
  const errors: string[] = []
  const u = new UdpTransport('255.255.255.255', 53, memoryEvidence().counters, e => errors.push(e.message), Date.now, { sockets: 1, queriesPerSocket: 1000, socketLifeMs: 60_000 })
  t.teardown(() => u.close())
  const t0 = performance.now()
  const got = await ask(u, 'a.test', 5000)
  t.equal(got.err?.code, 'UPSTREAM_FAILED')
  t.match(got.err?.message, /255\.255\.255\.255:53: connect EACCES/)
  t.ok(performance.now() - t0 < 1000, 'at once, not after the timeout')
  t.same(errors, ['connect EACCES 255.255.255.255:53'])
  t.equal(u.sockets, 0, 'closed, its slot free')
  t.equal((await ask(u, 'b.test', 5000)).err?.code, 'UPSTREAM_FAILED', 'the next query opens another, which fails the same way')
  t.equal(u.sockets, 0)
})

t.test('UDP: a socket that cannot open (no descriptor: EMFILE at its bind) fails its queries at once; the next query gets a new one', async t => {
  const up = await fakeUdp(t, reply)
  const errors: string[] = []
  const u = new UdpTransport('127.0.0.1', up.port, memoryEvidence().counters, e => errors.push(e.message), Date.now, { sockets: 1, queriesPerSocket: 1000, socketLifeMs: 60_000 })
  t.teardown(() => u.close())
  const first = ask(u, 'a.test', 5000)
  // what dgram emits when bind(2) finds no descriptor free, before its connect ever runs
  socketOf(u).emit('error', Object.assign(new Error('bind EMFILE 0.0.0.0'), { code: 'EMFILE' }))
  const got = await first
  t.equal(got.err?.code, 'LOCAL_EXHAUSTED', 'failed at once, not left to time out, as this host\'s failure')
  t.match(got.err?.message, /bind EMFILE/)
  t.same(errors, ['bind EMFILE 0.0.0.0'])
  t.equal(u.sockets, 0, 'the broken socket left its slot (it took every query after it into a timeout, for up to socketLifeMs)')
  t.equal((await ask(u, 'b.test')).err, undefined, 'descriptors back: answered on a new socket')
  t.equal(up.seen.length, 1)
})

t.test('UDP: an upstream port that is closed (ICMP port unreachable: ECONNREFUSED) fails the queries at once, and the socket stays', async t => {
  const port = await freePort()                    // nothing listens there
  const errors: string[] = []
  const u = new UdpTransport('127.0.0.1', port, memoryEvidence().counters, e => errors.push(e.message), Date.now, { sockets: 1, queriesPerSocket: 1000, socketLifeMs: 60_000 })
  t.teardown(() => u.close())
  // the kernel's global ICMP rate limit (net.ipv4.icmp_msgs_per_sec) can drop the port
  // unreachable when the whole suite runs: the query then fails later; asked at most 3 times
  let got: Awaited<ReturnType<typeof ask>> | undefined
  let ms = Infinity
  for (let i = 0; i < 3 && ms >= 1000; i++) {
    const t0 = performance.now()
    got = await ask(u, `a${i}.test`, 5000)
    ms = performance.now() - t0
  }
  t.equal(got!.err?.code, 'UPSTREAM_FAILED')
  t.match(got!.err?.message, /ECONNREFUSED/)
  t.ok(ms < 1000, `at once (${ms.toFixed(0)} ms), not after the 5 s timeout`)
  t.ok(errors.length > 0 && errors.every(e => e === 'recvmsg ECONNREFUSED'), `the socket's error said (${errors.join('; ')})`)
  t.equal(u.sockets, 1, 'a connected socket stays: the upstream may come back')
  const up = await fakeUdp(t, reply, port)
  t.equal((await ask(u, 'b.test')).err, undefined, 'the upstream is back: answered on the same socket')
  t.equal(up.seen.length, 1)
})

t.test('UDP: an error on a replaced socket fails its last queries and closes it', async t => {
  const up = await fakeUdp(t, () => {})           // never answers
  const u = new UdpTransport('127.0.0.1', up.port, memoryEvidence().counters, () => {}, Date.now, { sockets: 1, queriesPerSocket: 1, socketLifeMs: 60_000 })
  t.teardown(() => u.close())
  const first = ask(u, 'a.test', 5000)
  while (up.seen.length < 1) await sleep(5)
  const old = socketOf(u)
  const second = ask(u, 'b.test', 300)            // replaces the first socket, which waits for its query
  t.equal(u.sockets, 2)
  old.emit('error', Object.assign(new Error('recvmsg ECONNREFUSED'), { code: 'ECONNREFUSED' }))
  t.equal((await first).err?.code, 'UPSTREAM_FAILED')
  t.equal(u.sockets, 1, 'the replaced socket is closed')
  t.equal((await second).err?.code, 'UPSTREAM_TIMEOUT')
})

t.test('an upstream says its socket errors at most once per 10 s, with how many; no descriptor free is counted', async t => {
  const { Upstream } = await import('../../src/dns/upstream.js')
  const ev = memoryEvidence()
  let now = 0
  const u = new Upstream('udp://127.0.0.1:9', ev, () => now, { sockets: 1, queriesPerSocket: 1, socketLifeMs: 1 })
  const refused = Object.assign(new Error('recvmsg ECONNREFUSED'), { code: 'ECONNREFUSED' })
  u.socketError(refused)
  u.socketError(refused)
  now = 9_999
  u.socketError(Object.assign(new Error('bind EMFILE 0.0.0.0'), { code: 'EMFILE' }))
  u.socketError(Object.assign(new Error('bind ENFILE 0.0.0.0'), { code: 'ENFILE' }))
  now = 10_000
  u.socketError(refused)
  const nobufs = Object.assign(new Error('send ENOBUFS 127.0.0.1:9'), { code: 'ENOBUFS' })
  u.socketError(nobufs)
  u.socketError(nobufs)
  t.same(ev.messages.map(m => m.fields), [
    { upstream: 'udp://127.0.0.1:9', error: 'recvmsg ECONNREFUSED', errors: 1 },
    { upstream: 'udp://127.0.0.1:9', error: 'recvmsg ECONNREFUSED', errors: 2 },
    { upstream: 'udp://127.0.0.1:9', 'error.code': 'ENOBUFS', error: 'send ENOBUFS 127.0.0.1:9', errors: 1 },
  ], 'no descriptor or buffer here is not said as the upstream\'s socket error')
  t.match(ev.messages[2]!.msg, /ENOBUFS.*not marked down/)
  t.equal(ev.counts['fd.dns-upstream'], 2, 'no descriptor free (EMFILE, ENFILE) is counted')
})

type Inner = { list: { udp?: UdpTransport; tcp?: { conn?: { socket: TcpSocket } } }[] }
const udpOf = (pool: UpstreamPool, i: number): UdpTransport => (pool as unknown as Inner).list[i]!.udp!

t.test('a failure of this host (no descriptor, no buffer) is not the upstream\'s: no failover, no health lost, SERVFAIL at once', async t => {
  const first = await fakeUdp(t, reply)
  const second = await fakeUdp(t, reply)
  const ev = memoryEvidence()
  const url = `udp://127.0.0.1:${first.port}`
  const pool = new UpstreamPool([url, `udp://127.0.0.1:${second.port}`], ev, Date.now, { ports: { sockets: 1, queriesPerSocket: 1000, socketLifeMs: 60_000 } })
  t.teardown(() => pool.close())
  for (const code of ['EMFILE', 'ENFILE', 'EMFILE', 'EMFILE']) {
    const t0 = performance.now()
    const r = forward(pool, `${code.toLowerCase()}.test`, 5000)
    // what dgram emits when bind(2) finds no descriptor free, before its connect ever runs
    socketOf(udpOf(pool, 0)).emit('error', Object.assign(new Error(`bind ${code} 0.0.0.0`), { code }))
    const got = await r
    t.equal(got.err?.code, 'LOCAL_EXHAUSTED', `${code}: failed as this host's failure`)
    t.ok(performance.now() - t0 < 1000, `${code}: at once`)
  }
  t.equal(second.seen.length, 0, 'not failed over: the next upstream would get no socket either')
  t.equal(ev.messages.filter(m => m.msg === 'dns upstream down').length, 0, 'not marked down (three failures would)')
  t.equal(ev.counts['upstream.error'], undefined, 'not counted as the upstream\'s error')
  t.equal(ev.counts['fd.dns-upstream'], 4)
  t.equal((await forward(pool, 'back.test')).upstream, url, 'descriptors back: the first upstream answers, as before')
  // no buffer for a send on a connected socket: the same, and the socket stays
  const mute = await fakeUdp(t, () => {})
  const ev2 = memoryEvidence()
  const pool2 = new UpstreamPool([`udp://127.0.0.1:${mute.port}`, `udp://127.0.0.1:${second.port}`], ev2, Date.now, { ports: { sockets: 1, queriesPerSocket: 1000, socketLifeMs: 60_000 } })
  t.teardown(() => pool2.close())
  for (let i = 0; i < 3; i++) {
    const r = forward(pool2, `nobufs${i}.test`, 5000)
    while (mute.seen.length <= i) await sleep(5)
    socketOf(udpOf(pool2, 0)).emit('error', Object.assign(new Error('send ENOBUFS'), { code: 'ENOBUFS' }))
    t.equal((await r).err?.code, 'LOCAL_EXHAUSTED')
  }
  t.equal(udpOf(pool2, 0).sockets, 1, 'the connected socket stays')
  t.equal(second.seen.length, 0, 'not failed over')
  t.equal(ev2.messages.filter(m => m.msg === 'dns upstream down').length, 0)
  t.match(ev2.messages, [{ level: 'warn', msg: /ENOBUFS/, fields: { 'error.code': 'ENOBUFS', errors: 1 } }])
})

t.test('TCP: a connection that fails for want of a descriptor fails its queries as this host\'s failure, not sent again', async t => {
  const ev = memoryEvidence()
  const port = await freePort()
  const tcp = new TcpTransport('127.0.0.1', port, ev.counters)
  t.teardown(() => tcp.close())
  const { buf, qEnd } = query()
  const failed = new Promise<AppError | undefined>(r => tcp.send(buf, qEnd, 5000, e => r(e)))
  const sock = (tcp as unknown as { conn: { socket: TcpSocket } }).conn.socket
  sock.destroy(Object.assign(new Error('connect ENFILE 127.0.0.1:53'), { code: 'ENFILE' }))
  t.equal((await failed)?.code, 'LOCAL_EXHAUSTED')
  t.equal(ev.counts['fd.dns-upstream'], 1)
  const again = new Promise<AppError | undefined>(r => tcp.send(buf, qEnd, 5000, e => r(e)))
  ;(tcp as unknown as { conn: { socket: TcpSocket } }).conn.socket.destroy(Object.assign(new Error('write ENOBUFS'), { code: 'ENOBUFS' }))
  t.equal((await again)?.code, 'LOCAL_EXHAUSTED', 'no buffer: the same')
  t.equal(ev.counts['fd.dns-upstream'], 1, 'but not counted as a descriptor')
})

t.test('TCP transport: a connection that cannot get a descriptor (EMFILE) is counted; its queries fail at once', async t => {
  const ev = memoryEvidence()
  const port = await freePort()
  const tcp = new TcpTransport('127.0.0.1', port, ev.counters)
  t.teardown(() => tcp.close())
  const { buf, qEnd } = query()
  const t0 = performance.now()
  const failed = new Promise<AppError | undefined>(r => tcp.send(buf, qEnd, 5000, e => r(e)))
  const sock = (tcp as unknown as { conn: { socket: TcpSocket } }).conn.socket
  sock.destroy(Object.assign(new Error('connect EMFILE 127.0.0.1:53'), { code: 'EMFILE' }))   // what net emits when socket(2) finds none free
  t.equal((await failed)?.code, 'LOCAL_EXHAUSTED', 'this host\'s failure, not the upstream\'s')
  t.ok(performance.now() - t0 < 1000, 'at once')
  t.equal(ev.counts['fd.dns-upstream'], 1)
})

t.test('a reply that is no response to a QUERY (QR clear: an echo, a reflector; opcode NOTIFY) is dropped, never taken as the answer', async t => {
  const up = await fakeUdp(t, (m, r, s) => {
    const echo = answer(m)
    echo[2] = echo[2]! & 0x7f                                                     // the answer, QR clear
    const notify = answer(m)
    notify[2] = (notify[2]! & 0x87) | (4 << 3)                                    // the answer, opcode NOTIFY
    s.send(m, r.port, r.address)                                                  // the query itself, echoed
    s.send(echo, r.port, r.address)
    s.send(notify, r.port, r.address)
    setTimeout(() => s.send(answer(m), r.port, r.address), 50)
  })
  const ev = memoryEvidence()
  const pool = new UpstreamPool([`udp://127.0.0.1:${up.port}`], ev, Date.now)
  t.teardown(() => pool.close())
  const r = await forward(pool)
  t.equal(r.err, undefined)
  t.equal(r.reply![2]! & 0xf8, 0x80, 'the response: QR set, opcode QUERY')
  t.equal(ev.counts['dropped.mismatch'], 3)
})

t.test('TCP transport: a connection stuck inside a frame (its length sent, not the rest) is closed at a timeout; the next query gets a new one', async t => {
  const conns = new Set<TcpSocket>()
  const port = await fakeTcp(t, 0, (m, s) => {
    conns.add(s)
    const d = dnsPacket.decode(m)
    if (d.questions![0]!.name === 'half.test') s.write(Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.alloc(20)]))   // 1000 announced, 20 sent
    else s.write(frame(answer(m)))
  })
  const ev = memoryEvidence()
  const errors: string[] = []
  const tcp = new TcpTransport('127.0.0.1', port, ev.counters, 10_000, undefined, e => errors.push(e.message))
  t.teardown(() => tcp.close())
  const ask = (name: string, ms: number): Promise<{ e?: AppError; rep?: Buffer }> => {
    const { buf, qEnd } = query(name)
    return new Promise(r => tcp.send(buf, qEnd, ms, (e, rep) => r({ e, rep })))
  }
  const half = await ask('half.test', 300)
  t.equal(half.e?.code, 'UPSTREAM_TIMEOUT')
  for (let i = 0; i < 50 && errors.length === 0; i++) await sleep(10)
  t.match(errors, [/TCP connection stuck in a frame: 22 octets of one not finished within 300 ms/])
  const next = await ask('b.test', 2000)
  t.equal(next.e, undefined, 'answered on a new connection, not swallowed by the old frame')
  t.equal(decodeMsg(next.rep!).questions[0]!.name, 'b.test')
  t.equal(conns.size, 2)
})

t.test('TCP transport: a connection that answered nothing within a query\'s time is closed; one that answers others is kept', async t => {
  const conns = new Set<TcpSocket>()
  const port = await fakeTcp(t, 0, (m, s) => {
    conns.add(s)
    if (dnsPacket.decode(m).questions![0]!.name !== 'slow.test') s.write(frame(answer(m)))
  })
  const errors: string[] = []
  const codes: unknown[] = []
  const tcp = new TcpTransport('127.0.0.1', port, memoryEvidence().counters, 10_000, undefined, e => { errors.push(e.message); codes.push((e as NodeJS.ErrnoException).code) })
  t.teardown(() => tcp.close())
  const ask = (name: string, ms: number): Promise<AppError | undefined> => {
    const { buf, qEnd } = query(name)
    return new Promise(r => tcp.send(buf, qEnd, ms, e => r(e)))
  }
  // one slow name while others are answered: the connection works, and stays
  const slow = ask('slow.test', 600)
  for (let i = 0; i < 3; i++) { t.equal(await ask(`o${i}.test`, 1000), undefined); await sleep(150) }
  t.equal((await slow)?.code, 'UPSTREAM_TIMEOUT')
  await sleep(30)
  t.same(errors, [], 'kept: it answered within the slow query\'s time')
  // nothing answered for the whole of a query's time: closed
  t.equal((await ask('slow.test', 200))?.code, 'UPSTREAM_TIMEOUT')
  for (let i = 0; i < 50 && errors.length === 0; i++) await sleep(10)
  t.match(errors, [/TCP connection answered nothing within 200 ms/])
  t.same(codes, ['ETIMEDOUT'], 'given up for time: ETIMEDOUT, as its line says (not null)')
  t.equal(await ask('p.test', 1000), undefined)
  t.equal(conns.size, 2)
})

t.test('tcp:// upstream: a connection refused is said as a socket error, at most once per 10 s', async t => {
  const port = await freePort()
  const ev = memoryEvidence()
  const pool = new UpstreamPool([`tcp://127.0.0.1:${port}`], ev, Date.now)
  t.teardown(() => pool.close())
  t.equal((await forward(pool, 'a.test', 1000)).err?.code, 'UPSTREAM_FAILED')
  t.equal((await forward(pool, 'b.test', 1000)).err?.code, 'UPSTREAM_FAILED')
  const said = ev.messages.filter(m => m.msg === 'dns upstream socket error')
  t.equal(said.length, 1)
  t.match(said[0]!.fields, { upstream: `tcp://127.0.0.1:${port}`, error: /ECONNREFUSED/ })
})

t.test('an upstream says a TCP connection\'s error as a socket error; no descriptor (counted by the transport) and no buffer are this host\'s', async t => {
  const { Upstream } = await import('../../src/dns/upstream.js')
  const ev = memoryEvidence()
  const u = new Upstream('tcp://127.0.0.1:9', ev, () => 0, { sockets: 1, queriesPerSocket: 1, socketLifeMs: 1 })
  const tcpError = (e: Error): void => (u as unknown as { tcpError(e: Error): void }).tcpError(e)
  tcpError(Object.assign(new Error('connect EMFILE 127.0.0.1:9'), { code: 'EMFILE' }))
  t.same(ev.messages, [], 'no descriptor: nothing said here (the transport counts it, and its warning says it)')
  tcpError(Object.assign(new Error('write ENOBUFS'), { code: 'ENOBUFS' }))
  tcpError(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))
  t.match(ev.messages, [
    { level: 'warn', msg: /ENOBUFS/, fields: { 'error.code': 'ENOBUFS' } },
    { level: 'warn', msg: 'dns upstream socket error', fields: { upstream: 'tcp://127.0.0.1:9', error: 'read ECONNRESET', errors: 1 } },
  ])
  u.close()
})
