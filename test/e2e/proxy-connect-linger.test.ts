// A CONNECT refused before its tunnel is up (a blocked host, a port outside connectPorts, a
// forbidden destination, a bad target, a client not allowed, a name that does not resolve), and a
// 503 at the accept (proxy.maxConnections, maxConnectionsPerAddress), to a client that sends its
// CONNECT head and what it would tunnel (a pipelined ClientHello, here a blob of 4 MiB) in one
// write, then reads: the answer reaches it, with no reset, because the connection is closed in
// stages (lingerClose: FIN after the answer, the client's bytes read and dropped until its FIN).
// Closed at once with those bytes unread, the kernel resets the connection and the answer is
// lost. The target is never contacted; the proxy serves on, and nothing is left open.
import { connect } from 'node:net'
import t, { type Test } from 'tap'
import { fileURLToPath } from 'node:url'
import { LINGER_IDLE_MS, LINGER_MS } from '../../src/proxy/linger.js'
import { fakeResolve, run, startOrigin, startTcpSink, testProxy, waitFor, type Origin, type TestProxy } from '../fixtures/origin.js'
import { rawClient } from '../fixtures/raw-client.js'

const CLIENT = fileURLToPath(new URL('../fixtures/upload-client.py', import.meta.url))
/** What the client writes after its CONNECT head, before it reads: more than the loopback socket buffers hold. */
const SIZE = 4 * 1024 * 1024

interface Answer { data?: string; error?: string }

/** `head` and SIZE bytes in one sendall, then every byte read until the proxy's FIN (python3: a reset shows as an error). */
async function send(port: number, head: string): Promise<Answer> {
  const r = await run('python3', [CLIENT, JSON.stringify({ mode: 'raw', port, size: SIZE, head })], undefined, 20_000)
  return JSON.parse(r.stdout || `{"error": ${JSON.stringify(`python3 exited ${r.code}: ${r.stderr}`)}}`) as Answer
}

const closeLines = (p: TestProxy) => p.ev.messages.filter(m => m.msg === 'proxy.close').map(m => m.fields!)
const decisions = (p: TestProxy) => p.ev.events.filter(e => e.message === 'proxy.connect')

/** A good request through the proxy still served, and then nothing left open. */
async function servesOn(t: Test, p: TestProxy, origin: Origin, what: string) {
  const before = origin.requests.length
  const r = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', `http://127.0.0.1:${p.port}`, `http://site.example:${origin.port}/ok`])
  t.equal(r.stdout, '200', `${what}: a good request is still served (${r.stderr.trim()})`)
  t.equal(origin.requests.length, before + 1, `${what}: it reached the origin`)
  t.ok(await waitFor(() => p.proxy.openConnections === 0, 3000), `${what}: no connection left open`)
}

t.test('a CONNECT refused before its tunnel, its ClientHello pipelined: the whole answer, no reset', async t => {
  const origin = await startOrigin(t)
  const target = await startTcpSink(t)                   // what a refused CONNECT would reach: never
  const p = await testProxy(t, {
    config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [target.port], allowClients: ['127.0.0.1/32'], trustForwardedFrom: ['127.0.0.1/32'] } },
    resolve: fakeResolve({ 'site.example': ['127.0.0.1'], 'inside.example': ['10.1.2.3'] }),
  })
  const head = (authority: string, more = '', version = '1.1') => `CONNECT ${authority} HTTP/${version}\r\nHost: ${authority}\r\n${more}\r\n`
  const cases: [string, string, number, RegExp, boolean][] = [
    // [what, head, status, reason, decision line]
    ['a blocked host', head('x.ngrok-free.app:443'), 403, /ngrok-free\.app/, true],
    ['a blocked host, head parsed by node (HTTP/1.0)', head('y.ngrok-free.app:443', '', '1.0'), 403, /ngrok-free\.app/, true],
    ['a port outside connectPorts', head('site.example:8443'), 403, /CONNECT to port 8443 is not allowed \(proxy\.connectPorts/, true],
    ['a forbidden destination', head(`inside.example:${target.port}`), 403, /inside\.example resolves to 10\.1\.2\.3, which is private/, true],
    ['a name that does not resolve', head(`nowhere.example:${target.port}`), 502, /cannot resolve nowhere\.example/, true],
    ['a bad target', head('site.example'), 400, /bad CONNECT target "site\.example": no port: write host:port/, false],
    ['a client not allowed (named by a trusted peer)', head(`site.example:${target.port}`, 'X-Forwarded-For: 127.0.0.9\r\n'), 403,
      /client 127\.0\.0\.9 is not in proxy\.allowClients/, false],
  ]
  for (const [what, h, status, reason, decided] of cases) {
    const lines = closeLines(p).length
    const decided0 = decisions(p).length
    const r = await send(p.port, h)
    t.notOk(r.error, `${what}: no reset (${r.error})`)
    t.match(r.data, new RegExp(`^HTTP/1\\.1 ${status} [^\\r]+\\r\\n[\\s\\S]*\\r\\nConnection: close\\r\\n\\r\\n`), `${what}: the whole ${status} head`)
    t.match(r.data, reason, `${what}: the reason`)
    const length = Number(/\r\nContent-Length: (\d+)\r\n/.exec(r.data ?? '')?.[1])
    t.equal(Buffer.byteLength(r.data!.slice(r.data!.indexOf('\r\n\r\n') + 4), 'latin1'), length, `${what}: the whole body, then the FIN`)
    t.equal(r.data!.match(/HTTP\/1\.\d \d{3}/g)?.length, 1, `${what}: one answer`)
    t.ok(await waitFor(() => closeLines(p).length === lines + 1, 8000), `${what}: the connection closed`)
    const close = closeLines(p).at(-1)!
    t.match(close, { 'http.response.status_code': status, 'error.message': reason }, `${what}: its close line keeps the status and the reason`)
    t.ok((close['source.bytes'] as number) > SIZE, `${what}: what the client sent was read (and dropped) before the close (${close['source.bytes']})`)
    t.equal(decisions(p).length - decided0, decided ? 1 : 0, `${what}: ${decided ? 'one decision line' : 'no decision line (refused before a target was decided)'}`)
    await servesOn(t, p, origin, what)
  }
  t.equal(target.accepted(), 0, 'no refused CONNECT reached its target')
  t.equal(closeLines(p).length, cases.length + cases.length, 'one close line per connection (each case, each curl)')
})

t.test('a 503 at the accept, the CONNECT head and a ClientHello already on the way: the whole answer, no reset', async t => {
  const origin = await startOrigin(t)
  const target = await startTcpSink(t)
  const cases: [string, Record<string, number>, string, RegExp][] = [
    ['past proxy.maxConnectionsPerAddress', { maxConnectionsPerAddress: 1 }, '127.0.0.1', /too many connections from 127\.0\.0\.1 \(proxy\.maxConnectionsPerAddress 1\)/],
    ['past proxy.maxConnections', { maxConnections: 1 }, '127.0.0.2', /too many connections \(proxy\.maxConnections 1\)/],
  ]
  for (const [what, limits, from, reason] of cases) {
    const p = await testProxy(t, {
      config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [target.port], ...limits } },
      resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }),
    })
    const held = await rawClient(t, p.port, from)
    t.ok(await waitFor(() => p.proxy.openConnections === 1), `${what}: one connection held`)
    const r = await send(p.port, `CONNECT site.example:${target.port} HTTP/1.1\r\nHost: site.example:${target.port}\r\n\r\n`)
    t.notOk(r.error, `${what}: no reset (${r.error})`)
    t.match(r.data, /^HTTP\/1\.1 503 Service Unavailable\r\n[\s\S]*\r\nRetry-After: 1\r\nConnection: close\r\n\r\n/, `${what}: the whole 503 head`)
    t.match(r.data, reason, `${what}: the reason`)
    const length = Number(/\r\nContent-Length: (\d+)\r\n/.exec(r.data ?? '')?.[1])
    t.equal(r.data!.length - r.data!.indexOf('\r\n\r\n') - 4, length, `${what}: the whole body, then the FIN`)
    t.equal(p.ev.counts['dropped.overload'], 1, `${what}: counted`)
    t.equal(closeLines(p).length, 0, `${what}: no close line for a connection never admitted, as before`)
    t.equal(decisions(p).length, 0, `${what}: nothing decided`)
    held.s.destroy()
    t.ok(await waitFor(() => closeLines(p).length === 1), `${what}: the held connection closed`)
    await servesOn(t, p, origin, what)
  }
  t.equal(target.accepted(), 0, 'no refused CONNECT reached its target')
})

t.test('a refused client that neither stops sending nor closes is closed anyway: after 1 s of silence, or 5 s in all', async t => {
  const target = await startTcpSink(t)
  const p = await testProxy(t, {
    // the held connection sends nothing: its header time is longer than this test
    config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [target.port], maxConnectionsPerAddress: 1, headerTimeout: '60s' } },
    resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }),
  })
  const held = await rawClient(t, p.port, '127.0.0.1')
  t.ok(await waitFor(() => p.proxy.openConnections === 1))
  const cases = [
    // [what, from, first bytes, the answer, ms between the client's bytes (0: none after the first), closed after at least, at most]
    ['503 at the accept, silent', '127.0.0.1', '', 503, 0, LINGER_IDLE_MS, LINGER_IDLE_MS + 1500],
    ['503 at the accept, dripping', '127.0.0.1', '', 503, 200, LINGER_MS, LINGER_MS + 1500],
    ['403 for a blocked host, silent', '127.0.0.3', 'CONNECT x.ngrok-free.app:443 HTTP/1.1\r\n\r\n', 403, 0, LINGER_IDLE_MS, LINGER_IDLE_MS + 1500],
    ['403 for a blocked host, dripping', '127.0.0.3', 'CONNECT x.ngrok-free.app:443 HTTP/1.1\r\n\r\n', 403, 200, LINGER_MS, LINGER_MS + 1500],
  ] as const
  for (const [what, from, first, status, dripMs, atLeast, atMost] of cases) {
    const start = Date.now()
    const s = connect({ port: p.port, host: '127.0.0.1', localAddress: from, allowHalfOpen: true })   // the proxy's FIN does not end it
    t.teardown(() => s.destroy())
    let data = ''
    s.on('data', b => { data += b.toString('latin1') })
    s.on('error', () => {})
    s.write(first + 'x'.repeat(1000))
    const drip = setInterval(() => { if (dripMs > 0 && !s.destroyed) s.write('x') }, dripMs || 1000)
    t.ok(await waitFor(() => p.proxy.openConnections === 2, 1000), `${what}: open while it lingers`)
    t.ok(await waitFor(() => p.proxy.openConnections === 1, atMost + 1000), `${what}: closed by the proxy`)
    const ms = Date.now() - start
    clearInterval(drip)
    t.match(data, new RegExp(`^HTTP/1\\.1 ${status} [^\\r]+\\r\\n[\\s\\S]*\\r\\n\\r\\n[^\\r]+\\n$`), `${what}: the whole answer came`)
    t.ok(ms >= atLeast && ms < atMost, `${what}: closed after ${ms} ms`)
    t.ok(s.readableEnded, `${what}: the client saw the proxy's FIN`)
    s.destroy()
  }
  held.s.destroy()
  t.ok(await waitFor(() => p.proxy.openConnections === 0), 'nothing left open')
  t.equal(target.accepted(), 0)
})

t.test('refusals at the accept close in stages while fewer than proxy.maxConnections do; past that, at once', async t => {
  const p = await testProxy(t, { config: { proxy: { maxConnections: 1, headerTimeout: '60s' } } })
  const held = await rawClient(t, p.port, '127.0.0.2')
  t.ok(await waitFor(() => p.proxy.openConnections === 1))
  const refused = async () => {
    const s = connect({ port: p.port, host: '127.0.0.1', allowHalfOpen: true })
    t.teardown(() => s.destroy())
    let data = ''
    let error = ''
    s.on('data', b => { data += b.toString('latin1') })
    s.on('error', e => { error = (e as NodeJS.ErrnoException).code ?? e.message })
    await new Promise(r => s.once('end', r))            // the 503, then the proxy's FIN
    return { s, data: () => data, error: () => error }
  }
  const lingering = await refused()
  t.match(lingering.data(), /^HTTP\/1\.1 503 /)
  t.equal(p.proxy.openConnections, 2, 'the first refused closes in stages: still open, and counted')
  const atOnce = await refused()
  t.match(atOnce.data(), /^HTTP\/1\.1 503 /, 'the second is answered too')
  // what each sends now: read and dropped by the first; the second is closed, and resets it
  for (let i = 0; i < 20 && !atOnce.s.destroyed; i++) {
    lingering.s.write('x')
    atOnce.s.write('x')
    await new Promise(r => setTimeout(r, 20))
  }
  t.ok(atOnce.s.destroyed, `the second, closed at once: its bytes were answered with a reset (${atOnce.error()})`)
  t.notOk(lingering.s.destroyed, 'the first still reads them')
  t.equal(p.proxy.openConnections, 2)
  t.equal(p.ev.counts['dropped.overload'], 2)
  // the proxy closing: a refused connection still closing in stages is closed with the rest
  await p.proxy.close()
  t.equal(p.proxy.openConnections, 0, 'nothing left open once close() returns')
  for (let i = 0; i < 20 && !lingering.s.destroyed; i++) {
    lingering.s.write('x')
    await new Promise(r => setTimeout(r, 20))
  }
  t.ok(lingering.s.destroyed, `the first was closed by the proxy's close (${lingering.error()})`)
  t.ok(held.closed())
})
