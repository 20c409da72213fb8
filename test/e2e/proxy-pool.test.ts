// Pooled (keep-alive) connections to origins: an idle one is closed after IDLE_UPSTREAM_MS, before
// common origins close theirs; a request without a body and with an idempotent method that fails on
// a reused one before any answer (the origin had closed it) goes once more on a new connection;
// a POST, or a request with a body, never does.
import t, { type Test } from 'tap'
import { IDLE_UPSTREAM_MS } from '../../src/proxy/pool-agent.js'
import { exchange, fakeResolve, rawHttpOrigin, run, testProxy, waitFor } from '../fixtures/origin.js'

const LOOPBACK = { allowDestinations: ['127.0.0.0/8'] }

interface Seen { conn: number; line: string }

/**
 * A keep-alive origin with no idle timeout of its own and no Keep-Alive hint. Each request is
 * answered with "conn N: request line" after `delayMs`, except that a connection's second request
 * (when `dropSecond`) gets no answer: the connection is closed as it arrives, as an origin whose
 * keep-alive ran out closes it.
 */
async function scripted(t: Test, o: { dropSecond?: boolean; delayMs?: number } = {}) {
  const seen: Seen[] = []
  const count = new Map<number, number>()
  const origin = await rawHttpOrigin(t, (head, s, n) => {
    const line = head.split('\r\n')[0]!
    seen.push({ conn: n, line })
    count.set(n, (count.get(n) ?? 0) + 1)
    if (count.get(n) === 2 && o.dropSecond) {
      s.destroy()
      return false
    }
    const body = `conn ${n}: ${line}\n`
    setTimeout(() => s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`), o.delayMs ?? 0)
  })
  return { port: origin.port, seen, open: origin.open }
}

t.test('an idle pooled connection is closed after IDLE_UPSTREAM_MS; one in use is not', async t => {
  t.equal(IDLE_UPSTREAM_MS, 4000)
  const origin = await scripted(t, { delayMs: IDLE_UPSTREAM_MS + 500 })
  const { port } = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'keep.test': ['127.0.0.1'] }) })
  const r = await run('curl', ['-sS', '-x', `http://127.0.0.1:${port}`, `http://keep.test:${origin.port}/slow`], undefined, 20_000)
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout, 'conn 1: GET /slow HTTP/1.1\n', 'an answer slower than the idle time still comes')
  t.equal(origin.open(), 1, 'the connection is pooled')
  const closed = await waitFor(() => origin.open() === 0, IDLE_UPSTREAM_MS + 1500)
  t.ok(closed, 'and closed by the proxy once idle for IDLE_UPSTREAM_MS')
})

t.test('a GET on a pooled connection the origin closed goes once more on a new one; POST and a PUT with a body do not', async t => {
  const origin = await scripted(t, { dropSecond: true })
  const { port, ev } = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'pool.test': ['127.0.0.1'] }) })
  const base = `http://pool.test:${origin.port}`
  const get = await run('curl', ['-sS', '-x', `http://127.0.0.1:${port}`, `${base}/1`, `${base}/2`])
  t.equal(get.code, 0, get.stderr)
  t.equal(get.stdout, 'conn 1: GET /1 HTTP/1.1\nconn 2: GET /2 HTTP/1.1\n', 'the second GET is answered on a new connection')
  t.same(origin.seen.map(s => `${s.conn} ${s.line}`), ['1 GET /1 HTTP/1.1', '1 GET /2 HTTP/1.1', '2 GET /2 HTTP/1.1'])
  t.match(ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields, { 'tunnelguard.upstream_retried': 'socket hang up' })

  origin.seen.length = 0
  const raw = await exchange(port, [
    `GET ${base}/a HTTP/1.1\r\nHost: pool.test\r\n\r\n`,
    `POST ${base}/b HTTP/1.1\r\nHost: pool.test\r\nContent-Length: 2\r\n\r\nhi`,
    `GET ${base}/c HTTP/1.1\r\nHost: pool.test\r\n\r\n`,
    `PUT ${base}/d HTTP/1.1\r\nHost: pool.test\r\nContent-Length: 2\r\n\r\nhi`,
    `GET ${base}/e HTTP/1.1\r\nHost: pool.test\r\nConnection: close\r\n\r\n`,
  ], { gapMs: 200 })
  t.same(raw.data.match(/^HTTP\/1\.1 \d{3}/gm), ['HTTP/1.1 200', 'HTTP/1.1 502', 'HTTP/1.1 200', 'HTTP/1.1 502', 'HTTP/1.1 200'], raw.data)
  t.match(raw.data, /X-Tunnelguard-Reason: origin failed: socket hang up/i)
  t.same(origin.seen.map(s => `${s.conn} ${s.line}`),
    ['2 GET /a HTTP/1.1', '3 GET /a HTTP/1.1', '3 POST /b HTTP/1.1', '4 GET /c HTTP/1.1', '4 PUT /d HTTP/1.1', '5 GET /e HTTP/1.1'],
    'the POST and the PUT with a body are sent once, never again')
})

t.test('bytes an origin sends on an idle pooled connection close it: they never answer the next request, maybe another client\'s', async t => {
  let late = true
  const origin = await rawHttpOrigin(t, (head, s, n) => {
    const line = head.split('\r\n')[0]!
    const body = `conn ${n}: ${line}\n`
    s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
    // once, after the answer: a second answer nobody asked for (a request it read in a body)
    if (late) setTimeout(() => s.write('HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nSTALE!\n'), 150)
    late = false
  })
  const { port } = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'late.test': ['127.0.0.1'] }) })
  const first = await run('curl', ['-sS', '-x', `http://127.0.0.1:${port}`, `http://late.test:${origin.port}/a`])
  t.equal(first.stdout, 'conn 1: GET /a HTTP/1.1\n')
  t.ok(await waitFor(() => origin.open() === 0, 2000), 'the pooled connection is closed when the stale bytes come')
  const second = await run('curl', ['-sS', '-x', `http://127.0.0.1:${port}`, `http://late.test:${origin.port}/b`])
  t.equal(second.code, 0, second.stderr)
  t.equal(second.stdout, 'conn 2: GET /b HTTP/1.1\n', 'a fresh connection, its own answer')
})

t.test('an answer that comes before the whole request was sent: its connection is not pooled (the upload is ended, early())', async t => {
  // answers a POST at its head, before its body has come (the body is still on its way)
  const origin = await rawHttpOrigin(t, (head, s, n) => {
    const line = head.split('\r\n')[0]!
    const body = `conn ${n}: ${line}\n`
    s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
  }, false)
  const { port, ev } = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'early.test': ['127.0.0.1'] }) })
  const base = `http://early.test:${origin.port}`
  // the head and half the body, the rest 300 ms later: the origin's answer is in before the request is whole
  const r = await exchange(port, [`POST ${base}/up HTTP/1.1\r\nHost: early.test\r\nContent-Length: 10\r\n\r\nhello`, 'world'], { gapMs: 300, waitMs: 1500 })
  t.match(r.data, /^HTTP\/1\.1 200 OK\r\n[^]*conn 1: POST \/up HTTP\/1\.1\n$/)
  t.ok(await waitFor(() => origin.open() === 0, 2000), 'its connection closed once the request was sent, not pooled')
  const next = await run('curl', ['-sS', '-x', `http://127.0.0.1:${port}`, `${base}/next`])
  t.equal(next.stdout, 'conn 2: GET /next HTTP/1.1\n', 'the next request has a connection of its own')
  t.ok(ev.messages.some(m => m.msg === 'proxy.close'))
})

t.test('a 204 with a body: the client gets the 204, the origin connection is closed, the close line says so', async t => {
  const origin = await rawHttpOrigin(t, (head, s) => {
    s.write(head.startsWith('GET /204') ? 'HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nHELLO' : 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n')
  })
  const { port, ev } = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'nb.test': ['127.0.0.1'] }) })
  const r = await run('curl', ['-sS', '-i', '-x', `http://127.0.0.1:${port}`, `http://nb.test:${origin.port}/204`])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^HTTP\/1\.1 204 No Content\r\n/)
  t.notMatch(r.stdout, /HELLO/)
  t.ok(await waitFor(() => origin.open() === 0, 2000), 'the origin connection is not pooled')
  const close = ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields!
  t.match(close, { 'http.response.status_code': 204, 'event.outcome': 'success', 'tunnelguard.upstream_error': /Parse Error/ })
  t.ok((close['destination.bytes'] as number) > 0, 'the 204 was written')
})
