import { connect, createServer } from 'node:net'
import t from 'tap'
import { ReadRelay } from '../../src/proxy/relay.js'
import { startProxy } from '../../src/proxy/server.js'
import { memoryEvidence } from '../fixtures/evidence.js'
import { makeSnapshot } from '../fixtures/snapshot.js'
import { blackhole, exchange, fakeResolve, startOrigin, startTcpSink, testProxy, waitFor } from '../fixtures/origin.js'
import { clientHello, records } from '../fixtures/client-hello.js'

const CONNECT = (target: string) => `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`
const hello = records(clientHello({ names: ['ok.example'] }))

t.test('address literals, CNAME chains on plain HTTP, a stalled body', async t => {
  const origin = await startOrigin(t)
  const sink = await startTcpSink(t, 'bye')
  const p = await testProxy(t, {
    config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [sink.port], idleTimeout: '700ms' } },
    resolve: fakeResolve({
      'alias.example': { addresses: ['127.0.0.1'], cnames: ['edge.ngrok-free.app'] },
      'chain.example': { addresses: ['127.0.0.1'], cnames: ['a.example', 'x.trycloudflare.com', 'b.example'] },
    }),
  })
  const lit = await exchange(p.port, [CONNECT(`127.0.0.1:${sink.port}`), hello], { end: true })
  t.match(lit.data, /bye$/, 'an allowed address literal is dialled')
  t.match(p.ev.events.at(-1), { decision: { name: '127.0.0.1', reason: 'an address, not a name' }, extra: { 'tunnelguard.mismatch': true } })
  const blocked = await exchange(p.port, [`GET http://alias.example:${origin.port}/ HTTP/1.1\r\nHost: alias.example\r\nConnection: close\r\n\r\n`])
  t.match(blocked.data, /^HTTP\/1\.1 403[\s\S]*edge\.ngrok-free\.app/)
  const chain = await exchange(p.port, [`GET http://chain.example:${origin.port}/ HTTP/1.1\r\nHost: chain.example\r\nConnection: close\r\n\r\n`])
  t.match(chain.data, /^HTTP\/1\.1 200/)
  t.match(p.ev.events.at(-1), { decision: { action: 'alert', where: 'cname', name: 'x.trycloudflare.com' }, extra: { 'tunnelguard.cnames': ['a.example', 'x.trycloudflare.com', 'b.example'] } })
  const stall = await exchange(p.port, [`GET http://chain.example:${origin.port}/stall HTTP/1.1\r\nHost: chain.example\r\n\r\n`])
  t.match(stall.data, /^HTTP\/1\.1 200[\s\S]*partial$/, 'a body stalled past the idle timeout: cut')
  t.ok(stall.closed)
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
  t.match(p.ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields, { 'http.response.status_code': 200, 'error.message': /did not answer in time/ },
    'the close line keeps the 200 the client got, with the error')
})

t.test('the client leaves while the name resolves or the parent answers', async t => {
  const slow = { 'ok.example': ['127.0.0.1'] }
  const p = await testProxy(t, {
    config: { proxy: { allowDestinations: ['127.0.0.0/8'] } },
    resolve: name => new Promise(r => setTimeout(() => r(fakeResolve(slow)(name)), 300)),
  })
  const c = connect(p.port, '127.0.0.1')
  c.on('error', () => {})
  c.write(CONNECT('ok.example:443'))
  await new Promise(r => setTimeout(r, 50))
  c.destroy()
  t.ok(await waitFor(() => p.ev.events.length === 1))
  t.match(p.ev.events[0], { extra: { 'tunnelguard.sni_status': 'eof' } })

  const parent = createServer(s => {
    s.on('error', () => {})
    s.once('data', () => setTimeout(() => s.write('HTTP/1.1 200 OK\r\n\r\n'), 500))
  })
  await new Promise<void>(r => parent.listen(0, '127.0.0.1', r))
  t.teardown(() => parent.close())
  const child = await testProxy(t, { config: { proxy: { parent: `http://127.0.0.1:${(parent.address() as { port: number }).port}`, idleTimeout: '200ms' } } })
  const d = await exchange(child.port, [CONNECT('ok.example:443'), hello], { waitMs: 2000 })
  t.ok(d.closed, 'idle while the parent answers: closed')
  t.ok(await waitFor(() => child.proxy.openConnections === 0), 'the parent tunnel opened after the client left is closed')
})

t.test('through a parent: IPv6 literals keep their brackets; a query without a path; closing with tunnels open', async t => {
  const heads: string[] = []
  const parent = createServer(s => {
    s.on('error', () => {})
    s.on('data', b => {
      heads.push(b.toString())
      s.write(b.toString().startsWith('CONNECT') ? 'HTTP/1.1 200 OK\r\n\r\n' : 'HTTP/1.1 204 No Content\r\n\r\n')
    })
  })
  await new Promise<void>(r => parent.listen(0, '127.0.0.1', r))
  t.teardown(() => parent.close())
  const child = await testProxy(t, { config: { proxy: { parent: `http://127.0.0.1:${(parent.address() as { port: number }).port}` } } })
  await exchange(child.port, ['GET http://[2001:db8::1]:8080?x=1 HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\nConnection: close\r\n\r\n'])
  t.match(heads[0], /^GET http:\/\/\[2001:db8::1\]:8080\/\?x=1 HTTP\/1\.1\r\n[\s\S]*host: \[2001:db8::1\]:8080/i)
  // ECS url.domain keeps an IPv6 literal's brackets (RFC 2732)
  t.match(child.ev.events.at(-1), { message: 'proxy.http', urlDomain: '[2001:db8::1]' })
  const c = connect(child.port, '127.0.0.1')
  c.on('error', () => {})
  c.write(CONNECT('[2001:db8::1]:443'))
  c.write(hello)
  t.ok(await waitFor(() => heads.length === 3))
  t.match(heads[1], /^CONNECT \[2001:db8::1\]:443 /)
  t.ok(heads[2] === hello.toString(), 'the hello follows the parent\'s 200')
  t.equal(child.proxy.openConnections, 2)
  await child.proxy.close()
  t.ok(await waitFor(() => child.proxy.openConnections === 0), 'close() ends the tunnels')
  c.destroy()
})

t.test('plain HTTP to a name that does not resolve: 502', async t => {
  const p = await testProxy(t, { resolve: fakeResolve({}) })
  const r = await exchange(p.port, ['GET http://nx.example/ HTTP/1.1\r\nHost: nx.example\r\nConnection: close\r\n\r\n'])
  t.match(r.data, /^HTTP\/1\.1 502[\s\S]*cannot resolve nx\.example: NXDOMAIN/)
})

t.test('a bad listen address fails startProxy and releases what was bound', async t => {
  const ev = memoryEvidence()
  const snap = makeSnapshot()
  await t.rejects(startProxy({ listen: ['127.0.0.1:0', 'nonsense'], getSnapshot: () => snap, evidence: ev, resolve: fakeResolve({}) }), /bad listen address/)
  const busy = createServer().listen(0, '127.0.0.1')
  await new Promise(r => busy.once('listening', r))
  t.teardown(() => busy.close())
  await t.rejects(startProxy({ listen: [`127.0.0.1:${(busy.address() as { port: number }).port}`], getSnapshot: () => snap, evidence: ev, resolve: fakeResolve({}) }), /EADDRINUSE/)
})

t.test('an origin that never completes the TCP handshake: the dial times out (the 200 sent, a TLS alert, and 504 on the close line)', async t => {
  const port = await blackhole(t, '127.0.0.1', 0, 20)
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [port] } }, resolve: fakeResolve({ 'ok.example': ['127.0.0.1'] }), connectTimeout: 300 })
  const c = await exchange(p.port, [CONNECT(`ok.example:${port}`), hello])
  t.ok(c.closed)
  t.equal(c.data, 'HTTP/1.1 200 Connection established\r\n\r\n\x15\x03\x03\x00\x02\x02\x50', 'the TLS client is sent a fatal internal_error alert')
  t.ok(await waitFor(() => p.ev.messages.some(m => m.msg === 'proxy.close')))
  t.match(p.ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields, { 'http.response.status_code': 200, 'tunnelguard.unsent_status': 504, 'tunnelguard.failure_sent': 'tls_alert', 'error.message': /timed out/ })
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})

t.test("a direct tunnel's upstream is read through a ReadRelay, released when the tunnel closes", async t => {
  const sink = await startTcpSink(t, 'bye')
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [sink.port] } } })
  const before = ReadRelay.open
  const c = connect(p.port, '127.0.0.1')
  let data = ''
  c.on('data', b => { data += b.toString('latin1') })
  const closed = new Promise(r => c.on('close', r))
  c.write(CONNECT(`127.0.0.1:${sink.port}`))
  c.write(hello)
  t.ok(await waitFor(() => sink.received[0]?.length === hello.length), 'the hello reached the upstream')
  t.equal(ReadRelay.open, before + 1, 'one relay open while the tunnel is')
  c.end()                                          // half-close: the sink answers bye, then ends
  await closed
  t.match(data, /^HTTP\/1\.1 200[\s\S]*\r\n\r\nbye$/, "the upstream's bytes and its end came through the relay")
  t.ok(await waitFor(() => ReadRelay.open === before), 'released')
})
