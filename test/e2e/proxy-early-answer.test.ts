// A final answer that goes out before the client's request body is all read: an origin's 413, 403
// or 401 sent at once (it reads no more), an origin that answers and closes, one that resets
// mid-upload, this proxy's own refusal. The answer reaches the client at once, the connection is
// closed after it (what is left of the body makes it unusable), the origin's connection is
// dropped, not pooled, and nothing is left open; each connection still has one decision line and
// one close line with the status sent and the bytes that went.
import { createServer } from 'node:http'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { LINGER_IDLE_MS, LINGER_MS } from '../../src/proxy/linger.js'
import { exchange, fakeResolve, rawHttpOrigin, run, testProxy, waitFor, type TestProxy } from '../fixtures/origin.js'

const LOOPBACK = { allowDestinations: ['127.0.0.0/8'] }
/** Bytes in the uploads: more than the loopback socket buffers on the way hold, so that an origin that reads nothing stalls them. */
const UPLOAD = 20_000_000
/** "Promptly": node's server would keep the connection 6 s (keepAliveTimeout + 1 s) before resetting it. */
const PROMPT_MS = 2000

/**
 * An origin that answers each request as soon as its head is in, reads nothing of the body (its
 * socket is paused, as a server that refuses an upload stops reading), and then, by path: keeps the
 * connection (`/keep`), closes it (`/bye`), or resets it before answering (`/reset`). `conns`: the
 * connection each head came on (1, 2, …). A paused socket does not see the proxy close it; that a
 * connection was closed, not pooled, shows as the next request coming on a new one (a pooled one
 * would be reused, and never answered).
 */
async function refusingOrigin(t: Test) {
  const heads: string[] = []
  const conns: number[] = []
  const origin = await rawHttpOrigin(t, (head, s, conn) => {
    heads.push(head)
    conns.push(conn)
    s.pause()
    const [, path] = head.split(' ')
    const status = Number(/\/(\d{3})/.exec(path!)?.[1] ?? 413)
    if (path!.includes('/reset')) return void s.resetAndDestroy()
    const body = 'answer\n'
    s.write(`HTTP/1.1 ${status} Refused\r\nContent-Length: ${body.length}\r\n${path!.includes('/bye') ? 'Connection: close\r\n' : ''}\r\n${body}`)
    if (path!.includes('/bye')) setTimeout(() => s.destroy(), 20)    // unread bytes: the close is a reset
    return false
  }, false)
  return { ...origin, heads, conns }
}

const closeLines = (p: TestProxy) => p.ev.messages.filter(m => m.msg === 'proxy.close').map(m => m.fields!)

/** Wait for close line number `n`, and say how long after `since` (ms) it was there (Infinity: not within 8 s). */
async function closedAfter(p: TestProxy, n: number, since: number): Promise<number> {
  return (await waitFor(() => closeLines(p).length >= n, 8000)) ? Date.now() - since : Infinity
}

/**
 * Nothing is left: no client or origin connection open in the proxy, and none pooled: the next
 * request to the origin comes on a new connection, and is answered.
 */
async function nothingLeft(t: Test, p: TestProxy, origin: Awaited<ReturnType<typeof refusingOrigin>>) {
  t.ok(await waitFor(() => p.proxy.openConnections === 0, 1000), 'no connection left open in the proxy')
  const before = origin.conns.at(-1)!
  const next = await exchange(p.port, [`GET http://up.test:${origin.port}/bye/200 HTTP/1.1\r\nHost: up.test\r\nConnection: close\r\n\r\n`])
  t.match(next.data, /^HTTP\/1\.1 200 /, 'the next request is answered')
  t.equal(origin.conns.at(-1), before + 1, 'on a new origin connection: the one before was closed, not pooled')
}

t.test('curl -T: an origin\'s 413, 403, 401 sent at once reach curl, and the connection closes at once', async t => {
  const origin = await refusingOrigin(t)
  const p = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'up.test': ['127.0.0.1'] }) })
  const file = join(t.testdir({ 'body.bin': 'x'.repeat(UPLOAD) }), 'body.bin')
  for (const status of [413, 403, 401]) {
    const n = closeLines(p).length
    const start = Date.now()
    const r = await run('curl', ['-sS', '-i', '-x', `http://127.0.0.1:${p.port}`, '-H', 'Expect:', '-T', file,
      '-w', '\n%{size_header} %{size_download}', `http://up.test:${origin.port}/keep/${status}`], undefined, 20_000)
    t.equal(r.code, 0, r.stderr)
    t.match(r.stdout, new RegExp(`^HTTP/1\\.1 ${status} `), `${status}: the origin's answer`)
    t.match(r.stdout, /\r\nConnection: close\r\n/i, `${status}: the client is told the connection closes`)
    t.match(r.stdout, /\r\n\r\nanswer\n\n/, `${status}: its body whole`)
    const ms = await closedAfter(p, n + 1, start)
    t.ok(ms < PROMPT_MS, `${status}: the client connection closed ${ms} ms after curl began (node's server held it 6 s)`)
    const [header, body] = r.stdout.split('\n').at(-1)!.split(' ').map(Number)
    t.match(closeLines(p).at(-1), { 'http.response.status_code': status, 'destination.bytes': header! + body! }, `${status}: the close line`)
    t.notOk(closeLines(p).at(-1)!['error.message'], `${status}: no error on it`)
    await nothingLeft(t, p, origin)
  }
  t.equal(p.ev.events.filter(e => e.message === 'proxy.http').length, 6, 'one decision line per request (three uploads, three checks)')
  t.equal(closeLines(p).length, 6, 'one close line per connection')
})

/**
 * A client that writes its whole body before it reads (Python's http.client does): connected
 * paused, the body written as fast as the socket takes it, then read. What it got, and how it ended.
 */
function writeAllThenRead(port: number, head: string, size: number, after = ''): Promise<{ data: string; error?: string; ms: number }> {
  return new Promise(resolve => {
    const start = Date.now()
    const s: Socket = connect(port, '127.0.0.1')
    let data = ''
    let error: string | undefined
    s.pause()
    s.on('data', b => { data += b.toString('latin1') })
    s.on('error', e => { error = (e as NodeJS.ErrnoException).code })
    s.on('close', () => { clearTimeout(timer); resolve({ data, error, ms: Date.now() - start }) })
    const timer = setTimeout(() => s.destroy(), 10_000)
    s.write(head)
    const chunk = Buffer.alloc(65_536, 'x')
    let left = size
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length)
        left -= n
        if (!s.write(chunk.subarray(0, n))) return void s.once('drain', pump)
      }
      s.write(after)
      s.resume()                                   // all written: now the answer is read
    }
    pump()
  })
}

t.test('a client that writes its whole body before it reads gets the origin\'s 413, not a reset', async t => {
  const origin = await refusingOrigin(t)
  const p = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'up.test': ['127.0.0.1'] }) })
  for (const path of ['/keep/413', '/bye/413']) {
    const n = closeLines(p).length
    const heads = origin.heads.length
    // a request sent after the body, on a connection the answer said was closing: not served
    const r = await writeAllThenRead(p.port, `PUT http://up.test:${origin.port}${path} HTTP/1.1\r\nHost: up.test\r\nContent-Length: ${UPLOAD}\r\n\r\n`, UPLOAD,
      `GET http://up.test:${origin.port}/keep/200 HTTP/1.1\r\nHost: up.test\r\n\r\n`)
    t.match(r.data, /^HTTP\/1\.1 413 [\s\S]*\r\nConnection: close\r\n[\s\S]*\r\nanswer\n$/i, `${path}: the answer, read after the body was written`)
    t.notOk(r.error, `${path}: no reset (${r.error})`)
    t.ok(r.ms < 3 * PROMPT_MS, `${path}: over in ${r.ms} ms`)
    t.ok(await waitFor(() => closeLines(p).length === n + 1), 'its close line')
    t.match(closeLines(p).at(-1), { 'http.response.status_code': 413, 'destination.bytes': r.data.length })
    t.ok((closeLines(p).at(-1)!['source.bytes'] as number) > UPLOAD, `${path}: the body was read (and dropped) to close cleanly`)
    t.equal(closeLines(p).at(-1)!['tunnelguard.requests'], 1, `${path}: the request after it was not taken`)
    t.equal(origin.heads.length, heads + 1, `${path}: nor sent on`)
    await nothingLeft(t, p, origin)
  }
})

t.test('an origin that answers and closes, or resets mid-upload: the answer (or a 502) and the close, at once', async t => {
  const origin = await refusingOrigin(t)
  const p = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'up.test': ['127.0.0.1'] }) })
  for (const [path, status] of [['/bye/413', 413], ['/reset', 502]] as const) {
    const n = closeLines(p).length
    const start = Date.now()
    const r = await exchange(p.port, [`PUT http://up.test:${origin.port}${path} HTTP/1.1\r\nHost: up.test\r\nContent-Length: ${UPLOAD}\r\n\r\n`,
      Buffer.alloc(4_000_000, 'x')], { waitMs: 8000 })
    t.match(r.data, new RegExp(`^HTTP/1\\.1 ${status} [\\s\\S]*\\r\\nConnection: close\\r\\n`, 'i'), `${path}: ${status}, and the connection closes`)
    t.ok(r.closed)
    const ms = await closedAfter(p, n + 1, start)
    t.ok(ms < PROMPT_MS, `${path}: closed after ${ms} ms`)
    t.match(closeLines(p).at(-1), { 'http.response.status_code': status, 'destination.bytes': r.data.length })
    await nothingLeft(t, p, origin)
  }
})

t.test('Expect: 100-continue and a final answer with no 100: the body is never sent, and the connection closes at once', async t => {
  const origin = await refusingOrigin(t)
  const p = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'up.test': ['127.0.0.1'] }) })
  const file = join(t.testdir({ 'body.bin': 'x'.repeat(UPLOAD) }), 'body.bin')
  const start = Date.now()
  const r = await run('curl', ['-sS', '-i', '-x', `http://127.0.0.1:${p.port}`, '-H', 'Expect: 100-continue', '--expect100-timeout', '5',
    '-T', file, `http://up.test:${origin.port}/keep/413`], undefined, 20_000)
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^HTTP\/1\.1 413 /)
  const ms = await closedAfter(p, 1, start)
  t.ok(ms < PROMPT_MS, `closed ${ms} ms after curl began`)
  t.ok((closeLines(p)[0]!['source.bytes'] as number) < 2000, 'no body byte was sent')
  await nothingLeft(t, p, origin)
})

t.test('the proxy\'s own refusal of a large upload: one answer, the close line keeps its status', async t => {
  const origin = await refusingOrigin(t)
  const p = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'up.test': ['127.0.0.1'] }) })
  const file = join(t.testdir({ 'body.bin': 'x'.repeat(UPLOAD) }), 'body.bin')
  // curl stops sending at the 403 and closes, mid-body: that is the client leaving, no framing error to answer
  const start = Date.now()
  const r = await run('curl', ['-sS', '-i', '-x', `http://127.0.0.1:${p.port}`, '-H', 'Expect:', '-T', file, 'http://edge.ngrok-free.app/upload'], undefined, 20_000)
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^HTTP\/1\.1 403 [\s\S]*x-tunnelguard-reason: sinkhole: edge\.ngrok-free\.app/i)
  t.ok(await closedAfter(p, 1, start) < PROMPT_MS, 'closed at once')
  t.match(closeLines(p)[0], { 'http.response.status_code': 403 })
  t.notOk(closeLines(p)[0]!['error.message'], 'no parse error put on the refusal\'s close line')

  // the same as a raw client: one answer to one request, nothing after it
  const head = 'PUT http://edge.ngrok-free.app/upload HTTP/1.1\r\nHost: edge.ngrok-free.app\r\nContent-Length: 50000000\r\n\r\n'
  const raw = await new Promise<string>(resolve => {
    const s = connect(p.port, '127.0.0.1')
    let data = ''
    s.on('data', b => {
      data += b.toString('latin1')
      if (data.includes('\r\n\r\n')) s.end()       // the answer's head is in: stop sending, as curl does
    })
    s.on('error', () => {})
    s.on('close', () => resolve(data))
    s.write(head + 'x'.repeat(100_000))
  })
  t.equal(raw.match(/HTTP\/1\.1 \d{3}/g)?.join(), 'HTTP/1.1 403', 'one answer: no 400 written after the 403')
  t.ok(await waitFor(() => closeLines(p).length === 2))
  t.match(closeLines(p)[1], { 'http.response.status_code': 403, 'destination.bytes': raw.length })
  t.notOk(closeLines(p)[1]!['error.message'])

  // a client that sends its whole body: the proxy reads and drops it, and the connection serves the next request
  const both = await exchange(p.port, [head.replace('50000000', '1000000'), Buffer.alloc(1_000_000, 'x'),
    `GET http://up.test:${origin.port}/keep/200 HTTP/1.1\r\nHost: up.test\r\nConnection: close\r\n\r\n`], { waitMs: 5000 })
  t.match(both.data, /^HTTP\/1\.1 403 [\s\S]*HTTP\/1\.1 200 /, 'the refusal, then the next request\'s answer on the same connection')
  t.ok(both.closed)
  t.ok(await waitFor(() => p.proxy.openConnections === 0, 1000), 'nothing left open (the good request\'s origin connection is pooled)')
  t.equal(origin.heads.length, 1, 'only the good request reached the origin')
})

t.test('a client that neither stops sending nor closes is closed anyway: after 1 s of silence, or 5 s in all', async t => {
  const origin = await refusingOrigin(t)
  const p = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'up.test': ['127.0.0.1'] }) })
  const head = `PUT http://up.test:${origin.port}/keep/413 HTTP/1.1\r\nHost: up.test\r\nContent-Length: ${UPLOAD}\r\n\r\n`
  for (const [what, dripMs, atLeast, atMost] of [['silent', 0, LINGER_IDLE_MS, LINGER_IDLE_MS + 1500], ['dripping', 200, LINGER_MS, LINGER_MS + 1500]] as const) {
    const n = closeLines(p).length
    const start = Date.now()
    const s = connect({ port: p.port, host: '127.0.0.1', allowHalfOpen: true })      // the proxy's FIN does not end it
    t.teardown(() => s.destroy())
    let data = ''
    s.on('data', b => { data += b.toString('latin1') })
    s.on('error', () => {})
    const drip = setInterval(() => { if (dripMs > 0) s.write('x') }, dripMs || 1000)
    s.write(head + 'x'.repeat(1000))
    const ms = await closedAfter(p, n + 1, start)
    clearInterval(drip)
    t.match(data, /^HTTP\/1\.1 413 [\s\S]*\r\nConnection: close\r\n/, `${what}: the answer came`)
    t.ok(ms >= atLeast && ms < atMost, `${what}: closed by the proxy after ${ms} ms`)
    t.ok(s.readableEnded, `${what}: the client saw the proxy's FIN`)
    s.destroy()
    await nothingLeft(t, p, origin)
  }
})

t.test('an origin that answers as the body comes and reads it all (an echo): the body goes on whole, then the connection closes', async t => {
  let received = 0
  const echo = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    req.on('data', (b: Buffer) => { received += b.length })
    req.pipe(res)                                  // the answer's head goes with the first bytes of the body
  })
  await new Promise<void>(r => echo.listen(0, '127.0.0.1', r))
  t.teardown(() => { echo.closeAllConnections(); echo.close() })
  const port = (echo.address() as { port: number }).port
  const p = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'echo.test': ['127.0.0.1'] }) })
  const file = join(t.testdir({ 'body.bin': 'y'.repeat(UPLOAD) }), 'body.bin')
  const r = await run('curl', ['-sS', '-D', '-', '-o', '/dev/null', '-w', '%{size_download}', '-x', `http://127.0.0.1:${p.port}`, '-H', 'Expect:', '-T', file,
    `http://echo.test:${port}/`], undefined, 20_000)
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^HTTP\/1\.1 200 [\s\S]*\r\nConnection: close\r\n/i, 'answered while the body came: the connection closes after')
  t.match(r.stdout, new RegExp(`\\r\\n\\r\\n${UPLOAD}$`), 'the whole body came back')
  t.equal(received, UPLOAD, 'and reached the origin whole')
  t.ok(await waitFor(() => closeLines(p).length === 1))
  t.match(closeLines(p)[0], { 'http.response.status_code': 200 })
  t.ok((closeLines(p)[0]!['source.bytes'] as number) > UPLOAD)
  t.ok(await waitFor(() => p.proxy.openConnections === 0), 'nothing left open')
})
