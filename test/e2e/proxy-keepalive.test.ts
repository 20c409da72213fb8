// A client's kept-alive plain-HTTP connection, idle between requests: kept proxy.keepAliveTimeout
// (2 min by default, squid's client_idle_pconn_timeout; node's own 5 s lost the race with browsers
// and downstream proxies, which keep idle connections longer and reuse one as the proxy closes it),
// said in `Keep-Alive: timeout=N`, then closed by the proxy with a FIN (after node's 1 s margin).
// The header deadline runs from a request's first byte, not from the start of the idle time.
import { createServer } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { exchange, fakeResolve, freePort, run, startOrigin, testProxy, waitFor } from '../fixtures/origin.js'
import { startServe } from '../fixtures/serve-process.js'

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
  t.notMatch(data, /HTTP\/1\.[01] 408/, 'no 408: the header deadline did not run while the connection was idle (a status line: the origin port may hold the digits)')
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

t.test('serve + curl: the close line of a kept-alive connection says what all its requests got, not the last one\'s status and outcome', async t => {
  // an origin on 127.0.0.1: /ok answers 200, /own502 its own 502, /drop closes without an answer (the proxy answers 502)
  const origin = createServer((req, res) => {
    if (req.url === '/drop') return void req.socket.destroy()
    res.writeHead(req.url === '/own502' ? 502 : 200, { 'content-type': 'text/plain' }).end(`${req.url}\n`)
  })
  await new Promise<void>(r => origin.listen(0, '127.0.0.1', r))
  t.teardown(() => { origin.closeAllConnections(); origin.close() })
  const port = (origin.address() as AddressInfo).port
  const [dnsPort, proxyPort] = [await freePort(), await freePort()]
  const dir = t.testdir({ 'tunnels.txt': 'ngrok.io\n' })
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, [
    `dns: { listen: ["127.0.0.1:${dnsPort}"], upstreams: ["udp://127.0.0.1:9"] }`,
    `proxy: { listen: ["127.0.0.1:${proxyPort}"], allowDestinations: ["127.0.0.0/8"], connectPorts: [${port}], httpPorts: [${port}] }`,
    'admin: { listen: null }',
    'lists:',
    '  tunnels: { files: [tunnels.txt], action: block }',
  ].join('\n'))
  const p = await startServe(t, ['--config', cfg])
  const closes = () => p.lines().filter(l => l.message === 'proxy.close')
  /** curl with several URLs on one command line: one connection to the proxy, reused; its close line. */
  const curl = async (...args: string[]) => {
    const before = closes().length
    const bodies = args.flatMap(a => a.startsWith('http://') ? ['-o', '/dev/null', a] : [a])   // -o is each URL's
    const r = await run('curl', ['-sS', '-m', '10', '-x', `http://127.0.0.1:${proxyPort}`, '-w', '%{http_code} %{num_connects}\\n', ...bodies])
    t.ok(await waitFor(() => closes().length > before), 'its close line')
    t.equal(closes().length, before + 1, 'one connection')
    return { out: r.stdout, close: closes()[before]! }
  }
  const url = (path: string) => `http://127.0.0.1:${port}${path}`
  const figures = (l: Record<string, unknown>) => Object.fromEntries(['tunnelguard.requests', 'http.response.status_code', 'tunnelguard.status_codes',
    'event.outcome', 'tunnelguard.failed_requests'].map(k => [k, l[k]]))

  // a failure among successes, and the last request a success: the connection had a failure
  const mixed = await curl(url('/ok'), url('/drop'), url('/ok'))
  t.equal(mixed.out, '200 1\n502 0\n200 0\n', 'three answers on one connection (num_connects 1, then 0: reused)')
  t.same(figures(mixed.close), {
    'tunnelguard.requests': 3, 'http.response.status_code': undefined, 'tunnelguard.status_codes': [200, 502],
    'event.outcome': 'failure', 'tunnelguard.failed_requests': 1,
  }, 'no one status for three answers; each status once; failure: one request failed')
  t.match(mixed.close['error.message'], /socket hang up|ECONNRESET/, 'the failure named')
  // the reverse: a failure last after successes
  const lastFailed = await curl(url('/ok'), url('/ok'), url('/drop'))
  t.equal(lastFailed.out, '200 1\n200 0\n502 0\n')
  t.same(figures(lastFailed.close), {
    'tunnelguard.requests': 3, 'http.response.status_code': undefined, 'tunnelguard.status_codes': [200, 502],
    'event.outcome': 'failure', 'tunnelguard.failed_requests': 1,
  })
  // every answer the same: that status; all served: success
  const same = await curl(url('/ok'), url('/ok'), url('/ok'))
  t.same(figures(same.close), {
    'tunnelguard.requests': 3, 'http.response.status_code': 200, 'tunnelguard.status_codes': undefined, 'event.outcome': 'success', 'tunnelguard.failed_requests': undefined,
  })
  t.match(same.close, { 'destination.ip': '127.0.0.1', 'destination.port': port }, 'one destination for all three: destination.*')
  t.notOk('tunnelguard.destinations' in same.close)
  // the origin's own 502 is an answer relayed: the connection's requests all reached the origin
  const own = await curl(url('/own502'), url('/ok'))
  t.equal(own.out, '502 1\n200 0\n')
  t.same(figures(own.close), {
    'tunnelguard.requests': 2, 'http.response.status_code': undefined, 'tunnelguard.status_codes': [502, 200], 'event.outcome': 'success', 'tunnelguard.failed_requests': undefined,
  })
  // a refused request beside a served one: the refusal is on its decision line, the connection still served one
  const refused = await curl(url('/ok'), 'http://x.ngrok.io/')
  t.equal(refused.out, '200 1\n403 0\n')
  t.same(figures(refused.close), {
    'tunnelguard.requests': 2, 'http.response.status_code': undefined, 'tunnelguard.status_codes': [200, 403], 'event.outcome': 'success', 'tunnelguard.failed_requests': undefined,
  })
  // two destinations: the close line puts its bytes on neither (the last was x.ngrok.io), it lists both
  t.same(refused.close['tunnelguard.destinations'], [`127.0.0.1:${port}`, 'x.ngrok.io:80'])
  t.notOk('destination.ip' in refused.close || 'destination.domain' in refused.close || 'destination.port' in refused.close, 'no one destination named')
  // one request, and a CONNECT tunnel: as before, its status and outcome
  t.same(figures((await curl(url('/drop'))).close), {
    'tunnelguard.requests': 1, 'http.response.status_code': 502, 'tunnelguard.status_codes': undefined, 'event.outcome': 'failure', 'tunnelguard.failed_requests': 1,
  })
  const tunnel = await curl('-p', url('/ok'), url('/ok'))
  t.equal(tunnel.out, '200 1\n200 0\n', 'two requests in one tunnel')
  t.same(figures(tunnel.close), {
    'tunnelguard.requests': 1, 'http.response.status_code': 200, 'tunnelguard.status_codes': undefined, 'event.outcome': 'success', 'tunnelguard.failed_requests': undefined,
  }, 'a CONNECT is one request: the 200 the client got, the tunnel reached its destination')
  t.equal(await p.stop('SIGTERM'), 0)
})
