// What origins answer, passed on as they answered it: response heads up to 64 KiB, interim 1xx
// responses (102, 103 Early Hints), an upgrade offer dropped rather than refused, no Content-Length
// on a 204, a Via naming the version received.
import { connect } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { exchange, fakeResolve, rawHttpOrigin, run, startOrigin, testProxy, waitFor } from '../fixtures/origin.js'

const LOOPBACK = { allowDestinations: ['127.0.0.0/8'] }

/** An origin answering every request with `answer(request line)`, raw, and recording the requests' heads. */
async function rawOrigin(t: Test, answer: (line: string) => string) {
  const heads: string[] = []
  const origin = await rawHttpOrigin(t, (head, s) => {
    heads.push(head)
    s.write(answer(head.split('\r\n')[0]!))
  }, false)
  return { port: origin.port, heads }
}

const ok = (body: string, more = '') => `HTTP/1.1 200 OK\r\n${more}Content-Length: ${body.length}\r\n\r\n${body}`

t.test('a response head up to 64 KiB passes (node\'s client stops at 16 KiB); a larger one is a 502', async t => {
  const origin = await rawOrigin(t, line => {
    const size = Number(/\/(\d+)/.exec(line)![1])
    return ok('body', `X-Big: ${'b'.repeat(size)}\r\n`)
  })
  const { port } = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'big.test': ['127.0.0.1'] }) })
  const big = await run('curl', ['-sS', '-i', '-x', `http://127.0.0.1:${port}`, `http://big.test:${origin.port}/40000`])
  t.equal(big.code, 0, big.stderr)
  t.match(big.stdout, /^HTTP\/1\.1 200 /)
  t.match(big.stdout, new RegExp(`x-big: b{40000}\\r\\n`, 'i'), 'the 40 kB field whole')
  t.match(big.stdout, /\r\n\r\nbody$/)
  const huge = await exchange(port, [`GET http://big.test:${origin.port}/70000 HTTP/1.1\r\nHost: big.test\r\nConnection: close\r\n\r\n`])
  t.match(huge.data, /^HTTP\/1\.1 502 [\s\S]*Header overflow/, 'past 64 KiB: refused as before')
})

t.test('an upgrade offer is dropped and the request forwarded as a plain one (h2c, WebSocket); a 101 the origin sends anyway is a 502', async t => {
  const origin = await startOrigin(t)
  const { port, ev } = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'up.test': ['127.0.0.1'] }) })
  const h2c = await run('curl', ['-sS', '-i', '--http2', '-x', `http://127.0.0.1:${port}`, `http://up.test:${origin.port}/h2c`])
  t.equal(h2c.code, 0, h2c.stderr)
  t.match(h2c.stdout, /^HTTP\/1\.1 200 /, 'answered over HTTP/1.1')
  const seen = origin.requests.at(-1)!
  t.equal(seen.url, '/h2c')
  t.notOk(seen.headers.upgrade, 'no Upgrade reaches the origin')
  t.notOk(seen.headers['http2-settings'], 'nor what Connection named')
  t.equal(seen.headers.connection, 'keep-alive')
  const ws = await exchange(port, [`GET http://up.test:${origin.port}/ws HTTP/1.1\r\nHost: up.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n`
    + 'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'])
  t.match(ws.data, /^HTTP\/1\.1 200 [\s\S]*\r\nConnection: close\r\n/, 'the origin\'s plain answer, and the connection closes after it')
  t.ok(ws.closed)
  t.notOk(origin.requests.at(-1)!.headers.upgrade)
  t.equal(origin.requests.at(-1)!.headers['sec-websocket-key'], 'dGhlIHNhbXBsZSBub25jZQ==', 'end-to-end fields pass')
  t.match(ev.events.at(-1), { message: 'proxy.http', decision: { action: 'pass' } })

  const rogue = await rawOrigin(t, () => 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nRAW BYTES')
  const r = await exchange(port, [`GET http://up.test:${rogue.port}/ HTTP/1.1\r\nHost: up.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`])
  t.match(r.data, /^HTTP\/1\.1 502 /, 'a switch nobody asked for is refused')
  t.notMatch(r.data, /RAW BYTES|101/)
  t.notMatch(rogue.heads[0]!, /upgrade/i)
})

t.test('1xx from the origin reach the client: 102 Processing, 103 Early Hints with its Link fields; not an HTTP/1.0 client', async t => {
  const origin = await rawOrigin(t, line => (line.includes('/bad') ? 'HTTP/1.1 103 Early Hints\r\nLink: not a link\r\n\r\n'
    : 'HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload; as=style\r\nLink: </b.js>; rel=preload; as=script\r\n'
      + 'X-Hint: 1\r\nConnection: x-hop\r\nX-Hop: 1\r\n\r\nHTTP/1.1 199 Misc\r\n\r\n') + ok('done'))
  const { port } = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'hints.test': ['127.0.0.1'] }) })
  const get = (version: string, path = '/') => exchange(port, [`GET http://hints.test:${origin.port}${path} HTTP/${version}\r\nHost: hints.test\r\nConnection: close\r\n\r\n`])
  const r = await get('1.1')
  t.match(r.data, /^HTTP\/1\.1 102 Processing\r\n\r\nHTTP\/1\.1 103 Early Hints\r\nLink: <\/a\.css>; rel=preload; as=style, <\/b\.js>; rel=preload; as=script\r\n/)
  const early = r.data.slice(r.data.indexOf('HTTP/1.1 103'), r.data.indexOf('HTTP/1.1 200'))
  t.match(early, /\r\nx-hint: 1\r\n/i, 'end-to-end fields of the hints pass')
  t.notMatch(early, /x-hop|connection/i, 'hop-by-hop ones do not')
  t.notMatch(r.data, /HTTP\/1\.1 199/, 'a 1xx with no writer in node is not passed on')
  t.match(r.data, /\r\n\r\nHTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\ndone$/)
  const old = await get('1.0')
  t.match(old.data, /^HTTP\/1\.1 200 OK\r\n[\s\S]*done$/, 'an HTTP/1.0 client gets the final response only')
  const bad = await get('1.1', '/bad')
  t.match(bad.data, /^HTTP\/1\.1 200 OK\r\n[\s\S]*done$/, 'hints node refuses to write are dropped, the response passes')
})

t.test('a 204 goes without the Content-Length its origin gave; Via names the version received, both ways', async t => {
  const origin = await rawOrigin(t, line => (line.includes('/204') ? 'HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX-A: 1\r\n\r\n'
    : line.includes('/old') ? 'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok' : ok('ok')))
  const { port } = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'small.test': ['127.0.0.1'] }) })
  const get = (path: string, version = '1.1') => exchange(port, [`GET http://small.test:${origin.port}${path} HTTP/${version}\r\nHost: small.test\r\nConnection: close\r\n\r\n`])
  const nc = await get('/204')
  t.match(nc.data, /^HTTP\/1\.1 204 No Content\r\n/)
  t.match(nc.data, /\r\nx-a: 1\r\n/i)
  t.notMatch(nc.data, /content-length/i, 'no Content-Length on a 204 (RFC 9110 §8.6)')
  const ten = await get('/ten', '1.0')
  t.match(origin.heads.at(-1)!, /\r\nvia: 1\.0 tunnelguard(\r\n|$)/i, 'an HTTP/1.0 request: Via 1.0 to the origin')
  t.match(ten.data, /\r\nvia: 1\.1 tunnelguard\r\n/i, 'the origin answered in 1.1')
  const old = await get('/old')
  t.match(origin.heads.at(-1)!, /\r\nvia: 1\.1 tunnelguard(\r\n|$)/i)
  t.match(old.data, /\r\nvia: 1\.0 tunnelguard\r\n/i, 'an HTTP/1.0 response: Via 1.0 to the client')
})

t.test('Expect: 100-continue is the origin\'s to answer: its refusal comes before any body byte is sent; its 100 lets the body go', async t => {
  const refusing = await rawOrigin(t, () => 'HTTP/1.1 413 Content Too Large\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbig')
  const { port, ev } = await testProxy(t, {
    config: { proxy: LOOPBACK },
    resolve: fakeResolve({ 'up.test': ['127.0.0.1'] }),
  })
  const body = join(t.testdir({ 'body.bin': 'x'.repeat(200_000) }), 'body.bin')
  const no = await run('curl', ['-sS', '-i', '-x', `http://127.0.0.1:${port}`, '-H', 'Expect: 100-continue', '--expect100-timeout', '5',
    '--data-binary', `@${body}`, `http://up.test:${refusing.port}/upload`])
  t.equal(no.code, 0, no.stderr)
  t.match(no.stdout, /^HTTP\/1\.1 413 /, 'the origin\'s refusal, with no 100 before it')
  t.match(refusing.heads[0]!, /\r\nexpect: 100-continue(\r\n|$)/i, 'the expectation reaches the origin')
  t.ok(await waitFor(() => ev.messages.some(m => m.msg === 'proxy.close')))
  const sent = ev.messages.find(m => m.msg === 'proxy.close')!.fields!['source.bytes'] as number
  t.ok(sent < 2000, `the body was never sent (${sent} bytes from the client)`)

  const origin = await startOrigin(t)                     // node answers the expectation with 100
  const yes = await run('curl', ['-sS', '-v', '-x', `http://127.0.0.1:${port}`, '-H', 'Expect: 100-continue', '--expect100-timeout', '5',
    '--data-binary', `@${body}`, `http://up.test:${origin.port}/upload`])
  t.equal(yes.code, 0, yes.stderr)
  t.equal(yes.stderr.match(/< HTTP\/1\.1 100 Continue/g)?.length, 1, 'one 100, the origin\'s')
  t.match(yes.stderr, /< HTTP\/1\.1 200 /)
  t.equal(origin.requests.at(-1)!.body.length, 200_000, 'the body, whole')
})

t.test('Max-Forwards on TRACE and OPTIONS (RFC 9110 §7.6.2): 0 is answered by the proxy, more is decremented', async t => {
  const origin = await rawOrigin(t, () => ok('origin'))
  const { port, ev } = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'mf.test': ['127.0.0.1'] }) })
  const url = `http://mf.test:${origin.port}/x`
  const curl = (method: string, mf: string, more: string[] = []) =>
    run('curl', ['-sS', '-i', '-X', method, '-H', `Max-Forwards: ${mf}`, ...more, '-x', `http://127.0.0.1:${port}`, url])
  const trace = await curl('TRACE', '0', ['-H', 'Cookie: secret=1', '-H', 'Authorization: Basic c2VjcmV0', '-H', 'X-Probe: yes'])
  t.match(trace.stdout, /^HTTP\/1\.1 200 /)
  t.match(trace.stdout, /content-type: message\/http/i)
  t.match(trace.stdout, /\r\n\r\nTRACE http:\/\/mf\.test:\d+\/x HTTP\/1\.1\r\n/, 'the request as received')
  t.match(trace.stdout, /X-Probe: yes/)
  t.notMatch(trace.stdout, /secret|c2VjcmV0/, 'no cookie or credentials reflected')
  const options = await curl('OPTIONS', '0')
  t.match(options.stdout, /^HTTP\/1\.1 200 /)
  t.match(options.stdout, /allow: GET, HEAD, POST/i)
  t.equal(origin.heads.length, 0, 'neither reached the origin')
  t.match(ev.events.filter(e => e.message === 'proxy.http'), [{ decision: { action: 'pass' } }, { decision: { action: 'pass' } }], 'each still decided and logged')

  t.match((await curl('TRACE', '3')).stdout, /^HTTP\/1\.1 200 [^]*origin$/)
  t.match((await curl('OPTIONS', '1')).stdout, /origin$/)
  t.match((await curl('GET', '0')).stdout, /origin$/, 'other methods: not the proxy\'s to answer')
  t.match((await curl('TRACE', 'x')).stdout, /origin$/, 'a value that is not a number: forwarded as it is')
  t.match(origin.heads.map(h => /max-forwards: (\S+)/i.exec(h)?.[1]), ['2', '0', '0', 'x'])
})

t.test('an answer cut short (fewer bytes than its Content-Length, a chunked body without its last chunk) is a failure on the close line', async t => {
  const origin = await rawHttpOrigin(t, (head, s) => {
    const path = head.split(' ')[1]!
    if (path === '/short') s.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789')
    else if (path === '/chunkcut') s.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n64\r\n123456789')
    else if (path === '/slow') s.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789')   // and the rest never
    else s.write(ok('whole'))
    return false
  }, false)
  const { port, ev } = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'cut.test': ['127.0.0.1'] }) })
  for (const path of ['/short', '/chunkcut']) {
    const r = await run('curl', ['-sS', '-o', '/dev/null', '-x', `http://127.0.0.1:${port}`, `http://cut.test:${origin.port}${path}`])
    t.equal(r.code, 18, `${path}: curl sees the answer cut short (${r.stderr.trim()})`)
    t.ok(await waitFor(() => ev.messages.filter(m => m.msg === 'proxy.close').length === (path === '/short' ? 1 : 2)))
    t.match(ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields,
      { 'http.response.status_code': 200, 'event.outcome': 'failure', 'tunnelguard.failed_requests': 1, 'error.message': /closed before the end of its answer/ }, path)
  }
  const whole = await run('curl', ['-sS', '-x', `http://127.0.0.1:${port}`, `http://cut.test:${origin.port}/whole`])
  t.equal(whole.stdout, 'whole')
  t.ok(await waitFor(() => ev.messages.filter(m => m.msg === 'proxy.close').length === 3))
  t.match(ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields, { 'event.outcome': 'success' }, 'a whole answer: success')
  // the client leaves half-way through an answer: the origin did not fail
  const c = connect(port, '127.0.0.1')
  c.on('error', () => {})
  c.write(`GET http://cut.test:${origin.port}/slow HTTP/1.1\r\nHost: cut.test\r\n\r\n`)
  await new Promise<void>(r => c.once('data', () => r()))
  c.destroy()
  t.ok(await waitFor(() => ev.messages.filter(m => m.msg === 'proxy.close').length === 4))
  const left = ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields as Record<string, unknown>
  t.match(left, { 'http.response.status_code': 200, 'event.outcome': 'success' }, 'the client left: no failure of the origin')
  t.notMatch(String(left['error.message']), /closed before the end of its answer/)
  t.ok(await waitFor(() => origin.open() === 0), 'the origin connection is closed')
})
