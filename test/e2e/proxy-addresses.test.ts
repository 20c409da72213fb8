// A name with several addresses: each is dialled in turn until one connects (plain HTTP and
// CONNECT), every one of them checked first; the first refusing is no longer the end of it. The
// families are interleaved, IPv6 first (RFC 8305 §4).
import { createServer } from 'node:http'
import t from 'tap'
import { blackhole, exchange, fakeResolve, run, startOrigin, testProxy, waitFor } from '../fixtures/origin.js'

const LOOPBACK = { allowDestinations: ['127.0.0.0/8', '::1/128'] }

t.test('the next address is dialled when the first refuses: plain HTTP and CONNECT, A and AAAA', async t => {
  const origin = await startOrigin(t)                    // on 127.0.0.1 only: 127.0.0.2 and ::1 refuse
  const { proxy, port, ev } = await testProxy(t, {
    config: { proxy: { ...LOOPBACK, connectPorts: [origin.port] } },
    resolve: fakeResolve({ 'multi.test': ['127.0.0.2', '::1', '127.0.0.1'], 'again.test': ['127.0.0.1', '::1', '127.0.0.2'] }),
  })
  const url = `http://multi.test:${origin.port}/a`
  const plain = await run('curl', ['-sS', '-i', '-x', `http://127.0.0.1:${port}`, url, url])
  t.equal(plain.code, 0, plain.stderr)
  t.equal(plain.stdout.match(/HTTP\/1\.1 200 /g)?.length, 2, `both answered by the third address: ${plain.stdout}`)
  t.equal(origin.requests.length, 2)
  t.equal(origin.requests[0]!.headers.host, `multi.test:${origin.port}`)
  t.match(ev.events.find(e => e.message === 'proxy.http'), { decision: { action: 'pass' }, destination: { domain: 'multi.test', ip: '::1' } },
    'the decision line names the first address dialled, the IPv6 one (RFC 8305 §4; it is written before the dial)')
  t.ok(await waitFor(() => ev.messages.some(m => m.msg === 'proxy.close')))
  t.match(ev.messages.find(m => m.msg === 'proxy.close')!.fields, { 'destination.ip': '127.0.0.1' }, 'its close line names the address that answered')
  const again = await run('curl', ['-sS', '-i', '-x', `http://127.0.0.1:${port}`, `http://again.test:${origin.port}/b`])
  t.match(again.stdout, /^HTTP\/1\.1 200 /, 'the same addresses in another order: the same pool entry (its addresses sorted), served')

  const tunnel = await run('curl', ['-sS', '-i', '-p', '-x', `http://127.0.0.1:${port}`, `http://multi.test:${origin.port}/c`])
  t.equal(tunnel.code, 0, tunnel.stderr)
  t.match(tunnel.stdout, /HTTP\/1\.1 200 Connection established[\s\S]*HTTP\/1\.1 200 OK[\s\S]*"url":"\/c"/)
  t.ok(await waitFor(() => proxy.openConnections === 0))
  const closes = ev.messages.filter(m => m.msg === 'proxy.close').map(m => m.fields)
  t.match(closes.at(-1), { 'destination.domain': 'multi.test', 'destination.ip': '127.0.0.1' }, 'the close line names the address connected to')
  t.notOk(closes.some(c => c!['error.message']), 'no failure on any connection')
})

t.test('every address refusing: 502 naming the last one for plain HTTP, a closed tunnel for CONNECT; an internal one among them still refuses the name', async t => {
  const origin = await startOrigin(t)
  const { proxy, port, ev } = await testProxy(t, {
    config: { proxy: { allowDestinations: ['127.0.0.2/31', '::1/128'], connectPorts: [origin.port] } },
    resolve: fakeResolve({ 'dead.test': ['127.0.0.2', '::1', '127.0.0.3'], 'mixed.test': ['127.0.0.2', '127.0.0.1'] }),
  })
  const plain = await exchange(port, [`GET http://dead.test:${origin.port}/ HTTP/1.1\r\nHost: dead.test:${origin.port}\r\nConnection: close\r\n\r\n`])
  t.match(plain.data, /^HTTP\/1\.1 502 /)
  t.match(plain.data, new RegExp(`X-Tunnelguard-Reason: connect to 127\\.0\\.0\\.3:${origin.port} failed: connect ECONNREFUSED`, 'i'))
  const tunnel = await exchange(port, [`CONNECT dead.test:${origin.port} HTTP/1.1\r\n\r\n`, 'GET / HTTP/1.1\r\nHost: dead.test\r\n\r\n'], { gapMs: 50 })
  t.match(tunnel.data, new RegExp(`^HTTP/1\\.1 200 Connection established\r\n\r\nHTTP/1\\.1 502 Bad Gateway\r\n[^]*X-Tunnelguard-Reason: connect to 127\\.0\\.0\\.3:${origin.port} failed`),
    'the request in the tunnel is answered 502 (the last address tried refused)')
  t.ok(tunnel.closed)
  t.ok(await waitFor(() => proxy.openConnections === 0))
  t.match(ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields, {
    'destination.ip': '127.0.0.3', 'http.response.status_code': 200, 'tunnelguard.unsent_status': 502, 'tunnelguard.failure_sent': 'http_response', 'error.message': `connect to 127.0.0.3:${origin.port} failed: connect ECONNREFUSED 127.0.0.3:${origin.port}`,
  })
  const mixed = await exchange(port, [`GET http://mixed.test:${origin.port}/ HTTP/1.1\r\nHost: mixed.test:${origin.port}\r\nConnection: close\r\n\r\n`])
  t.match(mixed.data, /^HTTP\/1\.1 403 [\s\S]*mixed\.test resolves to 127\.0\.0\.1, which is loopback/)
  t.equal(origin.requests.length, 0, 'nothing reached the origin')
})

t.test('an address that drops the SYN costs the attempt delay, not half the connect timeout: the next is dialled beside it (plain HTTP and CONNECT)', async t => {
  const origin = await startOrigin(t)                    // on 127.0.0.1; 127.0.0.2 on the same port drops every SYN
  await blackhole(t, '127.0.0.2', origin.port)
  // a connect timeout of 20 s: dialled in turn with a share each, the first address took 10 s, and curl gives up at 5
  const { proxy, port, ev } = await testProxy(t, {
    config: { proxy: { ...LOOPBACK, connectPorts: [origin.port] } }, connectTimeout: 20_000,
    resolve: fakeResolve({ 'half.test': ['127.0.0.2', '127.0.0.1'] }),
  })
  const url = `http://half.test:${origin.port}/h`
  const plain = await run('curl', ['-sS', '-i', '-m', '5', '-x', `http://127.0.0.1:${port}`, url])
  t.equal(plain.code, 0, plain.stderr)
  t.match(plain.stdout, /^HTTP\/1\.1 200 /)
  const tunnel = await run('curl', ['-sS', '-i', '-m', '5', '-p', '-x', `http://127.0.0.1:${port}`, `http://half.test:${origin.port}/t`])
  t.equal(tunnel.code, 0, tunnel.stderr)
  t.match(tunnel.stdout, /HTTP\/1\.1 200 Connection established[\s\S]*HTTP\/1\.1 200 OK/)
  t.equal(origin.requests.length, 2)
  t.ok(await waitFor(() => proxy.openConnections === 0))
  const closes = ev.messages.filter(m => m.msg === 'proxy.close').map(m => m.fields)
  t.match(closes.at(-1), { 'destination.domain': 'half.test', 'destination.ip': '127.0.0.1' }, 'the close line names the address that answered')
  t.notOk(closes.some(c => c!['error.message']), 'no failure on any connection')
})


t.test('IPv6 first: a name with A and AAAA answers (A first) is dialled at its IPv6 address, where both answer (plain HTTP and CONNECT)', async t => {
  const origin = await startOrigin(t)                    // on 127.0.0.1
  const v6 = createServer((req, res) => res.end(`v6 ${req.url}`))
  await new Promise<void>(r => v6.listen(origin.port, '::1', r))   // the same port on ::1
  t.teardown(() => { v6.closeAllConnections(); v6.close() })
  const { proxy, port, ev } = await testProxy(t, {
    config: { proxy: { ...LOOPBACK, connectPorts: [origin.port] } },
    resolve: fakeResolve({ 'both.test': ['127.0.0.1', '127.0.0.3', '::1'] }),
  })
  const plain = await run('curl', ['-sS', '-x', `http://127.0.0.1:${port}`, `http://both.test:${origin.port}/p`])
  t.equal(plain.stdout, 'v6 /p', `answered over IPv6 (${plain.stderr})`)
  const tunnel = await run('curl', ['-sS', '-p', '-x', `http://127.0.0.1:${port}`, `http://both.test:${origin.port}/c`])
  t.equal(tunnel.stdout, 'v6 /c', `the tunnel too (${tunnel.stderr})`)
  t.equal(origin.requests.length, 0, 'the IPv4 address, first in the answer, was not needed')
  t.match(ev.events.filter(e => e.message === 'proxy.http' || e.message === 'proxy.connect'), [{ destination: { ip: '::1' } }, { destination: { ip: '::1' } }])
  t.ok(await waitFor(() => proxy.openConnections === 0))
  const closes = ev.messages.filter(m => m.msg === 'proxy.close').map(m => m.fields!)
  t.match(closes, [{ 'destination.ip': '::1' }, { 'destination.ip': '::1' }], 'both connected to ::1')
})
