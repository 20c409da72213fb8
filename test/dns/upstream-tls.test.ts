// tls:// upstreams in the pool against a DNS-over-TLS server of Node's own (what the server saw:
// SNI, a resumed session, each connection), with certificates made by openssl.
import t from 'tap'
import type { Test } from 'tap'
import { readFileSync } from 'node:fs'
import { createServer as createTcpServer, type Socket } from 'node:net'
import { join } from 'node:path'
import { createServer, type TLSSocket } from 'node:tls'
import dnsPacket from 'dns-packet'
import { FrameReader, frame } from '../../src/dns/framing.js'
import { UpstreamPool } from '../../src/dns/upstreams.js'
import { parseQuery, type Query } from '../../src/dns/wire.js'
import type { AppError } from '../../src/errors.js'
import { decodeMsg } from '../fixtures/dig.js'
import { makeDotCerts } from '../fixtures/dot-certs.js'
import { memoryEvidence } from '../fixtures/evidence.js'

const DIR = makeDotCerts(fn => t.teardown(fn))
const CA = readFileSync(join(DIR, 'ca.pem'), 'utf8')
const CA2 = readFileSync(join(DIR, 'other-ca.pem'), 'utf8')

interface Conn { readonly servername: string | false | null; readonly resumed: boolean; readonly socket: TLSSocket }

/** A DNS-over-TLS server: each query answered with one A record; every connection kept (SNI, resumed or not). */
async function dotServer(t: Test): Promise<{ port: number; conns: Conn[] }> {
  const conns: Conn[] = []
  const srv = createServer({ key: readFileSync(join(DIR, 'server.key')), cert: readFileSync(join(DIR, 'server.pem')) }, sock => {
    conns.push({ servername: sock.servername, resumed: sock.isSessionReused(), socket: sock })
    sock.on('error', () => {})
    const reader = new FrameReader()
    sock.on('data', c => reader.push(c, m => {
      const d = decodeMsg(m)
      sock.write(frame(dnsPacket.encode({
        type: 'response', id: d.id, flags: 0x8180, questions: d.questions as dnsPacket.Question[],
        answers: [{ type: 'A', name: d.questions[0]!.name, ttl: 60, data: '192.0.2.1' }],
      })))
    }))
  })
  srv.on('tlsClientError', () => {})
  await new Promise<void>(r => srv.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => { for (const c of conns) c.socket.destroy(); return new Promise<void>(r => srv.close(() => r())) })
  return { port: (srv.address() as { port: number }).port, conns }
}

const forward = (pool: UpstreamPool, name = 'a.test', timeout = 2000): Promise<{ err?: AppError; reply?: Buffer; upstream?: string }> => {
  const buf = dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] })
  return new Promise(resolve => pool.forward(buf, (parseQuery(buf) as Query).qEnd, timeout, (err, r, upstream) => resolve({ err, reply: r, upstream })))
}
const answerOf = (r: { reply?: Buffer }) => r.reply && decodeMsg(r.reply).answers.map(a => a.data)

t.test('tls://IP#NAME: SNI sent, the certificate checked against NAME; the session resumed on the next connection', async t => {
  const s = await dotServer(t)
  const ev = memoryEvidence()
  const url = `tls://127.0.0.1:${s.port}#dot.test`
  const pool = new UpstreamPool([url], ev, Date.now, {}, {}, CA)
  t.teardown(() => pool.close())
  const first = await forward(pool, 'a.test')
  t.same([first.err, first.upstream, answerOf(first)], [undefined, url, ['192.0.2.1']])
  t.same(await Promise.all(['b.test', 'c.test', 'd.test'].map(async n => answerOf(await forward(pool, n)))), [['192.0.2.1'], ['192.0.2.1'], ['192.0.2.1']])
  t.equal(s.conns.length, 1, 'four queries, one connection')
  t.equal(s.conns[0]!.servername, 'dot.test', 'SNI: the server name')
  t.equal(s.conns[0]!.resumed, false)
  // the server closes it (its idle timeout): the next query opens another, resuming the session
  s.conns[0]!.socket.destroy()
  let again = await forward(pool, 'e.test')
  for (let i = 0; i < 20 && again.err !== undefined; i++) again = await forward(pool, `e${i}.test`)   // a query caught by the close fails over (none here) once
  t.same(answerOf(again), ['192.0.2.1'])
  t.equal(s.conns.length, 2)
  t.equal(s.conns[1]!.resumed, true, 'resumed with the ticket of the first')
  t.same(ev.messages.filter(m => m.level === 'warn'), [], 'no warnings')
})

t.test('tls://IP: checked against the IP, no SNI; a server name that is an IP is checked as one, no SNI either', async t => {
  const s = await dotServer(t)
  const ev = memoryEvidence()
  const pool = new UpstreamPool([`tls://127.0.0.1:${s.port}`], ev, Date.now, {}, {}, CA)
  t.teardown(() => pool.close())
  t.same(answerOf(await forward(pool)), ['192.0.2.1'])
  const byIp = new UpstreamPool([`tls://127.0.0.1:${s.port}#127.0.0.1`], ev, Date.now, {}, {}, CA)
  t.teardown(() => byIp.close())
  t.same(answerOf(await forward(byIp)), ['192.0.2.1'])
  t.same(s.conns.map(c => c.servername), [false, false], 'no SNI for an IP')
  const wrongIp = new UpstreamPool([`tls://127.0.0.1:${s.port}#127.0.0.9`], ev, Date.now, {}, {}, CA)
  t.teardown(() => wrongIp.close())
  const r = await forward(wrongIp)
  t.equal(r.err?.code, 'UPSTREAM_FAILED')
  t.match(r.err?.message, /^TLS connection to 127\.0\.0\.1:\d+ closed: Hostname\/IP does not match certificate's altnames: IP: 127\.0\.0\.9 is not in the cert's list: 127\.0\.0\.1$/)
  t.match(ev.messages, [{ level: 'warn', msg: 'dns upstream TLS error', fields: { upstream: `tls://127.0.0.1:${s.port}#127.0.0.9`, code: 'ERR_TLS_CERT_ALTNAME_INVALID', errors: 1 } }])
})

t.test('a certificate not trusted: the query fails over at once; said once per 10 s with the count; marked down', async t => {
  const s = await dotServer(t)
  const ev = memoryEvidence()
  let now = 1_000_000
  const bad = `tls://127.0.0.1:${s.port}#dot.test`
  const good = `tls://127.0.0.1:${s.port}`
  const pool = new UpstreamPool([bad, good], ev, () => now, {}, {}, undefined)
  t.teardown(() => pool.close())
  const r = await forward(pool)
  t.match(r.err?.message, /TLS connection to 127\.0\.0\.1:\d+ closed: unable to verify the first certificate/, 'no tlsCaFile: Node\'s CAs do not know the test CA')
  t.equal(r.upstream, undefined)
  t.equal(ev.counts['upstream.error'], 2)
  // with the CA: the first still fails (another CA), the second answers
  pool.update([bad, good], 0, {}, CA2)
  t.equal((await forward(pool, 'b.test')).err?.code, 'UPSTREAM_FAILED')
  pool.update([bad, good], 0, {}, CA)
  t.same((await forward(pool, 'c.test')).upstream, bad, 'the right CA: answered')
  const notices = ev.messages.filter(m => m.msg === 'dns upstream TLS error')
  t.same(notices.map(m => [m.fields!.upstream, m.fields!.code, m.fields!.errors]), [
    [bad, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 1], [good, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 1],
    [bad, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 1], [good, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 1],
  ], 'a new CA makes new upstreams (each says its first error)')
  // a name the certificate does not carry, three times: said once, then once after 10 s with the count
  const wrong = `tls://127.0.0.1:${s.port}#wrong.test`
  pool.update([wrong], 0, {}, CA)
  for (const n of ['x1.test', 'x2.test', 'x3.test']) t.equal((await forward(pool, n)).err?.code, 'UPSTREAM_FAILED')
  now += 10_000
  t.equal((await forward(pool, 'x4.test')).err?.code, 'UPSTREAM_FAILED')
  t.same(ev.messages.filter(m => m.fields?.upstream === wrong).map(m => [m.msg, m.fields!.errors ?? m.fields!.failures]), [
    ['dns upstream TLS error', 1], ['dns upstream down', 3], ['dns upstream TLS error', 3],
  ])
  t.match(ev.messages.find(m => m.fields?.upstream === wrong)!.fields!.error, /^Hostname\/IP does not match certificate's altnames: Host: wrong\.test\./)
})

t.test('a reload: tls:// upstreams kept while the CA stays, new ones when it changes; udp:// kept either way', async t => {
  const ev = memoryEvidence()
  const urls = ['tls://192.0.2.53#dns.example', 'udp://192.0.2.54']
  const pool = new UpstreamPool(urls, ev, Date.now, {}, {}, CA)
  t.teardown(() => pool.close())
  const list = () => [...(pool as unknown as { list: object[] }).list]
  const [tls0, udp0] = list()
  pool.update(urls, 0, {}, CA)
  t.same(list().map((u, i) => u === [tls0, udp0][i]), [true, true], 'the same CA: both kept')
  pool.update(urls, 0, {}, CA2)
  t.same(list().map((u, i) => u === [tls0, udp0][i]), [false, true], 'another CA: the tls:// one is new')
  const [tls1] = list()
  pool.update(urls, 0, {})
  t.same(list().map((u, i) => u === [tls1, udp0][i]), [false, true], 'no CA: new again')
})

t.test('a server that never finishes the handshake: given up when the query that opened it times out; the next opens another', async t => {
  const socks: Socket[] = []
  const srv = createTcpServer(s => { socks.push(s); s.on('error', () => {}) })   // takes the ClientHello, says nothing
  await new Promise<void>(r => srv.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => { for (const s of socks) s.destroy(); return new Promise<void>(r => srv.close(() => r())) })
  const port = (srv.address() as { port: number }).port
  const ev = memoryEvidence()
  const pool = new UpstreamPool([`tls://127.0.0.1:${port}#dot.test`], ev, Date.now, {}, {}, CA)
  t.teardown(() => pool.close())
  const [a, b] = await Promise.all([forward(pool, 'a.test', 300), forward(pool, 'b.test', 300)])
  t.same([a.err?.code, b.err?.code], ['UPSTREAM_TIMEOUT', 'UPSTREAM_TIMEOUT'], 'both time out')
  // the budget left of the query that opened it: 300 ms, less what passed before the dial on a loaded box
  t.match(ev.messages, [{ msg: 'dns upstream TLS error', fields: { error: /^TLS connection not open within \d+ ms$/, code: 'ETIMEDOUT' } }], 'the connection is given up')
  const ms = Number(/within (\d+) ms/.exec(String(ev.messages[0]!.fields!.error))![1])
  t.ok(ms > 0 && ms <= 300, `within the query's budget (${ms} ms), not a timeout of its own`)
  // a query sent before the close is seen fails with it at once; one after it opens a new connection
  for (let i = 0; i < 10 && socks.length < 2; i++) {
    const c = await forward(pool, `c${i}.test`, 100)
    t.ok(c.err, `c${i}.test: no answer`)
  }
  t.equal(socks.length, 2, 'a new connection for a later query')
})
