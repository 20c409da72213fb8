import { connect, createServer } from 'node:net'
import t from 'tap'
import { clientHello, records } from '../fixtures/client-hello.js'
import { exchange, fakeResolve, startOrigin, startTcpSink, testProxy, waitFor } from '../fixtures/origin.js'

// The proxy's front door reads a client's first bytes itself: a plain CONNECT head goes straight
// to the CONNECT handler, anything else to node's http server. Both paths must decide alike.

const CONNECT = (target: string, extra = '') => `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${extra}\r\n`

/**
 * A slow client: connect, wait `after` ms, write `first` (if any) in one piece, then `head` one
 * byte every `every` ms, never its last byte. Resolves at the close with what the proxy answered
 * and the time since the connect.
 */
function drip(port: number, head: string, after: number, every: number, first = ''): Promise<{ data: string; ms: number }> {
  return new Promise(resolve => {
    const s = connect(port, '127.0.0.1')
    const start = Date.now()
    let data = ''
    let i = 0
    let timer: NodeJS.Timeout | undefined
    s.on('data', b => { data += b.toString('latin1') })
    s.on('error', () => {})
    s.on('close', () => { clearInterval(timer); resolve({ data, ms: Date.now() - start }) })
    setTimeout(() => {
      if (first) s.write(first)
      timer = setInterval(() => { if (i < head.length - 1) s.write(head[i++]!) }, every)
    }, after)
  })
}

t.test('a CONNECT in one segment and the same CONNECT in pieces are decided alike', async t => {
  const sink = await startTcpSink(t, 'bye')
  const p = await testProxy(t, {
    config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [sink.port] } },
    resolve: fakeResolve({ 'ok.example': ['127.0.0.1'] }),
  })
  const target = `ok.example:${sink.port}`
  const okHello = records(clientHello({ names: ['ok.example'] }))
  const badHello = records(clientHello({ names: ['x.ngrok-free.app'] }))
  const shapes: [string, (string | Buffer)[]][] = [
    ['one segment, the hello in it too', [Buffer.concat([Buffer.from(CONNECT(target)), okHello])]],
    ['one segment, then the hello', [CONNECT(target), okHello]],
    ['the head in pieces', [CONNECT(target).slice(0, 9), CONNECT(target).slice(9), okHello]],
  ]
  for (const [what, chunks] of shapes) {
    const r = await exchange(p.port, chunks, { gapMs: 30, waitMs: 1500, end: true })
    t.match(r.data, /^HTTP\/1\.1 200 Connection established\r\n\r\nbye/, `${what}: tunnelled to the origin`)
    t.match(p.ev.events.at(-1), { decision: { action: 'pass' }, sni: 'ok.example', extra: { 'tunnelguard.sni_status': 'ok' } })
  }
  t.equal(sink.accepted(), 3)
  for (const chunks of [[Buffer.concat([Buffer.from(CONNECT(target)), badHello])], [CONNECT(target).slice(0, 20), CONNECT(target).slice(20), badHello]]) {
    const r = await exchange(p.port, chunks, { gapMs: 30 })
    t.ok(r.closed, 'a listed SNI: closed')
    t.match(p.ev.events.at(-1), { decision: { action: 'sinkhole', where: 'sni' }, sni: 'x.ngrok-free.app' })
  }
  const listed = CONNECT(`x.ngrok-free.app:${sink.port}`)
  for (const chunks of [[listed], [listed.slice(0, 5), listed.slice(5)]]) {
    const r = await exchange(p.port, chunks, { gapMs: 30 })
    t.match(r.data, /^HTTP\/1\.1 403 /, 'a listed CONNECT host: 403 on either path')
    t.match(p.ev.events.at(-1), { decision: { action: 'sinkhole', where: 'connect' } })
  }
  t.equal(sink.accepted(), 3, 'blocked tunnels never reached the origin')
  const framed = await exchange(p.port, [CONNECT(target, 'Content-Length: 0\r\n'), okHello], { gapMs: 30, waitMs: 1500, end: true })
  t.match(framed.data, /^HTTP\/1\.1 200 /, 'a head with body framing is parsed by node, and served')
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})

t.test('X-Forwarded-For and a PROXY header are honoured on the fast path from trusted peers only', async t => {
  const sink = await startTcpSink(t, 'bye')
  const hello = records(clientHello({ names: ['ok.example'] }))
  const trusted = await testProxy(t, {
    config: { proxy: { trustForwardedFrom: ['127.0.0.0/8'], allowDestinations: ['127.0.0.0/8'], connectPorts: [sink.port] } },
    resolve: fakeResolve({ 'ok.example': ['127.0.0.1'] }),
  })
  const target = `ok.example:${sink.port}`
  await exchange(trusted.port, [CONNECT(target, 'X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 192.168.7.7\r\n'), hello], { gapMs: 30, waitMs: 1000 })
  t.match(trusted.ev.events.at(-1), { client: { ip: '192.168.7.7' }, decision: { action: 'pass' } }, 'two X-Forwarded-For fields: the last untrusted hop')
  await exchange(trusted.port, [`PROXY TCP4 10.3.3.3 127.0.0.1 4000 ${trusted.port}\r\n${CONNECT(`x.ngrok-free.app:${sink.port}`)}`])
  t.match(trusted.ev.events.at(-1), { client: { ip: '10.3.3.3', port: 4000 }, decision: { action: 'sinkhole', where: 'connect' } }, 'PROXY header and CONNECT in one segment')
  const untrusted = await testProxy(t, {
    config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [sink.port] } },
    resolve: fakeResolve({ 'ok.example': ['127.0.0.1'] }),
  })
  await exchange(untrusted.port, [CONNECT(target, 'X-Forwarded-For: 6.6.6.6\r\n'), hello], { gapMs: 30, waitMs: 1000 })
  t.match(untrusted.ev.events.at(-1), { client: { ip: '127.0.0.1' } }, 'from an untrusted peer the header is ignored')
})

t.test('the header deadline runs from the accept, and a client gone before its first byte is closed', async t => {
  const p = await testProxy(t, { config: { proxy: { headerTimeout: '1000ms' } } })
  // the first byte at 2/3 of the deadline, then a byte every 50 ms: the deadline is not restarted
  // (closed near 1000 ms, where a restarted one closes near 1700: the bound sits between, wide of both)
  const head = CONNECT('a.example:443')
  const late = await drip(p.port, head, 700, 50)
  t.match(late.data, /^HTTP\/1\.1 408 /, 'request headers not received in time')
  t.ok(late.ms < 1500, `closed ${late.ms} ms after the accept: one headerTimeout (1000 ms), not restarted at the first byte (700 + 1000)`)
  const closes = () => p.ev.messages.filter(m => m.msg === 'proxy.close')
  t.ok(await waitFor(() => closes().length === 1))
  t.match(closes()[0]!.fields, { 'http.response.status_code': 408 })
  const silent = await exchange(p.port, [], { waitMs: 2000 })
  t.match(silent.data, /^HTTP\/1\.1 408 /, 'a connection that never sends a byte: 408')
  t.ok(await waitFor(() => closes().length === 2))
  t.match(closes()[1]!.fields, { 'error.message': /no complete request head within proxy.headerTimeout \(1000 ms\)/ })
  const t0 = Date.now()
  const gone = await exchange(p.port, [], { end: true, waitMs: 2000 })
  t.ok(gone.closed, 'FIN before any byte: the proxy closes its side too')
  t.ok(Date.now() - t0 < 500, 'at once, not at the header deadline')
  t.equal(gone.data, '')
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})

t.test('a head over the field limit is refused on either path; one at the limit is read in full', async t => {
  const sink = await startTcpSink(t, 'bye')
  const p = await testProxy(t, {
    config: { proxy: { trustForwardedFrom: ['127.0.0.0/8'], allowClients: ['10.0.0.0/8'], allowDestinations: ['127.0.0.0/8'], connectPorts: [sink.port] } },
    resolve: fakeResolve({ 'ok.example': ['127.0.0.1'] }),
  })
  const target = `ok.example:${sink.port}`
  // a trusted downstream proxy appends its X-Forwarded-For after the client's own fields
  const head = (pad: number) => CONNECT(target, `${'X-Pad: 1\r\n'.repeat(pad)}X-Forwarded-For: 10.1.1.1\r\n`)
  const hello = records(clientHello({ names: ['ok.example'] }))
  for (const [what, chunks] of [['one segment', [head(98)]], ['in pieces', [head(98).slice(0, 30), head(98).slice(30)]]] as const) {
    const r = await exchange(p.port, [...chunks, hello], { gapMs: 30, waitMs: 800, end: true })
    t.match(r.data, /^HTTP\/1\.1 200 /, `100 fields (Host, 98 more, X-Forwarded-For), ${what}: the last one is read`)
    t.match(p.ev.events.at(-1), { client: { ip: '10.1.1.1' } })
  }
  const events = p.ev.events.length
  for (const [what, chunks] of [['one segment', [head(99)]], ['in pieces', [head(99).slice(0, 30), head(99).slice(30)]]] as const) {
    const r = await exchange(p.port, [...chunks], { gapMs: 30, waitMs: 800 })
    t.match(r.data, /^HTTP\/1\.1 431 /, `101 fields, ${what}: 431, not a head cut short`)
    t.ok(r.closed)
  }
  const get = await exchange(p.port, [`GET http://ok.example/ HTTP/1.1\r\nHost: ok.example\r\n${'X-Pad: 1\r\n'.repeat(100)}\r\n`], { waitMs: 800 })
  t.match(get.data, /^HTTP\/1\.1 431 /, 'a plain HTTP request over the limit too')
  t.equal(p.ev.events.length, events, 'nothing decided for the refused heads')
  const closes = () => p.ev.messages.filter(m => m.msg === 'proxy.close').map(m => m.fields)
  t.ok(await waitFor(() => closes().length === 5))
  t.match(closes().at(-1), { 'http.response.status_code': 431, 'error.message': 'more than 100 header fields' })
  t.equal(sink.accepted(), 2)
})

t.test('an Expect that node answers 417 completes a head: no 408 follows', async t => {
  const p = await testProxy(t, { config: { proxy: { headerTimeout: '400ms' } } })
  const r = await exchange(p.port, ['GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nExpect: foo\r\n\r\n'], { waitMs: 1000 })
  t.match(r.data, /^HTTP\/1\.1 417 /)
  t.notMatch(r.data, /HTTP\/1\.[01] 408/, 'no second answer at the header deadline')
  t.equal(p.ev.messages.filter(m => m.msg === 'proxy.close').length, 0, 'the connection is kept open, as node keeps it')
})

t.test('a 417 after a request served: the close line has both answers, not the one before it twice', async t => {
  const origin = await startOrigin(t)
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'] } }, resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }) })
  const get = (expect: string) => `GET http://site.example:${origin.port}/ HTTP/1.1\r\nHost: site.example:${origin.port}\r\n${expect}\r\n`
  const r = await exchange(p.port, [get(''), get('Expect: foo\r\n')], { gapMs: 300, waitMs: 1000 })
  t.match(r.data, /^HTTP\/1\.1 200 [\s\S]*HTTP\/1\.1 417 /)
  t.ok(await waitFor(() => p.ev.messages.some(m => m.msg === 'proxy.close')))
  t.match(p.ev.messages.find(m => m.msg === 'proxy.close')!.fields, {
    'tunnelguard.requests': 2, 'http.response.status_code': undefined, 'tunnelguard.status_codes': [200, 417], 'event.outcome': 'success',
  })
})

t.test('a trusted peer\'s header deadline also runs from the accept (its PROXY header included)', async t => {
  const p = await testProxy(t, { config: { proxy: { headerTimeout: '1000ms', trustForwardedFrom: ['127.0.0.0/8'] } } })
  // at 700 ms the PROXY header (if any) in one piece, then the CONNECT head a byte every 40 ms
  for (const [what, first] of [['no PROXY header', ''], ['a PROXY header first', `PROXY TCP4 10.3.3.3 127.0.0.1 4000 ${p.port}\r\n`]]) {
    const r = await drip(p.port, CONNECT('a.example:443'), 700, 40, first)
    t.match(r.data, /^HTTP\/1\.1 408 /, `${what}: 408`)
    t.ok(r.ms < 1500, `${what}: closed ${r.ms} ms after the accept (first byte at 700, deadline 1000; restarted, 1700)`)
  }
})

t.test('a connection idle before its first byte is closed at proxy.idleTimeout when that is the shorter', async t => {
  const p = await testProxy(t, { config: { proxy: { headerTimeout: '1500ms', idleTimeout: '300ms' } } })
  const t0 = Date.now()
  const silent = await exchange(p.port, [], { waitMs: 3000 })
  t.ok(silent.closed)
  t.equal(silent.data, '', 'closed without an answer, as node closes an idle connection')
  t.ok(Date.now() - t0 < 1000, `closed after ${Date.now() - t0} ms: at the idle timeout, not the header deadline`)
  t.ok(await waitFor(() => p.ev.messages.some(m => m.msg === 'proxy.close')))
  t.match(p.ev.messages.find(m => m.msg === 'proxy.close')!.fields, { 'error.message': /^idle timeout \(proxy.idleTimeout 300 ms\) before a first byte/ })
  // a first byte before the idle timeout: the header deadline (from the accept) applies from then on
  const slow = await drip(p.port, CONNECT('a.example:443'), 100, 100)
  t.match(slow.data, /^HTTP\/1\.1 408 /, 'bytes dripped within the idle time: 408 at the header deadline')
  t.ok(slow.ms >= 1400 && slow.ms < 2300, `408 after ${slow.ms} ms (headerTimeout 1500)`)
})

t.test('a later request on a keep-alive connection has node\'s own header deadline', async t => {
  const origin = await startOrigin(t)
  const p = await testProxy(t, {
    config: { proxy: { allowDestinations: ['127.0.0.0/8'], headerTimeout: '400ms' } },
    resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }),
  })
  const get = `GET http://site.example:${origin.port}/ HTTP/1.1\r\nHost: site.example:${origin.port}\r\n\r\n`
  const r = await exchange(p.port, [get, ...get.split('')], { gapMs: 40, waitMs: 4000 })
  t.match(r.data, /^HTTP\/1\.1 200 [\s\S]*HTTP\/1\.1 408 /, 'the first request served, the dripped second one timed out')
  t.ok(r.closed)
  t.ok(await waitFor(() => p.ev.messages.some(m => m.msg === 'proxy.close')))
  // the connection's answers: a 200, then the 408 (a head refused is no request served, nor failed)
  t.match(p.ev.messages.find(m => m.msg === 'proxy.close')!.fields, {
    'http.response.status_code': undefined, 'tunnelguard.status_codes': [200, 408], 'event.outcome': 'success',
    'error.message': /^ERR_HTTP_REQUEST_TIMEOUT/, 'tunnelguard.requests': 1,
  })
})

t.test('a request answered (an upgrade offer: 502 here) or refused 400 is not also timed out at the header deadline', async t => {
  const p = await testProxy(t, { config: { proxy: { headerTimeout: '300ms' } } })
  // a client that keeps its side open after the proxy's FIN, past the header deadline
  const hold = (req: string) => new Promise<string>(resolve => {
    const s = connect({ port: p.port, host: '127.0.0.1', allowHalfOpen: true })
    let got = ''
    s.on('data', b => { got += b.toString('latin1') })
    s.on('error', () => {})
    s.write(req)
    setTimeout(() => { s.destroy(); resolve(got) }, 700)
  })
  const closes = () => p.ev.messages.filter(m => m.msg === 'proxy.close').map(m => m.fields)
  const upgrade = await hold('GET http://site.example/ws HTTP/1.1\r\nHost: site.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n')
  t.match(upgrade, /^HTTP\/1\.1 502 /, 'forwarded as a plain request: site.example does not resolve')
  t.notMatch(upgrade, /HTTP\/1\.[01] 408/)
  t.ok(await waitFor(() => closes().length === 1))
  t.equal(closes()[0]!['http.response.status_code'], 502, 'no 408 recorded on the close line')
  t.equal(closes()[0]!['tunnelguard.requests'], 1)
  const garbage = await hold('BLAH / HTTP/1.1\r\n\r\n')
  t.match(garbage, /^HTTP\/1\.1 400 /)
  t.notMatch(garbage, /HTTP\/1\.[01] 408/)
  t.ok(await waitFor(() => closes().length === 2))
  t.equal(closes()[1]!['http.response.status_code'], 400, 'the 400 stays the answer on the close line')
})

t.test('small writes cross a tunnel at once both ways (TCP_NODELAY on both legs, no wait for a delayed ACK)', async t => {
  // The origin answers each ping with 'a', and 'b' 5 ms later; the client does the same towards
  // the origin. Under Nagle's algorithm the proxy would hold each 'b' until the peer acknowledged
  // 'a', and a Linux peer delays that ACK by about 40 ms: the gap would be ~41 ms, not ~5.
  const gapsDown: number[] = []
  const gapsUp: number[] = []
  let ta = 0
  const origin = createServer(s => {
    s.setNoDelay(true)
    s.on('error', () => {})
    s.on('data', d => {
      const text = d.toString('latin1')
      if (text.includes('p')) {
        s.write('a')
        setTimeout(() => s.write('b'), 5)
      }
      if (text.includes('A')) ta = performance.now()
      if (text.includes('B')) gapsUp.push(performance.now() - ta)
    })
  })
  await new Promise<void>(r => origin.listen(0, '127.0.0.1', r))
  t.teardown(() => origin.close())
  const port = (origin.address() as { port: number }).port
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [port] } } })
  const c = connect(p.port, '127.0.0.1')
  c.setNoDelay(true)
  c.on('error', () => {})
  t.teardown(() => c.destroy())
  await new Promise(r => c.once('connect', r))
  c.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\n\r\n`)
  await new Promise(r => c.once('data', r))
  const ROUNDS = 9
  await new Promise<void>(resolve => {
    let tA = 0
    c.on('data', d => {
      const text = d.toString('latin1')
      if (text.includes('a')) tA = performance.now()
      if (text.includes('b')) {
        gapsDown.push(performance.now() - tA)
        // then the other way: 'A', 'B' 5 ms later
        c.write('A')
        setTimeout(() => {
          c.write('B')
          if (gapsDown.length < ROUNDS) setTimeout(() => c.write('p'), 10)
          else setTimeout(resolve, 50)
        }, 5)
      }
    })
    // a line of its own first: bytes that could still begin an HTTP request would be read on until they cannot (proxy.nonTls)
    c.write('ping\r\n')
  })
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!
  t.equal(gapsDown.length, ROUNDS)
  t.ok(gapsUp.length >= ROUNDS - 1)
  t.ok(median(gapsDown) < 30, `origin -> client: the second small write came ${median(gapsDown).toFixed(1)} ms after the first (Nagle: ~41)`)
  t.ok(median(gapsUp) < 30, `client -> origin: ${median(gapsUp).toFixed(1)} ms (Nagle: ~41)`)
})
