import { connect, type Socket } from 'node:net'
import t from 'tap'
import { exchange, fakeResolve, freePort, startOrigin, startTcpSink, testProxy, waitFor } from '../fixtures/origin.js'
import { clientHello, records } from '../fixtures/client-hello.js'

const CONNECT = (target: string) => `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`
const hello = records(clientHello({ names: ['ok.example'] }))

t.test('ClientHello deadline, idle tunnel, one decision and one close line per connection', async t => {
  const sink = await startTcpSink(t, 'bye')
  const p = await testProxy(t, {
    config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [sink.port], helloTimeout: '300ms', idleTimeout: '600ms' } },
    resolve: fakeResolve({ 'ok.example': ['127.0.0.1'] }),
  })
  const target = `ok.example:${sink.port}`
  const silent = await exchange(p.port, [CONNECT(target)])
  t.ok(silent.closed, 'CONNECT then silence: closed')
  t.match(p.ev.events.at(-1), { extra: { 'tunnelguard.sni_status': 'timeout' } })
  const trickle = await exchange(p.port, [CONNECT(target), ...[...hello].map(b => Buffer.from([b]))], { gapMs: 20 })
  t.ok(trickle.closed, 'a hello trickled past the total deadline: closed')
  const gone = await exchange(p.port, [CONNECT(target), hello.subarray(0, 20)], { end: true })
  t.ok(gone.closed, 'client gone before the hello completed')
  t.match(p.ev.events.at(-1), { extra: { 'tunnelguard.sni_status': 'eof' } })
  t.equal(sink.accepted(), 0)
  const idle = await exchange(p.port, [CONNECT(target), hello], { waitMs: 4000 })
  t.ok(idle.closed, 'an idle tunnel is closed')
  t.equal(sink.accepted(), 1)
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
  const closes = p.ev.messages.filter(m => m.msg === 'proxy.close')
  t.equal(p.ev.events.length, 4)
  t.equal(closes.length, 4, 'one close line per connection')
  t.match(closes.at(-1)!.fields, { 'error.message': 'idle timeout', 'tls.client.server_name': 'ok.example', 'destination.ip': '127.0.0.1' })
  t.equal(p.ev.counts['conn.proxy'], 0)
  t.ok(p.ev.counts['bytes.up']! > hello.length)
})

t.test('maximum connections: 503, and the slot is released on close', async t => {
  const origin = await startOrigin(t)
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'], maxConnections: 2 } }, resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }) })
  const hold: Socket[] = []
  for (let i = 0; i < 2; i++) {
    const s = connect(p.port, '127.0.0.1')
    s.on('error', () => {})
    hold.push(s)
  }
  t.teardown(() => hold.forEach(s => s.destroy()))
  t.ok(await waitFor(() => p.proxy.openConnections === 2))
  const over = await exchange(p.port, ['GET http://site.example/ HTTP/1.1\r\nHost: site.example\r\n\r\n'])
  t.match(over.data, /^HTTP\/1\.1 503[\s\S]*Retry-After: 1/)
  t.equal(p.ev.counts['dropped.overload'], 1)
  hold[0]!.destroy()
  t.ok(await waitFor(() => p.proxy.openConnections === 1))
  const ok = await exchange(p.port, [`GET http://site.example:${origin.port}/ HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n`])
  t.match(ok.data, /^HTTP\/1\.1 200/)
})

t.test('resets, aborts, timeouts and refusals on either side', async t => {
  const origin = await startOrigin(t)
  const sink = await startTcpSink(t)
  const closed = await freePort()
  const p = await testProxy(t, {
    config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [sink.port, closed], idleTimeout: '700ms' } },
    resolve: fakeResolve({ 'ok.example': ['127.0.0.1'] }),
  })
  const s = connect(p.port, '127.0.0.1')
  s.on('error', () => {})
  s.write(CONNECT(`ok.example:${sink.port}`))
  s.write(hello)
  t.ok(await waitFor(() => sink.accepted() === 1))
  s.resetAndDestroy()
  t.ok(await waitFor(() => p.proxy.openConnections === 0), 'client RST mid-tunnel: both sides closed')
  const abort = connect(p.port, '127.0.0.1')
  abort.on('error', () => {})
  abort.write(`GET http://ok.example:${origin.port}/slow HTTP/1.1\r\nHost: ok.example\r\n\r\n`)
  t.ok(await waitFor(() => origin.open() === 1))
  abort.destroy()
  t.ok(await waitFor(() => p.proxy.openConnections === 0 && origin.open() === 0), 'client abort mid-response: upstream closed too')
  const slow = await exchange(p.port, [`GET http://ok.example:${origin.port}/slow HTTP/1.1\r\nHost: ok.example\r\n\r\n`])
  t.match(slow.data, /^HTTP\/1\.1 504/, 'origin silent: 504')
  const refused = await exchange(p.port, [`GET http://ok.example:${closed}/ HTTP/1.1\r\nHost: ok.example\r\n\r\n`])
  t.match(refused.data, /^HTTP\/1\.1 502/, 'origin refuses: 502')
  const tunnel = await exchange(p.port, [CONNECT(`ok.example:${closed}`), hello])
  t.ok(tunnel.closed, 'dial failure after the 200: closed')
  t.ok(await waitFor(() => p.proxy.openConnections === 0 && p.ev.messages.filter(m => m.msg === 'proxy.close').length === 5))
  t.match(p.ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields, { 'http.response.status_code': 200, 'tunnelguard.unsent_status': 502, 'error.message': /ECONNREFUSED/ })
})

t.test('connections reset right after the connect: no line without a client, and the proxy serves on', async t => {
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'] } } })
  for (let i = 0; i < 20; i++) {
    const s = connect(p.port, '127.0.0.1')
    s.on('error', () => {})
    s.on('connect', () => s.resetAndDestroy())
  }
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
  await new Promise(r => setTimeout(r, 100))
  const lines = [...p.ev.messages.map(m => m.fields), ...p.ev.events.map(e => e.client as unknown as Record<string, unknown>)]
  t.equal(lines.filter(f => f !== undefined && ('client.ip' in f || 'ip' in f) && (f['client.ip'] ?? f['ip']) === undefined).length, 0,
    'every line that names a client has its address')
  const r = await exchange(p.port, ['GET http://x.ngrok-free.app/ HTTP/1.1\r\nHost: x.ngrok-free.app\r\n\r\n'])
  t.match(r.data, /^HTTP\/1\.1 403 /, 'the next request is answered')
})
