// Plain HTTP inside a CONNECT tunnel: the first request's Host (and an absolute-form URL's host)
// is decided like plain HTTP's, so that CONNECT <an edge's address>:80 and then
// `Host: x.ngrok-free.app` is no way around the lists; proxy.nonTls: block refuses anything but TLS.
import { createServer, type AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import type { ConfigInput } from '../../src/config/schema.js'
import { eventKind } from '../../src/observe/ecs.js'
import { clientHello, records } from '../fixtures/client-hello.js'
import { exchange, fakeResolve, run, startOrigin, startTcpSink, testProxy, waitFor } from '../fixtures/origin.js'

const CONNECT = (target: string) => `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`
const status = (s: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(s)?.[1] ?? 0)

async function setup(t: Test, proxy: NonNullable<ConfigInput['proxy']> = {}) {
  const origin = await startOrigin(t)
  const resolve = fakeResolve({
    'site.example': ['127.0.0.1'], 'a.trycloudflare.com': ['127.0.0.1'],
    'custom.example': { addresses: ['203.0.113.5'], cnames: ['abc.ngrok-free.app'] },
  })
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [origin.port], ...proxy } }, resolve })
  const curl = (args: string[]) => run('curl', ['-sS', '-i', '-p', '-x', `http://127.0.0.1:${p.port}`, '--max-time', '5', ...args])
  return { origin, p, curl, resolve }
}

const closeLines = (p: Awaited<ReturnType<typeof setup>>['p']) => p.ev.messages.filter(m => m.msg === 'proxy.close').map(m => m.fields!)

t.test('curl --proxytunnel over plain http: a listed Host in the tunnel closes it undialled; an unlisted one goes through', async t => {
  const { origin, p, curl } = await setup(t)
  const url = `http://127.0.0.1:${origin.port}/`

  const ok = await curl(['-H', 'Host: site.example', url])
  t.equal(ok.code, 0, ok.stderr)
  t.match(ok.stdout, /HTTP\/1\.1 200 Connection established\r\n\r\nHTTP\/1\.1 200 OK/)
  t.equal(origin.requests.length, 1)
  t.equal(origin.requests[0]!.headers.host, 'site.example', 'the origin got the request as sent')
  t.match(p.ev.events.at(-1), {
    message: 'proxy.connect', decision: { action: 'pass' }, destination: { ip: '127.0.0.1', port: origin.port },
    extra: { 'tunnelguard.sni_status': 'http', 'tunnelguard.host_header': 'site.example', 'tunnelguard.mismatch': true },
  })

  // the bypass: CONNECT to an address, then the tunnel service's name in the Host header
  const blocked = await curl(['-H', 'Host: X.Ngrok-Free.App:80', url])
  t.equal(blocked.code, 0, blocked.stderr)
  t.match(blocked.stdout, /^HTTP\/1\.1 200 Connection established\r\n\r\nHTTP\/1\.1 403 Forbidden\r\n/, 'the CONNECT was answered, then the request in the tunnel refused')
  t.match(blocked.stdout, /\r\nX-Tunnelguard-Reason: sinkhole: x\.ngrok-free\.app matches ngrok-free\.app in list ngrok\r\n/, 'naming the list and entry')
  t.match(blocked.stdout, /403 Forbidden from tunnelguard, this network's proxy:\n/)
  t.notMatch(blocked.stdout, /200 OK/)
  t.equal(origin.requests.length, 1, 'the origin is never contacted')
  const ev = p.ev.events.at(-1)!
  t.match(ev, {
    message: 'proxy.connect', destination: { ip: '127.0.0.1' },
    decision: { action: 'sinkhole', where: 'host', name: 'x.ngrok-free.app', list: 'ngrok' },
    extra: { 'tunnelguard.sni_status': 'http', 'tunnelguard.host_header': 'x.ngrok-free.app', 'tunnelguard.mismatch': true },
  })
  t.equal(eventKind(ev.decision), 'alert')
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
  t.match(closeLines(p).at(-1), {
    'tunnelguard.host_header': 'x.ngrok-free.app', 'error.message': /^blocked: sinkhole: x\.ngrok-free\.app matches ngrok-free\.app/,
    'tunnelguard.block_sent': 'http_response', 'http.response.status_code': 200,
  })
  t.match(p.ev.messages.filter(m => m.msg === 'proxy.host_mismatch').at(-1), { level: 'warn', fields: { 'destination.ip': '127.0.0.1', 'tunnelguard.host_header': 'x.ngrok-free.app' } })

  // the same with --connect-to, as a client whose DNS is not ours would do it
  const to = await run('curl', ['-sS', '-p', '-x', `http://127.0.0.1:${p.port}`, '--max-time', '5',
    '--connect-to', `abc.ngrok-free.app:80:127.0.0.1:${origin.port}`, '-o', '/dev/null', '-w', '%{http_code}', 'http://abc.ngrok-free.app/'])
  t.equal(to.stdout, '403', to.stderr)
  t.equal(origin.requests.length, 1)
  t.match(p.ev.events.at(-1), { destination: { ip: '127.0.0.1' }, decision: { action: 'sinkhole', where: 'host', name: 'abc.ngrok-free.app' } })
})

t.test('the Host\'s CNAME chain; an absolute-form URL host; the CONNECT host\'s own name', async t => {
  const { origin, p, resolve } = await setup(t)
  const target = `127.0.0.1:${origin.port}`
  const custom = await exchange(p.port, [CONNECT(target), 'GET / HTTP/1.1\r\nHost: custom.example\r\n\r\n'])
  t.equal(status(custom.data), 200)
  t.ok(custom.closed)
  t.match(p.ev.events.at(-1), {
    decision: { action: 'sinkhole', where: 'cname', name: 'abc.ngrok-free.app' },
    extra: { 'tunnelguard.host_cnames': ['abc.ngrok-free.app'], 'tunnelguard.host_header': 'custom.example' },
  })
  const nx = await exchange(p.port, [CONNECT(target), 'GET / HTTP/1.1\r\nHost: nx.example\r\nConnection: close\r\n\r\n'], { end: true })
  t.match(nx.data, /200 OK/, 'a Host that does not resolve has no chain to decide')
  t.match(p.ev.events.at(-1), { decision: { action: 'pass' }, extra: { 'tunnelguard.host_chain_error': 'NXDOMAIN' } })

  const abs = await exchange(p.port, [CONNECT(target), 'GET http://x.ngrok.io/ HTTP/1.1\r\nHost: site.example\r\n\r\n'])
  t.ok(abs.closed)
  t.match(p.ev.events.at(-1), { urlDomain: 'x.ngrok.io', decision: { action: 'sinkhole', where: 'url', name: 'x.ngrok.io' }, extra: { 'tunnelguard.host_header': 'site.example' } })
  t.match(p.ev.messages.filter(m => m.msg === 'proxy.host_mismatch').at(-2), { fields: { 'url.domain': 'x.ngrok.io' } })
  const absCustom = await exchange(p.port, [CONNECT(target), 'GET http://custom.example/ HTTP/1.1\r\n\r\n'])
  t.ok(absCustom.closed)
  t.match(p.ev.events.at(-1), { decision: { where: 'cname' }, extra: { 'tunnelguard.url_cnames': ['abc.ngrok-free.app'] } })
  const absAddr = await exchange(p.port, [CONNECT(target), `GET http://[::1]:${origin.port}/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`], { end: true })
  t.match(absAddr.data, /200 OK/, 'addresses: nothing to look up')
  t.match(p.ev.events.at(-1), { decision: { action: 'pass' }, urlDomain: '[::1]' }, 'ECS url.domain: an IPv6 literal in its brackets')

  // a CONNECT sent on through the tunnel (to a proxy behind it): its authority is decided as a CONNECT host is
  const inner = await exchange(p.port, [CONNECT(target), 'CONNECT x.ngrok-free.app:443 HTTP/1.1\r\nHost: site.example\r\n\r\n'])
  t.ok(inner.closed)
  t.match(p.ev.events.at(-1), {
    decision: { action: 'sinkhole', where: 'connect', name: 'x.ngrok-free.app' },
    extra: { 'tunnelguard.inner_connect': 'x.ngrok-free.app', 'tunnelguard.host_header': 'site.example' },
  })
  t.match(p.ev.messages.filter(m => m.msg === 'proxy.host_mismatch').at(-2), { fields: { 'tunnelguard.inner_connect': 'x.ngrok-free.app' } })
  const innerBad = await exchange(p.port, [CONNECT(target), 'CONNECT user@x:443 HTTP/1.1\r\n\r\n'])
  t.ok(innerBad.closed)
  t.match(p.ev.events.at(-1), { decision: { action: 'block', reason: /bad request-target/ }, extra: { 'tunnelguard.sni_status': 'http-invalid' } })
  const options = await exchange(p.port, [CONNECT(target), 'OPTIONS * HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n'], { end: true })
  t.equal(status(options.data), 200, 'the asterisk-form names nothing: the Host decides')
  t.match(p.ev.events.at(-1), { decision: { action: 'pass' }, extra: { 'tunnelguard.host_header': 'site.example' } })
  t.notOk(p.ev.events.at(-1)!.extra!['tunnelguard.inner_connect'])

  const calls = resolve.calls.length
  const same = await exchange(p.port, [CONNECT(`site.example:${origin.port}`), 'GET / HTTP/1.1\r\nHost: SITE.example.\r\nConnection: close\r\n\r\n'], { end: true })
  t.match(same.data, /200 OK/)
  t.same(resolve.calls.slice(calls), ['site.example'], 'a Host that is the CONNECT host is resolved once (by the route)')
  t.notOk(p.ev.events.at(-1)!.extra!['tunnelguard.mismatch'])
  t.equal(origin.requests.length, 4)
})

t.test('what the head cannot say: decided on the CONNECT host; what cannot be read: blocked, fail closed', async t => {
  const { origin, p } = await setup(t, { helloTimeout: '400ms', maxHeaderBytes: 1024 })
  const target = `127.0.0.1:${origin.port}`
  const passes: [string, string][] = [
    ['no Host (HTTP/1.0)', 'GET / HTTP/1.0\r\n\r\n'],
    ['an empty Host', 'GET / HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n'],
  ]
  for (const [name, req] of passes) {
    const r = await exchange(p.port, [CONNECT(target), req], { end: true })
    t.match(r.data, /200 OK/, name)
    t.match(p.ev.events.at(-1), { decision: { action: 'pass', name: '127.0.0.1' }, extra: { 'tunnelguard.sni_status': 'http' } }, name)
    t.notOk(p.ev.events.at(-1)!.extra!['tunnelguard.host_header'])
  }
  const served = origin.requests.length
  const big = `GET / HTTP/1.1\r\nHost: site.example\r\nCookie: ${'a'.repeat(2000)}\r\n\r\n`
  const fails: [string, (string | Buffer)[], RegExp][] = [
    ['a head over maxHeaderBytes', [big], /malformed HTTP request in the tunnel \(request head over 1024 bytes\)/],
    ['two Host fields', ['GET / HTTP/1.1\r\nHost: site.example\r\nHost: x.ngrok.io\r\n\r\n'], /more than one Host header/],
    ['a Host that is no host', ['GET / HTTP/1.1\r\nHost: a b\r\n\r\n'], /bad Host header/],
    ['a URL host that is no host', ['GET http://user@x.ngrok.io/ HTTP/1.1\r\n\r\n'], /bad host in the request-target/],
    ['HTTP/2 with prior knowledge', ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'], /HTTP\/2 with prior knowledge/],
    ['a head not complete in time', ['GET / HTTP/1.1\r\nHost: x.ngro'], /not complete within proxy\.helloTimeout/],
  ]
  for (const [name, chunks, reason] of fails) {
    const r = await exchange(p.port, [CONNECT(target), ...chunks])
    t.equal(status(r.data), 200, name)
    t.ok(r.closed, `${name}: closed`)
    t.match(p.ev.events.at(-1), { decision: { action: 'block', where: 'host', reason }, extra: { 'tunnelguard.sni_status': 'http-invalid' } }, name)
    t.notOk(p.ev.events.at(-1)!.decision.policy, `${name}: a fail-closed block, not a setting`)
  }
  t.equal(origin.requests.length, served, 'never forwarded')

  // dripped a byte at a time: still read whole, and decided
  const req = Buffer.from('GET / HTTP/1.1\r\nHost: x.ngrok-free.app\r\n\r\n')
  const dripped = await exchange(p.port, [CONNECT(target), ...[...req].map(b => Buffer.from([b]))], { gapMs: 2 })
  t.ok(dripped.closed)
  t.match(p.ev.events.at(-1), { decision: { action: 'sinkhole', name: 'x.ngrok-free.app' } })

  // the client leaves half-way: nothing dialled, no block
  const before = p.ev.events.length
  const gone = await exchange(p.port, [CONNECT(target), 'GET / HTTP/1.1\r\nHost: x.ngr'], { end: true })
  t.ok(gone.closed)
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
  t.equal(p.ev.events.length, before + 1)
  t.match(p.ev.events.at(-1), { decision: { action: 'pass' }, extra: { 'tunnelguard.sni_status': 'eof' } })
  t.match(closeLines(p).at(-1), { 'error.message': 'no complete HTTP request head (eof)' })
  t.equal(origin.requests.length, served)
})

t.test('request lines lenient servers read, not in the strict form (extra spaces, tabs, HTTP/0.9, HTTP/1.10): blocked, never forwarded', async t => {
  const { origin, p } = await setup(t)
  const target = `127.0.0.1:${origin.port}`
  const served = origin.requests.length
  for (const bytes of [
    'GET  / HTTP/1.1\r\nHost: x.ngrok-free.app\r\n\r\n', 'GET / HTTP/1.1 \r\nHost: x.ngrok-free.app\r\n\r\n',
    'GET / HTTP/1.10\r\nHost: x.ngrok-free.app\r\n\r\n', 'GET http://x.ngrok-free.app/\r\n',
    'GET\thttp://x.ngrok-free.app/ HTTP/1.1\r\nHost: x.ngrok-free.app\r\n\r\n', 'CONNECT  x.ngrok-free.app:443 HTTP/1.1\r\n\r\n',
  ]) {
    const r = await exchange(p.port, [CONNECT(target), bytes])
    t.ok(r.closed, JSON.stringify(bytes))
    // a refusal the client can read: the 200, then a 403 saying why
    t.match(r.data, /^HTTP\/1\.1 200 [^\r]*\r\n(?:[^\r]+\r\n)*\r\nHTTP\/1\.1 403 Forbidden\r\n(?:[^\r]+\r\n)*X-Tunnelguard-Reason: malformed HTTP request in the tunnel \([^\r]*with single spaces[^\r]*\): blocked, fail closed\r\n/, JSON.stringify(bytes))
    t.match(p.ev.events.at(-1), { decision: { action: 'block', reason: /with single spaces/ }, extra: { 'tunnelguard.sni_status': 'http-invalid' } }, JSON.stringify(bytes))
  }
  t.equal(origin.requests.length, served, 'none reached the origin')
})

t.test('bytes that are no HTTP request pass on the CONNECT host, as before', async t => {
  const { origin, p } = await setup(t)
  const target = `127.0.0.1:${origin.port}`
  const ssh = await exchange(p.port, [CONNECT(target), 'SSH-2.0-OpenSSH_9.2\r\n'], { waitMs: 500 })
  t.equal(status(ssh.data), 200)
  t.match(p.ev.events.at(-1), { decision: { action: 'pass' }, extra: { 'tunnelguard.sni_status': 'not-tls' } })
})

t.test('every request on a kept-alive tunnel is decided, not only the first', async t => {
  const { origin, p } = await setup(t)
  const target = `127.0.0.1:${origin.port}`
  const lines = () => p.ev.events.filter(e => e.message === 'proxy.connect')

  // curl, one connection through the tunnel for two URLs: the second's Host is listed
  const url = `http://127.0.0.1:${origin.port}/`
  const proxy = ['-p', '-x', `http://127.0.0.1:${p.port}`, '--max-time', '5']
  const both = await run('curl', ['-sS', '-v', ...proxy, '-H', 'Host: site.example', `${url}1`, '--next', ...proxy, '-H', 'Host: x.ngrok-free.app', `${url}2`])
  t.match(both.stderr, /Re-using existing connection/, 'curl kept the tunnel for the second URL')
  t.same(origin.requests.map(r => r.url), ['/1'], 'the second request never reached the origin')
  // the kept-alive tunnel is closed under it; curl retries the URL on a fresh tunnel, where it is
  // the first request: blocked as before, with the 403 naming the list and entry
  t.equal(both.code, 0, both.stderr)
  t.match(both.stdout, /403 Forbidden from tunnelguard, this network's proxy:\nsinkhole: x\.ngrok-free\.app matches ngrok-free\.app in list ngrok\n$/)
  t.match(lines().find(e => e.extra?.['tunnelguard.request'] === 2), {
    decision: { action: 'sinkhole', where: 'host', name: 'x.ngrok-free.app' },
    extra: { 'tunnelguard.request': 2, 'tunnelguard.host_header': 'x.ngrok-free.app', 'tunnelguard.sni_status': 'http' },
  })
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
  t.match(closeLines(p).at(-1), { 'tunnelguard.host_header': 'x.ngrok-free.app', 'error.message': /^blocked: sinkhole: x\.ngrok-free\.app/ })
  t.ok(closeLines(p).some(c => c['tunnelguard.tunnel_requests'] === 2 && /^blocked/.test(String(c['error.message']))), 'the blocked one is counted')

  // pipelined in one write: the second head is held until decided
  const pipelined = await exchange(p.port, [CONNECT(target) + 'GET /p1 HTTP/1.1\r\nHost: site.example\r\n\r\nGET /p2 HTTP/1.1\r\nHost: abc.ngrok-free.app\r\n\r\n'])
  t.ok(pipelined.closed)
  t.same(origin.requests.map(r => r.url), ['/1', '/p1'])
  t.match(lines().at(-1), { decision: { action: 'sinkhole', name: 'abc.ngrok-free.app' }, extra: { 'tunnelguard.request': 2 } })

  // a body that reads like a request is a body; a name asked again gets no new line, a new one does
  const fake = 'GET /x HTTP/1.1\r\nHost: x.ngrok-free.app\r\n\r\n'
  const before = lines().length
  const kept = await exchange(p.port, [CONNECT(target),
    `POST /b1 HTTP/1.1\r\nHost: site.example\r\nContent-Length: ${fake.length}\r\n\r\n${fake}`,
    `POST /b2 HTTP/1.1\r\nHost: SITE.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n${fake.slice(0, 5)}\r\n${(fake.length - 5).toString(16)};x=y\r\n${fake.slice(5)}\r\n0\r\nX-Sum: 1\r\n\r\n`,
    'GET /b3 HTTP/1.1\r\nHost: a.trycloudflare.com\r\nConnection: close\r\n\r\n'], { gapMs: 100, end: true })
  t.equal(kept.data.match(/200 OK/g)?.length, 3, 'three answers')
  t.same(origin.requests.slice(-3).map(r => [r.url, r.body]), [['/b1', fake], ['/b2', fake], ['/b3', '']], 'bodies intact, chunked or not')
  const got = lines().slice(before)
  t.equal(got.length, 2, 'the tunnel\'s line, and one for the name not named before')
  t.match(got[0], { decision: { action: 'pass' }, extra: { 'tunnelguard.host_header': 'site.example' } })
  t.notOk(got[0]!.extra!['tunnelguard.request'])
  t.match(got[1], { decision: { action: 'alert', list: 'tunnels', where: 'host', name: 'a.trycloudflare.com' }, extra: { 'tunnelguard.request': 3 } })
  t.match(p.ev.messages.filter(m => m.msg === 'proxy.host_mismatch').at(-1), { fields: { 'tunnelguard.host_header': 'a.trycloudflare.com' } })
  t.ok(await waitFor(() => closeLines(p).at(-1)?.['tunnelguard.tunnel_requests'] === 3), 'the close line counts the requests read in the tunnel')
  t.notOk(closeLines(p).at(-1)!['error.message'])

  // a large body: relayed with backpressure, then the next head is still found
  const big = 'z'.repeat(4 * 1024 * 1024)
  const large = await exchange(p.port, [CONNECT(target), `PUT /big HTTP/1.1\r\nHost: site.example\r\nContent-Length: ${big.length}\r\n\r\n`, big,
    'GET /after HTTP/1.1\r\nHost: x.ngrok.io\r\n\r\n'], { waitMs: 5000 })
  t.ok(large.closed)
  t.equal(origin.requests.at(-1)!.url, '/big')
  t.equal(origin.requests.at(-1)!.body.length, big.length, 'the whole body')
  t.match(lines().at(-1), { decision: { action: 'sinkhole', name: 'x.ngrok.io' }, extra: { 'tunnelguard.request': 2 } })
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})

t.test('a later request that cannot be framed one way only closes the tunnel, fail closed', async t => {
  const { origin, p } = await setup(t)
  const target = `127.0.0.1:${origin.port}`
  const ok = 'GET /ok HTTP/1.1\r\nHost: site.example\r\n\r\n'
  const cases: [string, string, RegExp][] = [
    ['TE and CL (smuggling)', 'POST /s HTTP/1.1\r\nHost: site.example\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', /both Transfer-Encoding and Content-Length/],
    ['a chunk size with a space', 'POST /s HTTP/1.1\r\nHost: site.example\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n', /hex-size/],
    ['a chunk without its CRLF', 'POST /s HTTP/1.1\r\nHost: site.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloGET / HTTP/1.1\r\n\r\n', /no CRLF after a chunk/],
    ['another protocol after a request', 'SSH-2.0-OpenSSH_9.2\r\n', /bytes after a request that are no HTTP request/],
    ['a lenient request line', 'GET  / HTTP/1.1\r\nHost: x.ngrok-free.app\r\n\r\n', /single spaces/],
  ]
  for (const [name, bytes, reason] of cases) {
    const served = origin.requests.length
    const closed = closeLines(p).length
    const r = await exchange(p.port, [CONNECT(target), ok, bytes], { gapMs: 100 })
    t.ok(r.closed, name)
    t.match(r.data, /200 OK/, `${name}: the first request was answered`)
    t.equal(origin.requests.length, served + 1, `${name}: only the first reached the origin`)
    t.match(p.ev.events.at(-1), {
      decision: { action: 'block', where: 'host', name: '127.0.0.1', reason: new RegExp(`malformed HTTP request in the tunnel \\(.*${reason.source}.*\\): blocked, fail closed`) },
      extra: { 'tunnelguard.sni_status': 'http-invalid', 'tunnelguard.request': 2 },
    }, name)
    t.ok(await waitFor(() => closeLines(p).length > closed), `${name}: its close line`)
    t.match(closeLines(p).at(-1), { 'error.message': /^blocked: malformed HTTP request in the tunnel/, 'tunnelguard.tunnel_requests': 2 }, name)
  }
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})

t.test('one tunnel naming more than 64 names besides the CONNECT host: the request that names one more is refused', async t => {
  const { origin, p } = await setup(t)
  const target = `127.0.0.1:${origin.port}`
  const reqs = Array.from({ length: 65 }, (_, i) => `GET /${i + 1} HTTP/1.1\r\nHost: n${i + 1}.example\r\n\r\n`)
  const r = await exchange(p.port, [CONNECT(target), reqs.join('') + reqs[0]], { waitMs: 5000 })
  t.ok(r.closed)
  t.equal(origin.requests.length, 64, 'the first 64 names were served')
  t.equal(origin.requests.at(-1)!.url, '/64')
  t.match(p.ev.events.at(-1), {
    decision: { action: 'block', name: '127.0.0.1', reason: /^more than 64 different names in one tunnel: blocked, fail closed/ },
    extra: { 'tunnelguard.request': 65, 'tunnelguard.sni_status': 'http-invalid' },
  })
  // a listed name past the cap is refused for its list, as anywhere else
  const listed = await exchange(p.port, [CONNECT(target), reqs.slice(0, 64).join('') + 'GET / HTTP/1.1\r\nHost: x.ngrok-free.app\r\n\r\n'], { waitMs: 5000 })
  t.ok(listed.closed)
  t.equal(origin.requests.length, 128)
  t.match(p.ev.events.at(-1), { decision: { action: 'sinkhole', list: 'ngrok', name: 'x.ngrok-free.app' }, extra: { 'tunnelguard.request': 65 } })
})

/**
 * A raw origin for upgrades: it answers each request head in turn with `answer(head)` (an
 * Upgrade request with a 101 when `honour`), and once it has switched it reads on without
 * answering. `received`: every connection's bytes.
 */
async function startUpgradeOrigin(t: Test, honour: boolean | 'close' | 'fake') {
  const received: Buffer[] = []
  const srv = createServer(s => {
    const i = received.push(Buffer.alloc(0)) - 1
    let switched = false
    let seen = 0
    s.on('error', () => {})
    s.on('data', b => {
      received[i] = Buffer.concat([received[i]!, b])
      while (!switched) {
        const text = received[i]!.toString('latin1')
        const end = text.indexOf('\r\n\r\n', seen)
        if (end < 0) return
        const head = text.slice(seen, end)
        seen = end + 4
        if (honour === 'close') return void s.end()       // closes without an answer
        if (honour === 'fake') {
          // says it switched, and reads on as HTTP (a handler's 101 or 200 that is none)
          s.write(head.startsWith('CONNECT ') ? 'HTTP/1.1 200 Connection established\r\n\r\n'
            : /\r\nUpgrade: /i.test(head) ? 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n' : 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
          continue
        }
        if (honour && /\r\nUpgrade: /i.test(head)) {
          s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n')
          switched = true
        } else if (honour && head.startsWith('CONNECT ')) {
          s.write('HTTP/1.1 200 Connection established\r\n\r\n')
          switched = true
        } else {
          s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')   // as Go does: the upgrade ignored
        }
      }
    })
  })
  await new Promise<void>(r => srv.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => srv.close(() => r())))
  return { port: (srv.address() as AddressInfo).port, received }
}

const WS = 'GET /ws HTTP/1.1\r\nHost: site.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'
const FRAME = Buffer.from([0x81, 0x85, 1, 2, 3, 4, 0x69, 0x67, 0x6f, 0x68, 0x6e])

t.test('after the server switched protocols (101, or 200 to a CONNECT) the tunnel carries the new one, unread', async t => {
  const origin = await startUpgradeOrigin(t, true)
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [origin.port] } } })
  const target = `127.0.0.1:${origin.port}`
  const later = 'GET / HTTP/1.1\r\nHost: x.ngrok-free.app\r\n\r\n'
  const r = await exchange(p.port, [CONNECT(target), WS, FRAME, later, 'HELLO'], { gapMs: 100, end: true, waitMs: 1500 })
  t.match(r.data, /101 Switching Protocols/)
  t.ok(await waitFor(() => origin.received.at(-1)!.length === WS.length + FRAME.length + later.length + 5))
  t.same(origin.received.at(-1), Buffer.concat([Buffer.from(WS), FRAME, Buffer.from(later + 'HELLO')]), 'every byte, in order, unread after the switch')
  t.match(p.ev.events.at(-1), { decision: { action: 'pass' }, extra: { 'tunnelguard.host_header': 'site.example' } })


  // all in one write with the FIN: the frame waits for the 101, then goes, and the FIN after it
  const once = await exchange(p.port, [Buffer.concat([Buffer.from(CONNECT(target) + WS), FRAME])], { end: true, waitMs: 1500 })
  t.match(once.data, /101 Switching/)
  t.ok(await waitFor(() => origin.received.at(-1)!.length === WS.length + FRAME.length))
  t.same(origin.received.at(-1), Buffer.concat([Buffer.from(WS), FRAME]))

  // a CONNECT on to a proxy behind: after its 200, TLS, its ClientHello decided
  const tls = records(clientHello({ names: ['site.example'] }))
  const inner = await exchange(p.port, [CONNECT(target), 'CONNECT site.example:443 HTTP/1.1\r\n\r\n', tls], { gapMs: 100, waitMs: 600 })
  t.match(inner.data, /200 Connection established\r\n\r\nHTTP\/1\.1 200 Connection established/)
  t.ok(await waitFor(() => origin.received.at(-1)!.subarray(-tls.length).equals(tls)))
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})

t.test('TLS through a proxy behind the destination (an inner CONNECT): its ClientHello\'s SNI is decided as a CONNECT\'s own', async t => {
  const origin = await startUpgradeOrigin(t, true)
  const resolve = fakeResolve({ 'custom.example': { addresses: ['203.0.113.5'], cnames: ['abc.ngrok-free.app'] } })
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [origin.port], helloTimeout: '400ms' } }, resolve })
  const target = `127.0.0.1:${origin.port}`
  const inner = 'CONNECT 203.0.113.9:443 HTTP/1.1\r\n\r\n'
  const blocked = await exchange(p.port, [CONNECT(target), inner, records(clientHello({ names: ['x.ngrok-free.app'] }))], { gapMs: 100, waitMs: 1500 })
  t.ok(blocked.closed)
  t.equal(origin.received.at(-1)!.toString(), inner, 'the ClientHello never reached the proxy behind')
  t.match(p.ev.events.at(-1), {
    decision: { action: 'sinkhole', where: 'sni', name: 'x.ngrok-free.app' }, sni: 'x.ngrok-free.app',
    extra: { 'tunnelguard.inner_tls': true, 'tunnelguard.sni_status': 'ok', 'tunnelguard.request': 1 },
  })

  // allowed, dripped a byte at a time: gathered whole, decided, then it and the rest go on (a proxy
  // with a helloTimeout the drip fits in on a loaded box: a few hundred writes, each after a timer)
  const ok = records(clientHello({ names: ['site.example'] }))
  const patient = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [origin.port], helloTimeout: '10s' } }, resolve })
  const dripped = await exchange(patient.port, [CONNECT(target), inner, ...[...ok].map(b => Buffer.from([b]))], { gapMs: 1, waitMs: 4000 })
  t.notOk(dripped.closed)
  t.ok(await waitFor(() => origin.received.at(-1)!.subarray(inner.length).equals(ok)))
  t.match(patient.ev.events.at(-1), { decision: { action: 'pass', name: 'site.example' }, extra: { 'tunnelguard.inner_tls': true } })
  const again = await exchange(p.port, [CONNECT(target), inner, records(clientHello({ names: null }))], { gapMs: 100, waitMs: 600 })
  t.notOk(again.closed, 'no SNI: decided on what the CONNECTs named')
  // its CNAME chain, and ECH, as on the outer tunnel; a name the tunnel named before gets no new line
  const before = p.ev.events.length
  const repeat = await exchange(p.port, [CONNECT(target), 'CONNECT site.example:443 HTTP/1.1\r\n\r\n', ok], { gapMs: 100, waitMs: 600 })
  t.notOk(repeat.closed)
  t.equal(p.ev.events.length, before + 1, 'the tunnel\'s own line only')
  const chained = await exchange(p.port, [CONNECT(target), inner, records(clientHello({ names: ['custom.example'] }))], { gapMs: 100, waitMs: 1500 })
  t.ok(chained.closed)
  t.match(p.ev.events.at(-1), { decision: { action: 'sinkhole', where: 'cname', name: 'abc.ngrok-free.app' }, extra: { 'tunnelguard.sni_cnames': ['abc.ngrok-free.app'] } })
  const ech = await exchange(p.port, [CONNECT(target), inner, records(clientHello({ names: ['public.example'], extra: [[0xfe0d, Buffer.from([0, 1, 2, 3])]] }))], { gapMs: 100, waitMs: 600 })
  t.notOk(ech.closed)
  t.match(p.ev.events.at(-1), { decision: { action: 'pass', name: 'public.example' }, extra: { 'tunnelguard.ech': true, 'tunnelguard.inner_tls': true } })
  t.ok(await waitFor(() => p.proxy.openConnections === 0, 5000))
  t.match(p.ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields, { 'tunnelguard.ech': true }, 'the close line too')

  // what cannot be read is refused; what is no TLS goes on (decided on the inner CONNECT's authority)
  const refusals: [string, (string | Buffer)[], RegExp][] = [
    ['a malformed ClientHello', [Buffer.from([0x16, 3, 1, 0, 4, 2, 0, 0, 0])], /a malformed ClientHello after a CONNECT to a proxy behind/],
    ['a ClientHello cut short by the FIN', [ok.subarray(0, 20)], /the client ended before its ClientHello/],
    ['a ClientHello never completed', [ok.subarray(0, 20)], /not complete within proxy\.helloTimeout/],
  ]
  for (const [name, bytes, reason] of refusals) {
    const r = await exchange(p.port, [CONNECT(target), inner, ...bytes], { gapMs: 100, waitMs: 1500, end: name.includes('FIN') })
    t.ok(r.closed, name)
    t.equal(origin.received.at(-1)!.toString(), inner, `${name}: nothing after the inner CONNECT went on`)
    t.match(p.ev.events.at(-1), { decision: { action: 'block', reason }, extra: { 'tunnelguard.sni_status': 'http-invalid', 'tunnelguard.request': 1 } }, name)
  }
  const ssh = await exchange(p.port, [CONNECT(target), inner, 'SSH-2.0-OpenSSH_9.2\r\n'], { gapMs: 100, waitMs: 600 })
  t.notOk(ssh.closed)
  t.ok(await waitFor(() => origin.received.at(-1)!.toString() === inner + 'SSH-2.0-OpenSSH_9.2\r\n'))
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})

t.test('a server that says it switched and reads on as HTTP hides no request: requests are decided, switch or not', async t => {
  const origin = await startUpgradeOrigin(t, 'fake')
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [origin.port], helloTimeout: '400ms' } } })
  const target = `127.0.0.1:${origin.port}`
  for (const first of ['CONNECT 127.0.0.1:80 HTTP/1.1\r\n\r\n', WS]) {
    const r = await exchange(p.port, [CONNECT(target), first, 'GET / HTTP/1.1\r\nHost: x.ngrok-free.app\r\n\r\n'], { gapMs: 100, waitMs: 1500 })
    t.ok(r.closed, JSON.stringify(first))
    t.equal(origin.received.at(-1)!.toString(), first, 'the request after the "switch" never reached the server')
    t.match(p.ev.events.at(-1), { decision: { action: 'sinkhole', name: 'x.ngrok-free.app' }, extra: { 'tunnelguard.request': 2 } })
  }
  // the price: after a real switch, a first message that could be the start of a request line
  // (a word, no newline yet) is held as one, and refused at helloTimeout
  const word = await exchange(p.port, [CONNECT(target), WS, 'PING'], { gapMs: 100, waitMs: 1500 })
  t.ok(word.closed)
  t.equal(origin.received.at(-1)!.toString(), WS)
  t.match(p.ev.events.at(-1), { decision: { action: 'block', reason: /a request head not complete within proxy\.helloTimeout/ } })
})

t.test('an upgrade the server did not honour: bytes that are no request are refused; a request is decided as any other', async t => {
  const origin = await startUpgradeOrigin(t, false)
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [origin.port] } } })
  const target = `127.0.0.1:${origin.port}`
  const closed = (p.ev.messages.filter(m => m.msg === 'proxy.close')).length
  const r = await exchange(p.port, [CONNECT(target), WS, FRAME, 'GET / HTTP/1.1\r\nHost: x.ngrok-free.app\r\n\r\n'], { gapMs: 100, waitMs: 1500 })
  t.ok(r.closed)
  t.match(r.data, /200 OK\r\nContent-Length: 2\r\n\r\nok$/, 'the answer to the upgrade request reached the client')
  t.equal(origin.received.at(-1)!.toString(), WS, 'nothing after the upgrade request reached the server')
  t.match(p.ev.events.at(-1), {
    decision: { action: 'block', reason: /bytes after a request that are no HTTP request \(the server did not switch protocols\)/ },
    extra: { 'tunnelguard.request': 2, 'tunnelguard.sni_status': 'http-invalid' },
  })
  t.ok(await waitFor(() => p.ev.messages.filter(m => m.msg === 'proxy.close').length > closed))

  const asked = await exchange(p.port, [CONNECT(target), WS, 'GET / HTTP/1.1\r\nHost: x.ngrok-free.app\r\n\r\n'], { gapMs: 100, waitMs: 1500 })
  t.ok(asked.closed)
  t.equal(origin.received.at(-1)!.toString(), WS)
  t.match(p.ev.events.at(-1), { decision: { action: 'sinkhole', name: 'x.ngrok-free.app' }, extra: { 'tunnelguard.request': 2 } })

  // the server closes before answering: the bytes are refused
  const closer = await startUpgradeOrigin(t, 'close')
  const c = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [closer.port] } } })
  const gone = await exchange(c.port, [CONNECT(`127.0.0.1:${closer.port}`), Buffer.concat([Buffer.from(WS), FRAME])], { gapMs: 100, waitMs: 1500 })
  t.ok(gone.closed)
  t.equal(closer.received.at(-1)!.toString(), WS)
  t.match(c.ev.events.at(-1), { decision: { action: 'block', reason: /the server did not switch protocols/ } })

  const sink = await startTcpSink(t)
  const q = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [sink.port] } } })

  // a head cut short by the client's FIN goes nowhere: the server gets the first request and the FIN
  const cut = await exchange(q.port, [CONNECT(`127.0.0.1:${sink.port}`), 'GET / HTTP/1.1\r\nHost: site.example\r\n\r\n', 'GET /2 HTTP/1.1\r\nHost: x.ng'], { gapMs: 100, end: true, waitMs: 1500 })
  t.ok(cut.closed)
  t.equal(sink.received.at(-1)!.toString(), 'GET / HTTP/1.1\r\nHost: site.example\r\n\r\n')
  t.ok(await waitFor(() => p.proxy.openConnections === 0 && c.proxy.openConnections === 0 && q.proxy.openConnections === 0))
})

t.test('proxy.nonTls: block: every tunnel whose first bytes are not TLS is refused; TLS passes', async t => {
  const { origin, p, curl } = await setup(t, { nonTls: 'block' })
  const target = `127.0.0.1:${origin.port}`
  const reason = 'the bytes after CONNECT are not TLS (proxy.nonTls: block)'
  const http = await curl(['-H', 'Host: site.example', `http://127.0.0.1:${origin.port}/`])
  t.not(http.code, 0)
  t.equal(origin.requests.length, 0)
  const ev = p.ev.events.at(-1)!
  t.match(ev, { decision: { action: 'block', policy: 'proxy.nonTls', where: 'connect', name: '127.0.0.1', reason }, extra: { 'tunnelguard.sni_status': 'not-tls' } })
  t.equal(eventKind(ev.decision), 'event')
  const ssh = await exchange(p.port, [CONNECT(target), 'SSH-2.0-OpenSSH_9.2\r\n'])
  t.match(p.ev.events.at(-1), { decision: { action: 'block', policy: 'proxy.nonTls' } })
  // bytes of no protocol it reads: nothing but the close after the 200
  t.match(ssh, { closed: true, data: /^HTTP\/1\.1 200 [^\r]*\r\n(?:[^\r]+\r\n)*\r\n$/ })
  t.notOk('tunnelguard.block_sent' in closeLines(p).at(-1)!, 'nothing sent instead')
  // an alert-list CONNECT host: the refusal keeps its match
  await exchange(p.port, [CONNECT(`a.trycloudflare.com:${origin.port}`), 'GET / HTTP/1.1\r\n\r\n'])
  t.match(p.ev.events.at(-1), { decision: { action: 'block', policy: 'proxy.nonTls', list: 'tunnels', reason: new RegExp(`^${reason.replace(/[().]/g, '\\$&')}; alert: `) } })
  t.equal(eventKind(p.ev.events.at(-1)!.decision), 'alert')
  t.equal(origin.requests.length, 0)
  const hello = records(clientHello({ names: ['site.example'] }))
  const tls = await exchange(p.port, [CONNECT(target), hello], { waitMs: 500 })
  t.equal(status(tls.data), 200)
  t.match(p.ev.events.at(-1), { decision: { action: 'pass' }, extra: { 'tunnelguard.sni_status': 'ok' } })
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})
