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
