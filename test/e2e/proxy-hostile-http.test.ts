import t, { type Test } from 'tap'
import { exchange, fakeResolve, startOrigin, testProxy, waitFor, type Origin, type TestProxy } from '../fixtures/origin.js'

const status = (s: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(s)?.[1] ?? 0)

/** After each hostile case: the proxy still serves a good request and leaves nothing open. */
async function stillServes(t: Test, p: TestProxy, origin: Origin) {
  const before = origin.requests.length
  const r = await exchange(p.port, [`GET http://site.example:${origin.port}/ok HTTP/1.1\r\nHost: site.example:${origin.port}\r\nConnection: close\r\n\r\n`])
  t.equal(status(r.data), 200, 'a good request still works')
  t.equal(origin.requests.length, before + 1)
  t.ok(await waitFor(() => p.proxy.openConnections === 0), 'no connection left open')
}

t.test('request smuggling and malformed framing: 400, nothing smuggled to the origin', async t => {
  const origin = await startOrigin(t)
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'] } }, resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }) })
  const req = (head: string, body = '') => `POST http://site.example:${origin.port}/ HTTP/1.1\r\nHost: site.example:${origin.port}\r\n${head}\r\n${body}`
  const smuggled = `GET http://site.example:${origin.port}/admin HTTP/1.1\r\nHost: site.example\r\n\r\n`
  const cases: [string, string][] = [
    ['CL + TE', req('Content-Length: 4\r\nTransfer-Encoding: chunked\r\n', `0\r\n\r\n${smuggled}`)],
    ['TE + CL', req('Transfer-Encoding: chunked\r\nContent-Length: 4\r\n', `0\r\n\r\n${smuggled}`)],
    ['conflicting CL', req('Content-Length: 4\r\nContent-Length: 40\r\n', 'abcd')],
    ['TE chunked, gzip', req('Transfer-Encoding: chunked, gzip\r\n', `0\r\n\r\n${smuggled}`)],
    ['TE gzip, chunked', req('Transfer-Encoding: gzip, chunked\r\n', `0\r\n\r\n${smuggled}`)],
    ['TE chunked,', req('Transfer-Encoding: chunked,\r\n', `0\r\n\r\n${smuggled}`)],
    ['TE identity', req('Transfer-Encoding: identity\r\n', `0\r\n\r\n${smuggled}`)],
    ['obs-fold TE', req('Transfer-Encoding:\r\n chunked\r\n', `0\r\n\r\n${smuggled}`)],
    ['space before colon', req('Transfer-Encoding : chunked\r\n', `0\r\n\r\n${smuggled}`)],
    ['space before CL', req(' Content-Length: 4\r\n', 'abcd')],
    ['bare LF in chunk size', req('Transfer-Encoding: chunked\r\n', `4\nabcd\r\n0\r\n\r\n${smuggled}`)],
    ['chunk size overflow', req('Transfer-Encoding: chunked\r\n', `ffffffffffffffffff1\r\nabcd\r\n0\r\n\r\n${smuggled}`)],
    ['chunk extension with bare CR', req('Transfer-Encoding: chunked\r\n', `4;a\rb\r\nabcd\r\n0\r\n\r\n${smuggled}`)],
    ['NUL in method', `GE\0T http://site.example/ HTTP/1.1\r\nHost: site.example\r\n\r\n`],
    ['origin-form', 'GET / HTTP/1.1\r\nHost: site.example\r\n\r\n'],
    ['https absolute-form', 'GET https://site.example/ HTTP/1.1\r\nHost: site.example\r\n\r\n'],
    ['bad URL host', 'GET http://a@site.example/ HTTP/1.1\r\nHost: site.example\r\n\r\n'],
    ['bad Host header', `GET http://site.example:${origin.port}/ HTTP/1.1\r\nHost: a b\r\n\r\n`],
  ]
  for (const [name, raw] of cases) {
    const r = await exchange(p.port, [raw])
    // (a coding other than chunked before chunked is 501: the next test)
    t.ok([400, 501].includes(status(r.data)) || (r.data === '' && r.closed), `${name}: refused (${r.data.split('\r\n')[0]})`)
    t.notOk(origin.requests.some(x => x.url === '/admin'), `${name}: nothing smuggled`)
    await stillServes(t, p, origin)
  }
  t.ok(p.ev.counts['dropped.malformed']! > 0)
})

t.test('a request line of another HTTP major version: 505, nothing forwarded (CONNECT too); a URL\'s fragment is not sent on', async t => {
  const origin = await startOrigin(t)
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'] } }, resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }) })
  for (const version of ['2.0', '3.0', '0.9']) {
    const r = await exchange(p.port, [`GET http://site.example:${origin.port}/v HTTP/${version}\r\nHost: site.example\r\n\r\n`])
    if (version === '3.0') t.equal(status(r.data), 400, 'HTTP/3.0: llhttp refuses it itself (400)')
    else t.match(r.data, /^HTTP\/1\.1 505 HTTP Version Not Supported\r\n[\s\S]*X-Tunnelguard-Reason: only HTTP\/1\.x is spoken here/, `HTTP/${version}`)
    t.ok(r.closed)
    const c = await exchange(p.port, [`CONNECT site.example:${origin.port} HTTP/${version}\r\nHost: site.example\r\n\r\n`])
    t.equal(status(c.data), version === '3.0' ? 400 : 505, `CONNECT … HTTP/${version}`)
    await stillServes(t, p, origin)
  }
  t.notOk(origin.requests.some(x => x.url === '/v'), 'none forwarded')
  t.match(p.ev.messages.filter(m => m.msg === 'proxy.close').at(-2)!.fields, { 'http.response.status_code': 505, 'error.message': 'HTTP/0.9: only HTTP/1.x is spoken here' })
  const f = await exchange(p.port, [`GET http://site.example:${origin.port}/a?q=1#frag HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n`])
  t.equal(status(f.data), 200)
  t.equal(origin.requests.at(-1)!.url, '/a?q=1', 'the fragment stays with the client')
})

t.test('a request Transfer-Encoding other than chunked alone: 501 for a coding before chunked, 400 when the length cannot be told; the connection closed', async t => {
  // RFC 9112 §6.1: a transfer coding the server does not understand, SHOULD 501; in HTTP/1.0, the
  // framing is faulty and the connection closes. §6.3: chunked not last, MUST 400 and close; with
  // a Content-Length, TE wins and the connection closes after, or the request is refused: refused.
  const origin = await startOrigin(t)
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'] } }, resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }) })
  const smuggled = `GET http://site.example:${origin.port}/admin HTTP/1.1\r\nHost: site.example\r\n\r\n`
  const cases: [string, string, string, number][] = [
    ['gzip, chunked', '1.1', 'Transfer-Encoding: gzip, chunked', 501],
    ['gzip and chunked, two fields', '1.1', 'Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked', 501],
    ['x-private, chunked', '1.1', 'Transfer-Encoding: x-private, chunked', 501],
    ['chunked, gzip', '1.1', 'Transfer-Encoding: chunked, gzip', 400],
    ['gzip', '1.1', 'Transfer-Encoding: gzip', 400],
    ['identity', '1.1', 'Transfer-Encoding: identity', 400],
    ['chunked;x=1', '1.1', 'Transfer-Encoding: chunked;x=1', 400],
    ['chunked, chunked', '1.1', 'Transfer-Encoding: chunked, chunked', 400],
    ['chunked and Content-Length', '1.1', 'Transfer-Encoding: chunked\r\nContent-Length: 15', 400],
    ['Content-Length and chunked', '1.1', 'Content-Length: 15\r\nTransfer-Encoding: chunked', 400],
    ['chunked in HTTP/1.0, keep-alive', '1.0', 'Transfer-Encoding: chunked\r\nConnection: keep-alive', 400],
  ]
  for (const [name, version, fields, expected] of cases) {
    const lines = p.ev.messages.filter(m => m.msg === 'proxy.close').length
    const r = await exchange(p.port, [`POST http://site.example:${origin.port}/ HTTP/${version}\r\nHost: site.example:${origin.port}\r\n${fields}\r\n\r\n`
      + `5\r\nhello\r\n0\r\n\r\n${smuggled}`])
    t.equal(status(r.data), expected, `${name}: ${expected}`)
    t.match(r.data, /\r\nConnection: close\r\n/i, `${name}: the client is told the connection closes`)
    t.ok(r.closed, `${name}: and it is closed`)
    t.equal(r.data.match(/HTTP\/1\.1 \d{3}/g)?.length, 1, `${name}: one answer`)
    t.notOk(origin.requests.some(x => x.url === '/' || x.url === '/admin'), `${name}: nothing reached the origin`)
    t.ok(await waitFor(() => p.ev.messages.filter(m => m.msg === 'proxy.close').length === lines + 1))
    t.match(p.ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields, { 'http.response.status_code': expected })
    await stillServes(t, p, origin)
  }
})

t.test('chunked DELETE is re-framed; a pipelined second request is decided on its own', async t => {
  const origin = await startOrigin(t)
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'] } }, resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }) })
  const r = await exchange(p.port, [`DELETE http://site.example:${origin.port}/x HTTP/1.1\r\nHost: site.example:${origin.port}\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n`
    + 'GET http://a.ngrok.io/ HTTP/1.1\r\nHost: a.ngrok.io\r\nConnection: close\r\n\r\n'])
  t.match(r.data, /^HTTP\/1\.1 200[\s\S]*HTTP\/1\.1 403/)
  t.same(origin.requests.map(x => [x.method, x.body]), [['DELETE', 'abcd']])
  t.equal(origin.requests[0]!.headers['transfer-encoding'], 'chunked')
  await stillServes(t, p, origin)
})

t.test('header hygiene: forged XFF, Connection listing framing headers, Trailer on GET, upgrade', async t => {
  const origin = await startOrigin(t)
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'] } }, resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }) })
  const huge = Array(1000).fill('6.6.6.6').join(',')
  const r = await exchange(p.port, [`POST http://site.example:${origin.port}/h HTTP/1.1\r\nHost: site.example:${origin.port}\r\nX-Forwarded-For: ${huge}\r\n`
    + 'Connection: close, host, content-length\r\nTrailer: X-Foo\r\nX-Tunnelguard-Reason: forged\r\nContent-Length: 5\r\n\r\nhello'])
  t.equal(status(r.data), 200)
  const seen = origin.requests.at(-1)!
  t.equal(seen.body, 'hello', 'framing kept although Connection lists Content-Length')
  t.equal(seen.headers.host, `site.example:${origin.port}`)
  t.notOk(seen.headers['x-forwarded-for'], 'a client-forged X-Forwarded-For is not passed on')
  t.notOk(seen.headers.trailer)
  t.notOk(seen.headers['x-tunnelguard-reason'])
  t.match(p.ev.events.at(-1), { client: { ip: '127.0.0.1' } }, 'an untrusted XFF does not change the client')
  const up = await exchange(p.port, [`GET http://site.example:${origin.port}/ws HTTP/1.1\r\nHost: site.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`])
  t.equal(status(up.data), 200, 'an upgrade offer is dropped, the request forwarded')
  t.notOk(origin.requests.at(-1)!.headers.upgrade)
  await stillServes(t, p, origin)
})

t.test('oversized and slow headers', async t => {
  const origin = await startOrigin(t)
  const p = await testProxy(t, {
    config: { proxy: { allowDestinations: ['127.0.0.0/8'], maxHeaderBytes: 4096, headerTimeout: '400ms' } },
    resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }),
  })
  const head = (n: number) => `GET http://site.example:${origin.port}/ HTTP/1.1\r\nHost: site.example:${origin.port}\r\nX-Pad: ${'a'.repeat(n)}\r\nConnection: close\r\n\r\n`
  t.equal(status((await exchange(p.port, [head(3500)])).data), 200, 'just under the limit')
  t.equal(status((await exchange(p.port, [head(5000)])).data), 431, 'over the limit')
  const slow = head(10).split('')
  const r = await exchange(p.port, slow, { gapMs: 50, waitMs: 3000 })
  t.equal(status(r.data), 408, 'slowloris: headers not received in time')
  t.ok(r.closed)
  await stillServes(t, p, origin)
})

t.test('URL host and Host header both decided; mismatch logged', async t => {
  const origin = await startOrigin(t)
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'] } }, resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }) })
  const r = await exchange(p.port, [`GET http://site.example:${origin.port}/ HTTP/1.1\r\nHost: x.trycloudflare.com\r\nConnection: close\r\n\r\n`])
  t.equal(status(r.data), 200, 'alert: forwarded')
  t.match(p.ev.events.at(-1), { decision: { action: 'alert', where: 'host' }, extra: { 'tunnelguard.mismatch': true, 'tunnelguard.host_header': 'x.trycloudflare.com' } })
  t.match(p.ev.messages.find(m => m.msg === 'proxy.host_mismatch')!.fields, { 'url.domain': 'site.example', 'tunnelguard.host_header': 'x.trycloudflare.com' })
  const b = await exchange(p.port, [`GET http://site.example:${origin.port}/ HTTP/1.1\r\nHost: edge.ngrok-free.app\r\nConnection: close\r\n\r\n`])
  t.equal(status(b.data), 403)
  t.match(p.ev.events.at(-1), { decision: { action: 'sinkhole', where: 'host' } })
  const h10 = await exchange(p.port, [`GET http://site.example:${origin.port}/ HTTP/1.0\r\n\r\n`])
  t.equal(status(h10.data), 200, 'HTTP/1.0 without Host: decided on the URL')
  await stillServes(t, p, origin)
})

t.test('a CONNECT pipelined after a request is answered after that request\'s response', async t => {
  const origin = await startOrigin(t)
  const p = await testProxy(t, {
    config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [origin.port] } },
    resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }),
  })
  const get = `GET http://site.example:${origin.port}/first HTTP/1.1\r\nHost: site.example:${origin.port}\r\n\r\n`
  for (const [what, connect, answer] of [
    ['allowed', `CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\nHost: x\r\n\r\n`, 'HTTP/1.1 200 Connection established'],
    ['refused', 'CONNECT a.ngrok.io:443 HTTP/1.1\r\nHost: a.ngrok.io:443\r\n\r\n', 'HTTP/1.1 403'],
    ['of HTTP/2.0', `CONNECT 127.0.0.1:${origin.port} HTTP/2.0\r\nHost: x\r\n\r\n`, 'HTTP/1.1 505'],
  ] as const) {
    const r = await exchange(p.port, [get + connect], { waitMs: 1000 })
    const response = r.data.indexOf('"url":"/first"')
    t.ok(response > 0, `${what}: the GET was answered`)
    t.ok(r.data.startsWith('HTTP/1.1 200 OK'), `${what}: its response first`)
    t.ok(r.data.indexOf(answer) > response, `${what}: the CONNECT's answer after the GET's body`)
  }
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})

t.test('plain HTTP to an internal address: 403; a listed name keeps its list match on the refusal', async t => {
  const p = await testProxy(t, { resolve: fakeResolve({ 'intra.example': ['10.1.2.3'], 'inside.trycloudflare.com': ['169.254.169.254'] }) })
  const plain = await exchange(p.port, ['GET http://intra.example/ HTTP/1.1\r\nHost: intra.example\r\n\r\n'])
  t.equal(status(plain.data), 403)
  t.match(plain.data, /intra\.example resolves to 10\.1\.2\.3/)
  t.match(p.ev.events.at(-1), { message: 'proxy.http', decision: { action: 'block', where: 'url', policy: 'proxy.allowDestinations' } })
  t.notOk(p.ev.events.at(-1)!.decision.list)
  const listed = await exchange(p.port, ['GET http://inside.trycloudflare.com/ HTTP/1.1\r\nHost: inside.trycloudflare.com\r\n\r\n'])
  t.equal(status(listed.data), 403)
  t.match(p.ev.events.at(-1), { decision: {
    action: 'block', policy: 'proxy.allowDestinations', list: 'tunnels', entry: { pattern: 'trycloudflare.com' },
    reason: /resolves to 169\.254\.169\.254, which is .*; alert: inside\.trycloudflare\.com/,
  } })
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})

t.test('a Host header that is no name is refused, fail closed, with the reason itself', async t => {
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'] } }, resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }) })
  const r = await exchange(p.port, ['GET http://site.example/ HTTP/1.1\r\nHost: bad..example\r\n\r\n'])
  t.equal(status(r.data), 403)
  t.match(p.ev.events.at(-1), { decision: { action: 'block', where: 'host', unparseable: true } })
  t.notOk(p.ev.events.at(-1)!.decision.entry)
  t.match(r.data, new RegExp(`X-Tunnelguard-Reason: ${p.ev.events.at(-1)!.decision.reason.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`, 'i'))
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})

t.test('a URL host or Host that cannot be normalized: 400, and a block decision line (fail closed); the close line has the port', async t => {
  const origin = await startOrigin(t)
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'] } }, resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }) })
  const closes = () => p.ev.messages.filter(m => m.msg === 'proxy.close')
  const url = await exchange(p.port, ['GET http://bad_name!.ngrok.io/ HTTP/1.1\r\nHost: site.example\r\n\r\n'])
  t.equal(status(url.data), 400)
  t.match(p.ev.events.at(-1), {
    message: 'proxy.http', destination: { domain: 'bad_name!.ngrok.io' }, urlDomain: 'bad_name!.ngrok.io',
    decision: { action: 'block', where: 'url', unparseable: true, reason: /fail closed/ }, extra: { 'http.request.method': 'GET' },
  })
  const host = await exchange(p.port, [`GET http://site.example:${origin.port}/ HTTP/1.1\r\nHost: bad_name!.example:80\r\n\r\n`])
  t.equal(status(host.data), 400)
  t.match(p.ev.events.at(-1), { message: 'proxy.http', destination: { domain: 'bad_name!.example' }, decision: { action: 'block', where: 'host', unparseable: true } })
  t.equal(p.ev.events.at(-1)!.urlDomain, undefined)
  const n = p.ev.events.length
  for (const raw of ['GET http://site.example:0/ HTTP/1.1\r\nHost: site.example\r\n\r\n', 'GET / HTTP/1.1\r\nHost: site.example\r\n\r\n']) {
    t.equal(status((await exchange(p.port, [raw])).data), 400)
  }
  t.equal(p.ev.events.length, n, 'a host that passes, or none: the 400 alone')
  await exchange(p.port, [`GET http://site.example:${origin.port}/ HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n`])
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
  t.match(closes().at(-1)!.fields, { 'destination.domain': 'site.example', 'destination.port': origin.port, 'http.response.status_code': 200 })
})

t.test('several Host fields: 400 whichever comes first (RFC 9112 §3.2), a listed one in any of them logged, nothing forwarded', async t => {
  const origin = await startOrigin(t)
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'] } }, resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }) })
  const url = `http://site.example:${origin.port}/h`
  const lines = () => p.ev.events.filter(e => e.message === 'proxy.http')
  for (const hosts of [[`site.example:${origin.port}`, 'x.ngrok-free.app'], ['x.ngrok-free.app', `site.example:${origin.port}`]]) {
    const before = lines().length
    const r = await exchange(p.port, [`GET ${url} HTTP/1.1\r\n${hosts.map(h => `Host: ${h}\r\n`).join('')}\r\n`])
    t.equal(status(r.data), 400, hosts.join(' then '))
    t.match(r.data, /\r\nx-tunnelguard-reason: 2 Host fields \(RFC 9112, 3\.2: one at most\): blocked, fail closed\r\n/i)
    t.equal(lines().length, before + 1, 'one decision line')
    t.match(lines().at(-1), {
      decision: { action: 'block', list: 'ngrok', name: 'x.ngrok-free.app', where: 'host', reason: /^2 Host fields .*: blocked, fail closed; sinkhole: / },
      extra: { 'http.request.method': 'GET' },
    })
    t.notOk(origin.requests.some(x => x.url === '/h'), 'never forwarded')
    await stillServes(t, p, origin)
  }
  // none listed: refused all the same, and no decision line (as any malformed request)
  const before = lines().length
  const plain = await exchange(p.port, [`GET ${url} HTTP/1.1\r\nHost: site.example:${origin.port}\r\nhost: other.example\r\nHOST: a b\r\n\r\n`])
  t.equal(status(plain.data), 400)
  t.match(plain.data, /x-tunnelguard-reason: 3 Host fields/i)
  t.equal(lines().length, before)
  t.notOk(origin.requests.some(x => x.url === '/h'))
  await stillServes(t, p, origin)
})

t.test('a URL host the proxy cannot take: 400 saying what is wrong with it', async t => {
  const origin = await startOrigin(t)
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'] } }, resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }) })
  for (const [url, why] of [
    ['http://a@site.example/', /^bad host in URL "a@site\.example": userinfo \("user@"\) is no part of a target/],
    ['http://site.example:99999/', /^bad host in URL "site\.example:99999": port 99999 is out of range \(1-65535\)$/],
    ['http://bad_name!.example/', /^bad host in URL "bad_name!\.example": host "bad_name!\.example" is no valid name \(character "!"\)$/],
  ] as const) {
    const r = await exchange(p.port, [`GET ${url} HTTP/1.1\r\nHost: site.example\r\n\r\n`])
    t.equal(status(r.data), 400, url)
    t.match(/\r\nx-tunnelguard-reason: ([^\r]*)\r\n/i.exec(r.data)?.[1], why, url)
  }
  t.equal(origin.requests.length, 0)
  await stillServes(t, p, origin)
})
