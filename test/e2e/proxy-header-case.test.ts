// Plain HTTP relays header names as they were sent, both ways (squid and tinyproxy do; node's
// req.headers would lower-case them), in their order, each field on a line of its own (two
// Set-Cookie, two Cache-Control, two Cookie stay two), with the same rewriting as ever: hop-by-hop
// fields and those Connection names dropped, Proxy-Authorization and a client's X-Forwarded-For
// not passed on, the proxy's X-Tunnelguard-* dropped both ways, Via appended, framing set by the
// proxy (in the place and case the message had it). A raw-socket origin records the exact bytes it
// receives; a raw-socket client records the exact bytes of the answer.
import { createServer, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { exchange, fakeResolve, testProxy, waitFor } from '../fixtures/origin.js'

const LOOPBACK = { allowDestinations: ['127.0.0.0/8'] }

/** The answer the origin sends, by path. */
const ANSWERS: Record<string, string> = {
  '/mixed': 'HTTP/1.1 200 OK\r\nX-lower-Case: a\r\nSET-COOKIE: a=1; Path=/\r\nCache-Control: no-cache\r\nSet-Cookie: b=2\r\ncache-control: no-store\r\n'
    + 'ETag: "v1"\r\nWWW-Authenticate: Basic realm="x"\r\nConnection: X-Hop\r\nX-Hop: 1\r\nx-tunnelguard-reason: forged\r\ncontent-LENGTH: 2\r\n'
    + 'X-After: z\r\n\r\nok',
  '/reason': 'HTTP/1.1 413 Too Big For Us\r\nContent-Length: 0\r\n\r\n',
  '/noreason': 'HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n',
  '/oddreason': 'HTTP/1.1 200 Caf\xe9 \x7f\r\nContent-Length: 0\r\n\r\n',
  '/chunked': 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nX-Trace: t\r\nvia: 1.0 upstream-cache\r\n\r\n2\r\nok\r\n0\r\n\r\n',
}

/**
 * An origin on a raw socket: every byte each connection sends is kept (`received`, one string per
 * connection), and each request (its head, and a Content-Length or chunked body) is answered from
 * ANSWERS by its path.
 */
async function recordingOrigin(t: Test) {
  const received: string[] = []
  const open = new Set<Socket>()
  const srv = createServer(s => {
    const i = received.push('') - 1
    let buf = ''
    open.add(s)
    s.on('close', () => open.delete(s))
    s.on('error', () => {})
    s.on('data', b => {
      received[i] += b.toString('latin1')
      buf += b.toString('latin1')
      for (let n = 0; n < 8; n++) {
        const end = buf.indexOf('\r\n\r\n')
        if (end < 0) return
        const head = buf.slice(0, end)
        const cl = /\r\ncontent-length: *(\d+)/i.exec(head)
        let size: number
        if (cl) size = Number(cl[1])
        else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
          const last = buf.indexOf('\r\n0\r\n\r\n', end)
          if (last < 0) return
          size = last + 7 - (end + 4)
        } else size = 0
        if (buf.length < end + 4 + size) return
        buf = buf.slice(end + 4 + size)
        const path = new URL(head.split(' ')[1]!, 'http://x').pathname
        s.write(ANSWERS[path] ?? ANSWERS['/mixed']!)
      }
    })
  })
  await new Promise<void>(r => srv.listen(0, '127.0.0.1', r))
  t.teardown(() => { for (const s of open) s.destroy(); srv.close() })
  return { port: (srv.address() as { port: number }).port, received }
}

/** The head of `bytes` (to the blank line), its Date field (which changes) written as `Date: *`. */
const headOf = (bytes: string) => bytes.slice(0, bytes.indexOf('\r\n\r\n') + 4).replace(/\r\nDate: [^\r]+/, '\r\nDate: *')

t.test('request fields reach the origin as the client sent them, rewritten as ever', async t => {
  const origin = await recordingOrigin(t)
  const p = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }) })
  const at = `site.example:${origin.port}`
  const r = await exchange(p.port, [`POST http://${at}/path?q=1 HTTP/1.1\r\nhost: ${at}\r\nUser-Agent: legacy/1.0\r\nX-Custom-Header: v\r\n`
    + 'x-lower: l\r\nCOOKIE: a=1\r\nAccept: */*\r\ncookie: b=2\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n'
    + 'Proxy-Authorization: Basic Zm9vOmJhcg==\r\nVia: 1.0 downstream\r\nX-Forwarded-For: 6.6.6.6\r\nX-TUNNELGUARD-Reason: forged\r\n'
    + 'TE: trailers\r\nkeep-alive: 5\r\ncontent-length: 5\r\nX-Last: 1\r\n\r\nhello'])
  t.match(r.data, /^HTTP\/1\.1 200 /)
  t.equal(origin.received[0], `POST /path?q=1 HTTP/1.1\r\nhost: ${at}\r\nUser-Agent: legacy/1.0\r\nX-Custom-Header: v\r\n`
    + 'x-lower: l\r\nCOOKIE: a=1\r\nAccept: */*\r\ncookie: b=2\r\nVia: 1.0 downstream, 1.1 tunnelguard\r\ncontent-length: 5\r\nX-Last: 1\r\n'
    + 'Connection: keep-alive\r\n\r\nhello', 'the exact bytes: names as sent, in order, two Cookie lines; hop-by-hop, credentials, XFF, control fields gone; Via appended')

  // no Host from an HTTP/1.0 client, a chunked body, and a POST with no body: framing as ever, in the usual case
  const more = await exchange(p.port, [`GET http://${at}/a HTTP/1.0\r\nAccept: x\r\n\r\n`])
  t.match(more.data, /^HTTP\/1\.1 200 /)
  t.ok(await waitFor(() => origin.received.join('').includes('GET /a ')))
  t.match(origin.received.join(''), `GET /a HTTP/1.1\r\nAccept: x\r\nVia: 1.0 tunnelguard\r\nHost: ${at}\r\nConnection: keep-alive\r\n\r\n`)
  await exchange(p.port, [`POST http://${at}/b HTTP/1.1\r\nHost: ${at}\r\nX-A: 1\r\ntransfer-encoding: chunked\r\nX-B: 2\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    `POST http://${at}/c HTTP/1.1\r\nHost: ${at}\r\nX-C: 3\r\nConnection: close\r\n\r\n`])
  t.ok(await waitFor(() => origin.received.join('').includes('POST /c ')))
  const all = origin.received.join('')
  t.match(all, `POST /b HTTP/1.1\r\nHost: ${at}\r\nX-A: 1\r\ntransfer-encoding: chunked\r\nX-B: 2\r\nVia: 1.1 tunnelguard\r\nConnection: keep-alive\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    'chunked: in its place and case')
  t.match(all, `POST /c HTTP/1.1\r\nHost: ${at}\r\nX-C: 3\r\nVia: 1.1 tunnelguard\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n`,
    'a POST with no body: Content-Length: 0, as node wrote it before')

  // Max-Forwards on TRACE is decremented in place; a second such field goes
  await exchange(p.port, [`TRACE http://${at}/t HTTP/1.1\r\nHost: ${at}\r\nmax-FORWARDS: 3\r\nX-T: 1\r\nMax-Forwards: 9\r\nConnection: close\r\n\r\n`])
  t.ok(await waitFor(() => origin.received.join('').includes('TRACE /t ')))
  t.match(origin.received.join(''), `TRACE /t HTTP/1.1\r\nHost: ${at}\r\nmax-FORWARDS: 2\r\nX-T: 1\r\nVia: 1.1 tunnelguard\r\nConnection: keep-alive\r\n\r\n`)
})

t.test('response fields reach the client as the origin sent them, repeated ones as separate lines, in order', async t => {
  const origin = await recordingOrigin(t)
  const p = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }) })
  const r = await exchange(p.port, [`GET http://site.example:${origin.port}/mixed HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n`])
  t.equal(headOf(r.data), 'HTTP/1.1 200 OK\r\nX-lower-Case: a\r\nSET-COOKIE: a=1; Path=/\r\nCache-Control: no-cache\r\nSet-Cookie: b=2\r\n'
    + 'cache-control: no-store\r\nETag: "v1"\r\nWWW-Authenticate: Basic realm="x"\r\ncontent-LENGTH: 2\r\nX-After: z\r\nVia: 1.1 tunnelguard\r\n'
    + 'Date: *\r\nConnection: close\r\n\r\n', 'the exact head: names as sent, in order; Connection-named and control fields gone; Via appended')
  t.ok(r.data.endsWith('\r\n\r\nok'))

  const c = await exchange(p.port, [`GET http://site.example:${origin.port}/chunked HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n`])
  t.equal(headOf(c.data), 'HTTP/1.1 200 OK\r\nX-Trace: t\r\nvia: 1.0 upstream-cache, 1.1 tunnelguard\r\nDate: *\r\nConnection: close\r\n'
    + 'Transfer-Encoding: chunked\r\n\r\n', "an origin's Via appended to in its place and case; the body framed anew by node")
  t.ok(c.data.endsWith('\r\n\r\n2\r\nok\r\n0\r\n\r\n'))
})

t.test("the origin's reason phrase reaches the client as sent (node would write its own), or node's when it has a byte node will not write", async t => {
  const origin = await recordingOrigin(t)
  const p = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }) })
  const get = async (path: string) => (await exchange(p.port, [`GET http://site.example:${origin.port}${path} HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n`])).data
  t.match(await get('/reason'), /^HTTP\/1\.1 413 Too Big For Us\r\n/)
  t.match(await get('/noreason'), /^HTTP\/1\.1 299 \r\n/, 'an empty reason stays empty')
  const odd = await get('/oddreason')
  t.match(odd, /^HTTP\/1\.1 200 OK\r\n/, 'a DEL in it: node\'s own phrase')
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})
