/**
 * Tests found missing by mutation sampling of the proxy (issue 4): each fails with the plausible
 * regression in src/proxy named in the comment above it, and passes without it.
 */
import { connect, createServer } from 'node:net'
import t from 'tap'
import { startSinkholeCapture } from '../../src/proxy/sinkhole-capture.js'
import { clientHello, records } from '../fixtures/client-hello.js'
import { memoryEvidence } from '../fixtures/evidence.js'
import { makeSnapshot } from '../fixtures/snapshot.js'
import { exchange, fakeResolve, startTcpSink, testProxy, waitFor } from '../fixtures/origin.js'

const CONNECT = (target: string) => `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`

// fails when the close line's event.duration is not the time since the accept (server.ts), or its byte counts are swapped
t.test('the close line counts the bytes each way exactly, and the time the connection was open', async t => {
  const sink = await startTcpSink(t, 'bye')
  const p = await testProxy(t, {
    config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [sink.port] } },
    resolve: fakeResolve({ 'ok.example': ['127.0.0.1'] }),
  })
  const head = CONNECT(`ok.example:${sink.port}`)
  const hello = records(clientHello({ names: ['ok.example'], padding: 3000 }))
  // 300 ms after each piece: the connection is open 600 ms at least before the client ends it
  const r = await exchange(p.port, [head, hello], { gapMs: 300, end: true, waitMs: 5000 })
  const established = 'HTTP/1.1 200 Connection established\r\n\r\n'
  t.equal(r.data, `${established}bye`)
  t.ok(await waitFor(() => p.ev.messages.some(m => m.msg === 'proxy.close')))
  const close = p.ev.messages.find(m => m.msg === 'proxy.close')!.fields!
  t.equal(close['source.bytes'], head.length + hello.length, 'source.bytes: what the client sent')
  t.equal(close['destination.bytes'], established.length + 'bye'.length, 'destination.bytes: what the client was sent')
  t.ok((close['event.duration'] as number) >= 500e6, `event.duration in ns covers the time open (${close['event.duration']})`)
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})

// fails when the target's end is not passed on to the client (relay.ts attach: from 'end' → to.end()), or when the
// upstream socket is not half-open (upstream.ts dial: allowHalfOpen false ends the client's direction with the target's)
t.test('half-close from the target: its end reaches the client, whose later bytes still reach the target', async t => {
  // a target that answers the hello and half-closes at once, and keeps reading what follows
  const got: Buffer[] = []
  let ended = false
  const srv = createServer({ allowHalfOpen: true }, s => {
    s.on('error', () => {})
    s.once('data', () => s.end('server-done'))
    s.on('data', b => got.push(b))
    s.on('end', () => { ended = true })
  })
  await new Promise<void>(r => srv.listen(0, '127.0.0.1', r))
  t.teardown(() => srv.close())
  const port = (srv.address() as { port: number }).port
  const p = await testProxy(t, {
    config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [port] } },
    resolve: fakeResolve({ 'ok.example': ['127.0.0.1'] }),
  })
  const hello = records(clientHello({ names: ['ok.example'] }))
  const c = connect({ port: p.port, host: '127.0.0.1', allowHalfOpen: true })
  c.on('error', () => {})
  t.teardown(() => c.destroy())
  let data = ''
  let clientEnded = false
  c.on('data', b => { data += b.toString('latin1') })
  c.on('end', () => { clientEnded = true })
  c.write(CONNECT(`ok.example:${port}`))
  c.write(hello)
  t.ok(await waitFor(() => clientEnded), 'the target\'s FIN reached the client')
  t.match(data, /^HTTP\/1\.1 200[\s\S]*\r\n\r\nserver-done$/)
  c.end('after the server ended')
  t.ok(await waitFor(() => ended), 'the client\'s FIN reached the target')
  t.equal(Buffer.concat(got).subarray(hello.length).toString('latin1'), 'after the server ended', 'bytes sent after the target half-closed still reach it')
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})

// fails when the sinkhole capture names its own address (socket.localAddress) as the client (sinkhole-capture.ts)
t.test('sinkhole capture: the client logged is the peer, not the listener\'s own address', async t => {
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { proxy: { helloTimeout: '300ms' } } })
  const cap = await startSinkholeCapture({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev, resolve: fakeResolve({}) })
  t.teardown(() => cap.close())
  const port = cap.addresses[0]!.port
  // from 127.0.0.2 (loopback: this host), so that the peer differs from the listener's address
  const s = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' })
  s.on('error', () => {})
  let from = 0
  s.on('connect', () => { from = s.localPort! })
  const closed = new Promise(r => s.on('close', r))
  s.write(records(clientHello({ names: ['x.ngrok.io'] })))
  await closed
  t.ok(await waitFor(() => ev.events.length === 1))
  t.match(ev.events[0], { message: 'sinkhole.capture', sni: 'x.ngrok.io', client: { ip: '127.0.0.2', port: from }, destination: { port } })
  const http = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.3' })
  http.on('error', () => {})
  const closed2 = new Promise(r => http.on('close', r))
  http.write('GET / HTTP/1.1\r\nHost: abc.ngrok-free.app\r\n\r\n')
  await closed2
  t.ok(await waitFor(() => ev.events.length === 2))
  t.match(ev.events[1], { message: 'sinkhole.capture', urlDomain: 'abc.ngrok-free.app', client: { ip: '127.0.0.3' } })
  t.ok(await waitFor(() => cap.openConnections === 0))
})
