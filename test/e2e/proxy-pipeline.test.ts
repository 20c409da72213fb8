// Pipelined plain-HTTP requests on one client connection: served one at a time, reading held
// while too many wait, nothing left behind when the client goes; the idle pool to origins capped.
import { createServer as createHttpServer } from 'node:http'
import { createServer, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { MAX_WAITING } from '../../src/proxy/http-server.js'
import { MAX_IDLE_UPSTREAMS } from '../../src/proxy/pool-agent.js'
import { fakeResolve, testProxy, waitFor, type TestProxy } from '../fixtures/origin.js'
import { rawClient } from '../fixtures/raw-client.js'

const GET = (port: number, path: string, extra = '') => `GET http://127.0.0.1:${port}${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${extra}\r\n`
const LOOPBACK = { allowDestinations: ['127.0.0.0/8'] }

/** An HTTP origin that answers after `delayMs`, with the path as the body, and records how many requests it had at once. */
async function countingOrigin(t: Test, delayMs: number, headers: Record<string, string> = {}): Promise<{ port: number; served: () => number; maxAtOnce: () => number; open: () => number }> {
  let now = 0
  let max = 0
  let served = 0
  const sockets = new Set<Socket>()
  const srv = createHttpServer((req, res) => {
    max = Math.max(max, ++now)
    setTimeout(() => {
      now--
      served++
      res.writeHead(200, { 'content-type': 'text/plain', ...headers }).end(`path=${req.url}\n`)
    }, delayMs)
  })
  srv.keepAliveTimeout = 0                           // idle keep-alive sockets stay until the proxy closes them
  srv.on('connection', s => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  await new Promise<void>(r => srv.listen(0, '127.0.0.1', r))
  t.teardown(() => { srv.closeAllConnections(); srv.close() })
  return { port: (srv.address() as { port: number }).port, served: () => served, maxAtOnce: () => max, open: () => sockets.size }
}

/** A TCP origin that reads and never answers; counts connections accepted and still open. */
async function silentOrigin(t: Test): Promise<{ port: number; accepted: () => number; open: () => number }> {
  let accepted = 0
  const sockets = new Set<Socket>()
  const srv = createServer(s => {
    accepted++
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
    s.resume()
  })
  await new Promise<void>(r => srv.listen(0, '127.0.0.1', r))
  t.teardown(() => { for (const s of sockets) s.destroy(); srv.close() })
  return { port: (srv.address() as { port: number }).port, accepted: () => accepted, open: () => sockets.size }
}

const client = (t: Test, port: number) => rawClient(t, port)

const closeLines = (p: TestProxy) => p.ev.messages.filter(m => m.msg === 'proxy.close').map(m => m.fields!)

t.test('pipelined requests are forwarded one at a time, answered in order, past the reading limit', async t => {
  const origin = await countingOrigin(t, 3)
  const p = await testProxy(t, { config: { proxy: LOOPBACK } })
  const n = 3 * MAX_WAITING
  const c = await client(t, p.port)
  c.s.write(Array.from({ length: n }, (_, i) => GET(origin.port, `/${i}`)).join(''))
  t.ok(await waitFor(() => (c.data().match(/^HTTP\/1\.1 200 /gm) ?? []).length === n, 10_000), `all ${n} answered`)
  const paths = [...c.data().matchAll(/path=\/(\d+)/g)].map(m => Number(m[1]))
  t.same(paths, Array.from({ length: n }, (_, i) => i), 'in the order asked')
  t.equal(origin.maxAtOnce(), 1, 'never two at once at the origin')
  t.equal(origin.open(), 1, 'one keep-alive connection to the origin, reused')
  t.equal(p.ev.events.length, n)
  c.s.destroy()
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
  t.match(closeLines(p), [{ 'tunnelguard.requests': n }])
})

t.test('an origin that never answers: one outbound connection; when the client goes, it goes too', async t => {
  const origin = await silentOrigin(t)
  const p = await testProxy(t, { config: { proxy: { ...LOOPBACK, maxConnections: 5 } } })
  const c = await client(t, p.port)
  c.s.write(Array.from({ length: MAX_WAITING - 1 }, (_, i) => GET(origin.port, `/${i}`)).join(''))
  t.ok(await waitFor(() => origin.accepted() === 1))
  await new Promise(r => setTimeout(r, 300))
  t.equal(origin.accepted(), 1, 'the next request waits for the first one\'s response')
  t.equal(p.ev.events.length, 1, 'and is not even decided yet')
  t.equal(p.proxy.openConnections, 2, 'the client and one outbound connection')
  const other = await client(t, p.port)
  other.s.write('GET http://x.ngrok-free.app/ HTTP/1.1\r\nHost: x.ngrok-free.app\r\n\r\n')
  t.ok(await waitFor(() => /^HTTP\/1\.1 403 /.test(other.data())), 'another client is served meanwhile')
  other.s.destroy()
  const t0 = Date.now()
  c.s.destroy()
  t.ok(await waitFor(() => origin.open() === 0 && p.proxy.openConnections === 0), 'the outbound connection is closed with the client')
  t.ok(Date.now() - t0 < 1000, 'at once, not at proxy.idleTimeout')
  await new Promise(r => setTimeout(r, 200))
  t.equal(origin.accepted(), 1, 'and no waiting request is forwarded after the client left')
})

t.test('thousands pipelined: reading stops while too many wait; a client gone meanwhile is noticed at idleTimeout', async t => {
  const origin = await silentOrigin(t)
  const p = await testProxy(t, { config: { proxy: { ...LOOPBACK, maxConnections: 5, idleTimeout: '1s' } } })
  const n = 3000
  const burst = Array.from({ length: n }, (_, i) => GET(origin.port, `/${i}`)).join('')
  const c = await client(t, p.port)
  c.s.write(burst)
  t.ok(await waitFor(() => origin.accepted() === 1))
  await new Promise(r => setTimeout(r, 300))
  t.equal(origin.accepted(), 1)
  c.s.destroy()                                      // unread bytes before its FIN: the proxy cannot see it leave yet
  t.ok(await waitFor(() => p.proxy.openConnections === 0 && origin.open() === 0, 4000), 'closed after the origin\'s timeout (504 to a closed client)')
  t.ok(origin.accepted() <= 2, `at most one more request started meanwhile (${origin.accepted()})`)
  const line = closeLines(p).at(-1)!
  t.ok((line['source.bytes'] as number) < burst.length / 2, `reading stopped: ${line['source.bytes']} of ${burst.length} bytes read`)
})

t.test('the client leaves while the name is resolved: nothing is dialled', async t => {
  const origin = await silentOrigin(t)
  let resolved = 0
  const p = await testProxy(t, {
    config: { proxy: LOOPBACK },
    resolve: async () => {
      await new Promise(r => setTimeout(r, 300))
      resolved++
      return { addresses: ['127.0.0.1'], cnames: [] }
    },
  })
  const c = await client(t, p.port)
  c.s.write(`GET http://slow.example:${origin.port}/ HTTP/1.1\r\nHost: slow.example:${origin.port}\r\n\r\n`)
  await new Promise(r => setTimeout(r, 100))
  c.s.destroy()
  t.ok(await waitFor(() => resolved === 1))
  await new Promise(r => setTimeout(r, 200))
  t.equal(origin.accepted(), 0)
  t.equal(p.proxy.openConnections, 0)
})

t.test('a request whose body fails its framing while its name resolves: its 400 stands, nothing dialled, a line only for a listed name or a forbidden destination', async t => {
  const origin = await silentOrigin(t)
  let resolved = 0
  const answers: Record<string, { addresses: string[]; cnames: string[] }> = {
    'slow.example': { addresses: ['127.0.0.1'], cnames: [] },
    'alias.example': { addresses: ['127.0.0.1'], cnames: ['edge.ngrok-free.app'] },   // a CNAME to a sinkholed name
    'x.trycloudflare.com': { addresses: ['127.0.0.1'], cnames: [] },                   // the shipped tunnels list: alert
    'inside.example': { addresses: ['10.0.0.1'], cnames: [] },                         // a forbidden destination
  }
  const p = await testProxy(t, {
    config: { proxy: LOOPBACK },
    resolve: async name => {
      await new Promise(r => setTimeout(r, 200))
      resolved++
      if (answers[name] === undefined) throw new Error('NXDOMAIN')
      return answers[name]
    },
  })
  const names = [...Object.keys(answers), 'gone.example']
  for (const [i, name] of names.entries()) {
    const c = await client(t, p.port)
    c.s.write(`POST http://${name}:${origin.port}/ HTTP/1.1\r\nHost: ${name}:${origin.port}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`)
    t.ok(await waitFor(() => c.closed()), `${name}: closed`)
    t.match(c.data(), /^HTTP\/1\.1 400 /, `${name}: the framing error answered`)
    t.notMatch(c.data(), /HTTP\/1\.1 (403|502)/, `${name}: nothing else`)
    t.ok(await waitFor(() => resolved === i + 1))
    t.ok(await waitFor(() => closeLines(p).length === i + 1))
    await new Promise(r => setTimeout(r, 50))
    t.equal(closeLines(p)[i]!['http.response.status_code'], 400, `${name}: the close line has the 400 the client got`)
  }
  t.equal(origin.accepted(), 0, 'nothing dialled')
  t.same(p.ev.events.map(e => [e.decision.name, e.decision.action]),
    [['edge.ngrok-free.app', 'sinkhole'], ['x.trycloudflare.com', 'alert'], ['inside.example', 'block']],
    'no pass line, none for a name that does not resolve; the listed names (an alert too) and the forbidden destination keep theirs')
  t.equal(p.proxy.openConnections, 0)
})

t.test('a request started behind a response that closes the connection is not left open', async t => {
  const answering = await countingOrigin(t, 100)
  const origin = await silentOrigin(t)
  const p = await testProxy(t, { config: { proxy: LOOPBACK } })
  const c = await client(t, p.port)
  // the second head has no Host: node answers it 400 itself and closes after it, the third was already started
  c.s.write(GET(answering.port, '/first') + 'GET http://127.0.0.1/ HTTP/1.1\r\n\r\n' + GET(origin.port, '/third'))
  t.ok(await waitFor(() => c.closed()), 'the connection ends after the 400')
  t.match(c.data(), /^HTTP\/1\.1 200 [\s\S]*path=\/first[\s\S]*HTTP\/1\.1 400 /)
  t.ok(await waitFor(() => origin.open() === 0 && p.proxy.openConnections === 0), 'and the third request\'s outbound connection with it')
  t.equal(origin.accepted(), 1, 'the third request had been forwarded')
})

t.test('a CONNECT after pipelined requests held for reading still tunnels once they are answered', async t => {
  const origin = await countingOrigin(t, 1)
  const sink = createServer(s => { s.on('error', () => {}); s.on('data', () => s.end('tunnelled')) })
  await new Promise<void>(r => sink.listen(0, '127.0.0.1', r))
  t.teardown(() => sink.close())
  const sinkPort = (sink.address() as { port: number }).port
  const p = await testProxy(t, { config: { proxy: { ...LOOPBACK, connectPorts: [sinkPort] } } })
  const c = await client(t, p.port)
  const n = MAX_WAITING + 8
  c.s.write(Array.from({ length: n }, (_, i) => GET(origin.port, `/${i}`)).join('') + `CONNECT 127.0.0.1:${sinkPort} HTTP/1.1\r\nHost: x\r\n\r\n`)
  t.ok(await waitFor(() => /HTTP\/1\.1 200 Connection established/.test(c.data())), 'the CONNECT is answered after the requests')
  c.s.write('not tls\r\n')
  t.ok(await waitFor(() => c.data().endsWith('tunnelled')))
  t.equal((c.data().match(/^HTTP\/1\.1 200 OK/gm) ?? []).length, n)
})

t.test(`idle connections to origins: at most ${MAX_IDLE_UPSTREAMS} in all, the least recently used closed first`, async t => {
  const origins = await Promise.all(Array.from({ length: MAX_IDLE_UPSTREAMS + 4 }, () => countingOrigin(t, 0)))
  const once = await countingOrigin(t, 0, { 'keep-alive': 'timeout=1' })   // too short to keep: closed after its response
  const p = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({}) })
  const c = await client(t, p.port)
  c.s.write([...origins, once].map((o, i) => GET(o.port, `/${i}`)).join(''))
  t.ok(await waitFor(() => (c.data().match(/^HTTP\/1\.1 200 /gm) ?? []).length === origins.length + 1, 20_000), 'all answered')
  const open = () => origins.reduce((n, o) => n + o.open(), 0)
  t.ok(await waitFor(() => open() === MAX_IDLE_UPSTREAMS && once.open() === 0), `${MAX_IDLE_UPSTREAMS} kept (had ${open()})`)
  t.same(origins.slice(0, 5).map(o => o.open()), [0, 0, 0, 0, 1], 'the first four closed, the fifth kept')
  c.s.write(GET(origins.at(-1)!.port, '/again'))
  t.ok(await waitFor(() => /path=\/again/.test(c.data())))
  t.equal(origins.at(-1)!.open(), 1, 'a kept one is reused')
  c.s.destroy()
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})
