import t from 'tap'
import { exchange, fakeResolve, startOrigin, testProxy, waitFor } from '../fixtures/origin.js'

// A client that sends its request and then shuts its side down (`nc -N`, `printf ... | socat`,
// scripts and health checks written with a raw socket) still gets its answer: the FIN says "no
// more requests", not "never mind".
t.test('plain HTTP: a client that half-closes after its requests gets every answer, then the close', async t => {
  const origin = await startOrigin(t)
  const p = await testProxy(t, {
    config: { proxy: { allowDestinations: ['127.0.0.0/8'] } },
    resolve: fakeResolve({ 'ok.example': ['127.0.0.1'] }),
  })
  const get = (path: string, extra = ''): string => `GET http://ok.example:${origin.port}${path} HTTP/1.1\r\nHost: ok.example:${origin.port}\r\n${extra}\r\n`

  const one = await exchange(p.port, [get('/one')], { end: true })
  t.match(one.data, /^HTTP\/1\.1 200 OK\r\n[\s\S]*"url":"\/one"/, 'HTTP/1.1 keep-alive request, then FIN: answered')
  t.ok(one.closed, 'and the connection is closed after the answer')
  t.match(p.ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields, { 'http.response.status_code': 200, 'tunnelguard.requests': 1 })

  const two = await exchange(p.port, [get('/a') + get('/b')], { end: true })
  t.match(two.data, /"url":"\/a"[\s\S]*HTTP\/1\.1 200 OK[\s\S]*"url":"\/b"/, 'two pipelined requests, then FIN: both answered, in order')
  t.ok(two.closed)

  const body = 'x=1&y=2'
  const post = await exchange(p.port, [`POST http://ok.example:${origin.port}/form HTTP/1.1\r\nHost: ok.example:${origin.port}\r\nContent-Length: ${body.length}\r\n\r\n${body}`], { end: true })
  t.match(post.data, /^HTTP\/1\.1 200 OK[\s\S]*"body":"x=1&y=2"/, 'a POST with its body, then FIN: the body reaches the origin, the answer the client')

  const blocked = await exchange(p.port, [`GET http://x.ngrok-free.app/ HTTP/1.1\r\nHost: x.ngrok-free.app\r\n\r\n`], { end: true })
  t.match(blocked.data, /^HTTP\/1\.1 403 /, 'a blocked request, then FIN: the 403 still arrives')
  t.ok(blocked.closed)

  const cut = await exchange(p.port, [`GET http://ok.example:${origin.port}/cut HTTP/1.1\r\nHost: ok.ex`], { end: true })
  t.ok(cut.closed, 'a FIN inside a request head: the connection is closed, not left open')
  t.notMatch(cut.data, /200 OK/, 'and nothing is forwarded for it')
  t.notOk(origin.requests.some(r => r.url === '/cut'))

  const short = await exchange(p.port, [`POST http://ok.example:${origin.port}/short HTTP/1.1\r\nHost: ok.example:${origin.port}\r\nContent-Length: 10\r\n\r\nabc`], { end: true })
  t.ok(short.closed, 'a FIN inside a request body: the connection is closed, not left open')
  t.notMatch(short.data, /200 OK/)

  const origins = origin.requests.map(r => r.url)
  t.same(origins, ['/one', '/a', '/b', '/form'], 'the origin saw each allowed request once')
  t.ok(await waitFor(() => p.proxy.openConnections === 0), 'no connection left open')
})

t.test('plain HTTP: a half-closed client whose origin never answers gets a 504 at the idle timeout', async t => {
  const origin = await startOrigin(t)
  const p = await testProxy(t, {
    config: { proxy: { allowDestinations: ['127.0.0.0/8'], idleTimeout: '300ms' } },
    resolve: fakeResolve({ 'ok.example': ['127.0.0.1'] }),
  })
  const started = Date.now()
  const slow = await exchange(p.port, [`GET http://ok.example:${origin.port}/slow HTTP/1.1\r\nHost: ok.example\r\n\r\n`], { end: true, waitMs: 5000 })
  t.match(slow.data, /^HTTP\/1\.1 504 /, 'the origin\'s silence is answered, not waited on forever')
  t.ok(slow.closed)
  t.ok(Date.now() - started < 4500, 'well before the client gives up')
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})
