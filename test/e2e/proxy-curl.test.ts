import t from 'tap'
import { clientHello, records } from '../fixtures/client-hello.js'
import { exchange, fakeResolve, run, startOrigin, startSServer, startTcpSink, testProxy, waitFor } from '../fixtures/origin.js'

const LOOPBACK = { allowDestinations: ['127.0.0.0/8'] }

t.test('plain HTTP with curl -x: forwarded with clean headers; blocked names get a 403 naming list and entry', async t => {
  const origin = await startOrigin(t)
  const { proxy, port, ev } = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }) })
  const ok = await run('curl', ['-sS', '-i', '-x', `http://127.0.0.1:${port}`, '-U', 'me:secret', '-H', 'Connection: x-drop', '-H', 'X-Drop: 1',
    `http://site.example:${origin.port}/path?q=1`])
  t.equal(ok.code, 0, ok.stderr)
  t.match(ok.stdout, /^HTTP\/1\.1 200/)
  t.match(ok.stdout, /via: 1\.1 tunnelguard/i)
  t.notMatch(ok.stdout, /x-tunnelguard-reason|x-hop/i, 'hop-by-hop and forged control headers stripped from the response')
  const seen = origin.requests[0]!
  t.equal(seen.url, '/path?q=1')
  t.equal(seen.headers.host, `site.example:${origin.port}`)
  t.equal(seen.headers.via, '1.1 tunnelguard')
  t.notOk(seen.headers['proxy-authorization'], 'Proxy-Authorization never reaches the origin')
  t.notOk(seen.headers['x-drop'], 'headers named in Connection are dropped')
  const e = ev.events.find(x => x.message === 'proxy.http')!
  t.match(e, { decision: { action: 'pass', where: 'url' }, destination: { domain: 'site.example', ip: '127.0.0.1', port: origin.port }, urlDomain: 'site.example' })

  const blocked = await run('curl', ['-sS', '-i', '-x', `http://127.0.0.1:${port}`, 'http://edge.NGROK.io/'])
  t.match(blocked.stdout, /^HTTP\/1\.1 403/)
  t.match(blocked.stdout, /x-tunnelguard-reason: sinkhole: edge\.ngrok\.io matches ngrok\.io in list ngrok/i)
  t.match(ev.events.at(-1), { message: 'proxy.http', decision: { action: 'sinkhole', list: 'ngrok', name: 'edge.ngrok.io' } })
  t.equal(origin.requests.length, 1)
  t.ok(await waitFor(() => proxy.openConnections === 0))
  t.equal(ev.messages.filter(m => m.msg === 'proxy.close').length, 2, 'one close line per connection')
  t.match(ev.messages.find(m => m.msg === 'proxy.close')!.fields, {
    'client.ip': '127.0.0.1', 'source.bytes': Number, 'destination.bytes': Number, 'event.duration': Number,
    'event.category': ['network'], 'event.type': ['connection', 'end'],
  })
})

t.test('HTTPS through CONNECT with curl and openssl s_client against openssl s_server', async t => {
  const srv = await startSServer(t, 'secure.example')
  const { proxy, port, ev } = await testProxy(t, {
    config: { proxy: { ...LOOPBACK, connectPorts: [srv.port] } },
    resolve: fakeResolve({ 'secure.example': ['127.0.0.1'], 'x.ngrok.io': ['127.0.0.1'] }),
  })
  const ok = await run('curl', ['-sS', '--cacert', srv.cert, '-x', `http://127.0.0.1:${port}`, `https://secure.example:${srv.port}/`])
  t.equal(ok.code, 0, ok.stderr)
  t.match(ok.stdout, /s_server/)
  t.match(ev.events.at(-1), { message: 'proxy.connect', decision: { action: 'pass' }, sni: 'secure.example', destination: { domain: 'secure.example', ip: '127.0.0.1' } })

  const host = await run('curl', ['-sS', '-x', `http://127.0.0.1:${port}`, `https://x.ngrok.io:${srv.port}/`])
  t.not(host.code, 0)
  t.match(host.stderr, /response 403\b/)
  t.match(ev.events.at(-1), { decision: { action: 'sinkhole', where: 'connect', list: 'ngrok' } })

  const sc = await run('openssl', ['s_client', '-proxy', `127.0.0.1:${port}`, '-connect', `secure.example:${srv.port}`,
    '-servername', 'secure.example', '-CAfile', srv.cert, '-verify_return_error'], 'Q\n')
  t.equal(sc.code, 0, sc.stderr)
  t.match(sc.stdout, /Verification: OK|Verify return code: 0/)

  const fronted = await run('openssl', ['s_client', '-proxy', `127.0.0.1:${port}`, '-connect', `secure.example:${srv.port}`,
    '-servername', 'tunnel.us.ngrok.io'], 'Q\n')
  t.not(fronted.code, 0, 'the tunnel is closed when the SNI is blocked')
  t.match(fronted.stdout + fronted.stderr, /alert access denied/, 'openssl reports the refusal: a fatal access_denied alert')
  t.match(ev.events.at(-1), { decision: { action: 'sinkhole', where: 'sni' }, sni: 'tunnel.us.ngrok.io', extra: { 'tunnelguard.mismatch': true } })
  t.ok(ev.messages.some(m => m.msg === 'proxy.sni_mismatch'))
  t.ok(await waitFor(() => proxy.openConnections === 0))
})

t.test('a real HelloRetryRequest (openssl s_server takes only P-256, s_client offers X25519 first) passes the proxy', async t => {
  const srv = await startSServer(t, 'secure.example', ['-groups', 'P-256'])
  const { proxy, port, ev } = await testProxy(t, {
    config: { proxy: { ...LOOPBACK, connectPorts: [srv.port] } }, resolve: fakeResolve({ 'secure.example': ['127.0.0.1'] }),
  })
  const sc = await run('openssl', ['s_client', '-proxy', `127.0.0.1:${port}`, '-connect', `secure.example:${srv.port}`, '-tls1_3',
    '-groups', 'X25519:P-256', '-servername', 'secure.example', '-CAfile', srv.cert, '-verify_return_error', '-msg'], 'Q\n')
  t.equal(sc.code, 0, sc.stderr)
  // openssl -msg prints the retry request as a first ServerHello
  t.equal(sc.stdout.match(/<<< TLS 1\.3, Handshake \[length [0-9a-f]+\], ServerHello/g)?.length, 2, 'the server did ask for a second hello')
  t.match(sc.stdout, /Verification: OK|Verify return code: 0/)
  t.match(ev.events.at(-1), { decision: { action: 'pass' }, sni: 'secure.example' })
  t.ok(await waitFor(() => proxy.openConnections === 0))
})

t.test('blocked SNI: the target is never contacted; the client is told by an access_denied alert', async t => {
  const sink = await startTcpSink(t)
  const { proxy, port, ev } = await testProxy(t, {
    config: { proxy: { ...LOOPBACK, connectPorts: [sink.port] } },
    resolve: fakeResolve({ 'fine.example': ['127.0.0.1'], 'x.ngrok-free.app': ['127.0.0.1'] }),
  })
  const r = await run('openssl', ['s_client', '-proxy', `127.0.0.1:${port}`, '-connect', `fine.example:${sink.port}`, '-servername', 'connect.ngrok-agent.com'], 'Q\n')
  t.not(r.code, 0)
  t.match(r.stdout + r.stderr, /alert access denied/, 'openssl s_client: "tlsv1 alert access denied"')
  t.equal(sink.accepted(), 0)
  t.ok(await waitFor(() => proxy.openConnections === 0))
  t.match(ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields, {
    'tunnelguard.block_sent': 'tls_alert', 'http.response.status_code': 200, 'error.message': /^blocked: /,
  })

  // the bytes: the 200, then one fatal alert record, access_denied (49), then the close
  const hello = records(clientHello({ names: ['tunnel.us.ngrok.io'] }))
  const raw = await exchange(port, [`CONNECT 127.0.0.1:${sink.port} HTTP/1.1\r\nHost: 127.0.0.1:${sink.port}\r\n\r\n`, hello])
  t.ok(raw.closed)
  t.equal(raw.data.slice(raw.data.indexOf('\r\n\r\n') + 4), '\x15\x03\x03\x00\x02\x02\x31', 'after the 200: alert, fatal, access_denied')
  t.match(raw.data, /^HTTP\/1\.1 200 /)

  // curl, its SNI the name it asks for (the CONNECT names an address)
  const c = await run('curl', ['-sS', '-x', `http://127.0.0.1:${port}`, '--connect-to', `x.ngrok-free.app:443:127.0.0.1:${sink.port}`,
    '--max-time', '5', 'https://x.ngrok-free.app/'])
  t.equal(c.code, 35, c.stderr)
  t.match(c.stderr, /alert access denied/, 'curl: "tlsv1 alert access denied", not an unexplained EOF')
  t.equal(sink.accepted(), 0)
  t.match(ev.events.at(-1), { decision: { action: 'sinkhole', where: 'sni', name: 'x.ngrok-free.app' } })
  t.ok(await waitFor(() => proxy.openConnections === 0))
})

t.test('clients outside allowClients are closed at the accept, with one log line', async t => {
  const { proxy, port, ev } = await testProxy(t, { config: { proxy: { allowClients: ['10.0.0.0/8'] } } })
  const r = await run('curl', ['-sS', '-i', '-x', `http://127.0.0.1:${port}`, 'http://site.example/'])
  t.not(r.code, 0)
  t.equal(r.stdout, '', 'no answer at all')
  const c = await run('curl', ['-sS', '-x', `http://127.0.0.1:${port}`, 'https://site.example/'])
  t.not(c.code, 0)
  t.notMatch(c.stderr, /response 403\b/)
  t.match(ev.messages.filter(m => m.msg === 'proxy.client_denied'), [{ level: 'warn', fields: { 'client.ip': '127.0.0.1', 'tunnelguard.refused': 1 } }],
    'one line for both (once per window)')
  t.equal(ev.counts['dropped.refused'], 2)
  t.equal(ev.counts['conn.proxy'], undefined, 'never counted as a connection')
  t.equal(ev.events.length, 0)
  t.equal(ev.messages.filter(m => m.msg === 'proxy.close').length, 0)
  t.equal(proxy.openConnections, 0)
})
