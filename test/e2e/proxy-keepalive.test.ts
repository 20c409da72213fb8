// A client's kept-alive plain-HTTP connection, idle between requests: kept proxy.keepAliveTimeout
// (2 min by default, squid's client_idle_pconn_timeout; node's own 5 s lost the race with browsers
// and downstream proxies, which keep idle connections longer and reuse one as the proxy closes it),
// said in `Keep-Alive: timeout=N`, then closed by the proxy with a FIN (after node's 1 s margin).
// The header deadline runs from a request's first byte, not from the start of the idle time.
import { connect } from 'node:net'
import t from 'tap'
import { exchange, fakeResolve, startOrigin, testProxy, waitFor } from '../fixtures/origin.js'

const LOOPBACK = { allowDestinations: ['127.0.0.0/8'] }

t.test('by default an idle kept-alive connection is kept 2 minutes, and says so (node alone: 5 s)', async t => {
  const origin = await startOrigin(t)
  const p = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }) })
  const r = await exchange(p.port, [`GET http://site.example:${origin.port}/ HTTP/1.1\r\nHost: site.example\r\n\r\n`], { waitMs: 500 })
  t.match(r.data, /^HTTP\/1\.1 200 [\s\S]*\r\nConnection: keep-alive\r\nKeep-Alive: timeout=120\r\n/, 'Keep-Alive: timeout=120')
  t.notOk(r.closed, 'kept open after the answer')
})

t.test('proxy.keepAliveTimeout: a client idle within it is served on the same connection, one idle past it is closed with a FIN', async t => {
  const origin = await startOrigin(t)
  const p = await testProxy(t, {
    config: { proxy: { ...LOOPBACK, keepAliveTimeout: '1500ms', headerTimeout: '300ms' } }, resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }),
  })
  const s = connect(p.port, '127.0.0.1')
  t.teardown(() => s.destroy())
  let data = ''
  let error: string | undefined
  s.on('data', b => { data += b.toString('latin1') })
  s.on('error', e => { error = (e as NodeJS.ErrnoException).code })
  const ended = new Promise<number>(r => s.once('end', () => r(Date.now())))
  const get = (path: string) => s.write(`GET http://site.example:${origin.port}${path} HTTP/1.1\r\nHost: site.example\r\n\r\n`)
  const answers = () => data.match(/HTTP\/1\.1 200 /g)?.length ?? 0
  get('/one')
  t.ok(await waitFor(() => answers() === 1), 'the first answer')
  t.match(data, /\r\nKeep-Alive: timeout=1\r\n/, 'the timeout said, in whole seconds')
  // idle longer than headerTimeout (300 ms), within keepAliveTimeout: the next request is served
  await new Promise(r => setTimeout(r, 900))
  get('/two')
  t.ok(await waitFor(() => answers() === 2), 'the second answer, on the same connection')
  t.notMatch(data, /408/, 'no 408: the header deadline did not run while the connection was idle')
  const idleFrom = Date.now()
  const at = await Promise.race([ended, new Promise<number>(r => setTimeout(() => r(0), 6000))])
  t.ok(at > 0, 'the proxy ended the idle connection')
  t.ok(at - idleFrom >= 1500, `not before keepAliveTimeout (${at - idleFrom} ms)`)
  t.notOk(error, 'with a FIN, not a reset')
  t.equal(origin.requests.length, 2)
  t.ok(await waitFor(() => p.ev.messages.some(m => m.msg === 'proxy.close')))
  const close = p.ev.messages.find(m => m.msg === 'proxy.close')!.fields!
  t.match(close, { 'tunnelguard.requests': 2, 'http.response.status_code': 200 })
  t.notOk(close['error.message'], 'an idle close is no error')
  t.ok(await waitFor(() => p.proxy.openConnections === 0), 'nothing left open')
})
