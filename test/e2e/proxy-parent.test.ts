import { connect, createServer } from 'node:net'
import t, { type Test } from 'tap'
import { blackhole, exchange, fakeResolve, lateListener, run, startOrigin, startSServer, startTcpSink, testProxy, waitFor } from '../fixtures/origin.js'
import { clientHello, records } from '../fixtures/client-hello.js'
import { memoryEvidence } from '../fixtures/evidence.js'
import { makeSnapshot } from '../fixtures/snapshot.js'
import { startProxy } from '../../src/proxy/server.js'
import type { Snapshot } from '../../src/snapshot-types.js'

const CONNECT = (target: string) => `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`
const hello = records(clientHello({ names: ['ok.example'] }))

/** A fake parent proxy answering every request head with `answer` (or never, when undefined). */
async function fakeParent(t: Test, answer?: string) {
  const heads: string[] = []
  const srv = createServer(s => {
    let buf = ''
    s.on('error', () => {})
    s.on('data', b => {
      buf += b.toString('latin1')
      if (!buf.includes('\r\n\r\n')) return
      heads.push(buf)
      buf = ''
      if (answer !== undefined) s.write(answer)
    })
  })
  await new Promise<void>(r => srv.listen(0, '127.0.0.1', r))
  t.teardown(() => srv.close())
  return { port: (srv.address() as { port: number }).port, heads }
}

t.test('a real chain: tunnelguard → tunnelguard parent, CONNECT (curl, TLS) and plain HTTP', async t => {
  const srv = await startSServer(t, 'secure.example')
  const origin = await startOrigin(t)
  const parent = await testProxy(t, {
    config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [srv.port] } },
    resolve: fakeResolve({ 'secure.example': ['127.0.0.1'], 'site.example': ['127.0.0.1'] }),
  })
  const child = await testProxy(t, { config: { proxy: { parent: `http://127.0.0.1:${parent.port}`, connectPorts: [srv.port] } } })
  const r = await run('curl', ['-sS', '--cacert', srv.cert, '-x', `http://127.0.0.1:${child.port}`, `https://secure.example:${srv.port}/`])
  t.equal(r.code, 0, r.stderr)
  t.match(child.ev.events.at(-1), { sni: 'secure.example', decision: { action: 'pass' } })
  t.match(parent.ev.events.at(-1), { sni: 'secure.example', decision: { action: 'pass' } })
  const h = await run('curl', ['-sS', '-x', `http://127.0.0.1:${child.port}`, '-U', 'client:secret', `http://site.example:${origin.port}/p`])
  t.equal(h.code, 0, h.stderr)
  t.equal(origin.requests.at(-1)!.headers.via, '1.1 tunnelguard, 1.1 tunnelguard')
  t.notOk(origin.requests.at(-1)!.headers['proxy-authorization'])
  t.ok(await waitFor(() => child.proxy.openConnections === 0))
  await child.proxy.close()
  t.ok(await waitFor(() => parent.proxy.openConnections === 0), 'the parent only held the child\'s keep-alive connection')
})

t.test('parent credentials are the configured ones, never the client\'s; parent failures', async t => {
  const ok = await fakeParent(t, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi')
  const child = await testProxy(t, { config: { proxy: { parent: `http://u:p%40ss@127.0.0.1:${ok.port}` } } })
  const r = await exchange(child.port, ['GET http://site.example/x HTTP/1.1\r\nHost: site.example\r\nProxy-Authorization: Basic Y2xpZW50\r\nConnection: close\r\n\r\n'])
  t.match(r.data, /^HTTP\/1\.1 200[\s\S]*hi$/)
  t.match(ok.heads[0], /^GET http:\/\/site\.example\/x HTTP\/1\.1\r\n/)
  t.match(ok.heads[0], new RegExp(`proxy-authorization: Basic ${Buffer.from('u:p@ss').toString('base64')}`, 'i'))
  t.notMatch(ok.heads[0], /Y2xpZW50/)
  const tunnel = await exchange(child.port, [CONNECT('site.example:443'), hello])
  t.ok(tunnel.closed, 'CONNECT through a parent that answers 200 with a body (extra bytes): closed')
  t.ok(await waitFor(() => child.proxy.openConnections === 0))
  t.match(ok.heads[1], /^CONNECT site\.example:443 HTTP\/1\.1\r\nHost: site\.example:443\r\nProxy-Authorization: Basic /)
  t.match(child.ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields, { 'http.response.status_code': 200, 'tunnelguard.unsent_status': 502, 'error.message': /bytes after its 200/ })
  t.ok(await waitFor(() => child.proxy.openConnections === 0))
})

/** What a TLS client is sent when its tunnel fails after the 200: a fatal internal_error alert. */
const ALERT = '\x15\x03\x03\x00\x02\x02\x50'
const OK = 'HTTP/1.1 200 Connection established\r\n\r\n'

t.test('parent 407, 502, silence: 502/504 to HTTP clients; after a CONNECT 200, a TLS alert or a 502/504 in the tunnel', async t => {
  const cases: [string, string | undefined, number, RegExp][] = [
    ['407', 'HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n', 502, /authentication \(407\)/],
    ['502', 'HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n', 502, /refused CONNECT .* \(502\)/],
    ['garbage', 'SSH-2.0-x\r\n\r\n', 502, /not HTTP/],
    ['silent', undefined, 504, /did not answer/],
  ]
  for (const [name, answer, status, reason] of cases) {
    const parent = await fakeParent(t, answer)
    const child = await testProxy(t, { config: { proxy: { parent: `http://127.0.0.1:${parent.port}`, idleTimeout: '500ms' } }, connectTimeout: 300 })
    const h = await exchange(child.port, ['GET http://site.example/ HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n'])
    t.match(h.data, new RegExp(`^HTTP/1\\.1 ${status}`), `${name}: HTTP`)
    const c = await exchange(child.port, [CONNECT('site.example:443'), hello])
    t.ok(c.closed, `${name}: CONNECT closed`)
    t.equal(c.data, OK + ALERT, `${name}: the TLS client is sent a fatal internal_error alert after the 200`)
    t.ok(await waitFor(() => child.proxy.openConnections === 0))
    t.match(child.ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields,
      { 'http.response.status_code': 200, 'tunnelguard.unsent_status': status, 'tunnelguard.failure_sent': 'tls_alert', 'error.message': reason, 'event.outcome': 'failure' }, name)
    // plain HTTP inside the tunnel (proxy.nonTls: decide): the request is answered with the status
    const p = await exchange(child.port, [CONNECT('site.example:443'), 'GET /x HTTP/1.1\r\nHost: site.example\r\n\r\n'])
    t.ok(p.closed, `${name}: plain tunnel closed`)
    t.match(p.data, new RegExp(`^${OK}HTTP/1\\.1 ${status} [\\s\\S]*X-Tunnelguard-Reason: [^\\r]*${reason.source}`), `${name}: a ${status} to the request in the tunnel`)
    t.ok(await waitFor(() => child.proxy.openConnections === 0))
    t.match(child.ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields,
      { 'http.response.status_code': 200, 'tunnelguard.unsent_status': status, 'tunnelguard.failure_sent': 'http_response' }, name)
  }
})

t.test('a parent silent after CONNECT, with an idle timeout shorter than the connect timeout: still the alert and a failure at the connect timeout', async t => {
  const parent = await fakeParent(t)
  const child = await testProxy(t, { config: { proxy: { parent: `http://127.0.0.1:${parent.port}`, idleTimeout: '150ms' } }, connectTimeout: 500 })
  const started = Date.now()
  const c = await exchange(child.port, [CONNECT('site.example:443'), hello])
  t.ok(c.closed)
  t.equal(c.data, OK + ALERT, 'the fatal internal_error alert after the 200, not a bare close at the idle timeout')
  t.ok(Date.now() - started >= 450, 'at the connect timeout')
  t.ok(await waitFor(() => child.proxy.openConnections === 0))
  t.match(child.ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields,
    { 'tunnelguard.unsent_status': 504, 'tunnelguard.failure_sent': 'tls_alert', 'error.message': /did not answer/, 'event.outcome': 'failure' })
  // a tunnel that opens keeps its idle timeout
  const ok = await fakeParent(t, 'HTTP/1.1 200 Connection established\r\n\r\n')
  const open = await testProxy(t, { config: { proxy: { parent: `http://127.0.0.1:${ok.port}`, idleTimeout: '150ms' } }, connectTimeout: 500 })
  const o = await exchange(open.port, [CONNECT('site.example:443'), hello], { waitMs: 2000 })
  t.ok(o.closed, 'closed')
  t.ok(await waitFor(() => open.ev.messages.some(m => m.msg === 'proxy.close')))
  t.match(open.ev.messages.find(m => m.msg === 'proxy.close')!.fields, { 'error.message': 'idle timeout', 'event.outcome': 'success' }, 'by its idle timeout once open')
})

t.test('a parent that cannot be reached: 502 (refused) or 504 (no answer to the SYN) before any 200', async t => {
  // a port nobody listens on: port 1, which the kernel never hands out for a bind to port 0 (a
  // freed ephemeral port was twice taken by a listener of a test running alongside: once by one
  // of the fake parents above, once, in CI, by another file's server, which accepted and closed)
  const child = await testProxy(t, { config: { proxy: { parent: 'http://127.0.0.1:1' } } })
  t.match((await exchange(child.port, ['GET http://site.example/ HTTP/1.1\r\nHost: site.example\r\n\r\n'])).data, /^HTTP\/1\.1 502[\s\S]*parent proxy failed/)
  const c = await exchange(child.port, [CONNECT('site.example:443')])
  t.match(c.data, /^HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*X-Tunnelguard-Reason: connect to 127\.0\.0\.1:1 failed: connect ECONNREFUSED/)
  t.ok(c.closed)
  t.ok(await waitFor(() => child.proxy.openConnections === 0))
  t.match(child.ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields, { 'http.response.status_code': 502, 'event.outcome': 'failure', 'error.message': /ECONNREFUSED/ })
  t.notOk('tunnelguard.unsent_status' in (child.ev.messages.filter(m => m.msg === 'proxy.close').at(-1)?.fields ?? { 'tunnelguard.unsent_status': 0 }), 'the client was told: no unsent status')
  t.match(child.ev.events.at(-1), { outcome: 'failure', decision: { action: 'pass', name: 'site.example' }, extra: { 'error.message': /ECONNREFUSED/ } }, 'the decision line says the request failed')
  const lit = await exchange(child.port, [CONNECT('[::ffff:10.0.0.1]:443')])
  t.match(lit.data, /^HTTP\/1\.1 403/, 'address literals are still checked through a parent')
  // a parent whose backlog is full: the SYN goes unanswered, the dial times out
  const port = await blackhole(t, '127.0.0.1', 0, 20)
  const slow = await testProxy(t, { config: { proxy: { parent: `http://127.0.0.1:${port}` } }, connectTimeout: 300 })
  const s = await exchange(slow.port, [CONNECT('site.example:443')])
  t.match(s.data, /^HTTP\/1\.1 504 Gateway Timeout\r\n[\s\S]*timed out/)
  t.ok(await waitFor(() => slow.proxy.openConnections === 0))
  t.match(slow.ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields, { 'http.response.status_code': 504, 'event.outcome': 'failure' })
  // an idle timeout shorter than the connect timeout does not end the dial first, with a bare close
  const short = await testProxy(t, { config: { proxy: { parent: `http://127.0.0.1:${port}`, idleTimeout: '100ms' } }, connectTimeout: 400 })
  const i = await exchange(short.port, [CONNECT('site.example:443')])
  t.match(i.data, /^HTTP\/1\.1 504 Gateway Timeout\r\n/, 'idleTimeout 100ms, connect timeout 400 ms: the 504')
  t.ok(await waitFor(() => short.proxy.openConnections === 0))
  t.match(short.ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields, { 'http.response.status_code': 504, 'event.outcome': 'failure' })
})

t.test('real clients see why: curl gets the 502, or the TLS alert when the parent refuses after the 200', async t => {
  const srv = await startSServer(t, 'secure.example')
  const down = await testProxy(t, { config: { proxy: { parent: 'http://127.0.0.1:1', connectPorts: [srv.port] } } })
  const r = await run('curl', ['-sS', '--cacert', srv.cert, '-x', `http://127.0.0.1:${down.port}`, `https://secure.example:${srv.port}/`])
  t.not(r.code, 0)
  t.match(r.stderr, /CONNECT tunnel failed, response 502|Received HTTP code 502 from proxy after CONNECT/)
  const refusing = await fakeParent(t, 'HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n')
  const child = await testProxy(t, { config: { proxy: { parent: `http://127.0.0.1:${refusing.port}`, connectPorts: [srv.port] } } })
  const a = await run('curl', ['-sS', '--cacert', srv.cert, '-x', `http://127.0.0.1:${child.port}`, `https://secure.example:${srv.port}/`])
  t.equal(a.code, 35, 'a TLS handshake error')
  t.match(a.stderr, /alert internal error/i)
  const o = await run('openssl', ['s_client', '-proxy', `127.0.0.1:${child.port}`, '-connect', `secure.example:${srv.port}`, '-servername', 'secure.example'], '')
  t.match(o.stdout + o.stderr, /alert internal error/i, 'openssl s_client reports the alert')
  t.ok(await waitFor(() => child.proxy.openConnections === 0 && down.proxy.openConnections === 0))
})

t.test('a held parent connection the parent closes, or speaks on, before it is asked: a new one is dialled', async t => {
  const heads: string[] = []
  let accepted = 0
  const srv = createServer(s => {
    const n = ++accepted
    s.on('error', () => {})
    // round 1's held connection: closed while idle (a parent's own idle timeout); round 2's:
    // bytes nobody asked for; the new ones dialled in their place answer CONNECT
    if (n === 1) setTimeout(() => s.end(), 20)
    if (n === 3) s.write('HTTP/1.1 408 Request Timeout\r\n\r\n')
    let buf = ''
    const onHead = (b: Buffer) => {
      buf += b.toString('latin1')
      if (!buf.includes('\r\n\r\n')) return
      heads.push(buf)
      s.write(OK)
      s.off('data', onHead)
      s.on('data', d => s.write(d))                // an echo past the head: the tunnel's bytes come back
    }
    s.on('data', onHead)
  })
  await new Promise<void>(r => srv.listen(0, '127.0.0.1', r))
  t.teardown(() => srv.close())
  const child = await testProxy(t, { config: { proxy: { parent: `http://127.0.0.1:${(srv.address() as { port: number }).port}` } } })
  for (const round of [1, 2]) {
    const c = await exchange(child.port, [CONNECT('site.example:443'), hello], { gapMs: 150, waitMs: 600 })
    t.ok(c.data.startsWith(OK), `round ${round}: the 200`)
    t.ok(c.data.endsWith(hello.toString('latin1')), `round ${round}: the hello went through the parent (echoed back)`)
    t.ok(await waitFor(() => child.proxy.openConnections === 0))
  }
  t.equal(accepted, 4, 'each held connection was dropped and a new one dialled')
  t.equal(heads.length, 2)
  for (const h of heads) t.match(h, /^CONNECT site\.example:443 HTTP\/1\.1\r\n/)
})

t.test('a parent closing before answering, or sending an endless header', async t => {
  const srv = createServer(s => { s.on('error', () => {}); s.once('data', () => s.end()) })
  const big = createServer(s => { s.on('error', () => {}); s.once('data', () => s.write(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(20_000)}`)) })
  const rst = createServer(s => { s.on('error', () => {}); s.once('data', () => s.resetAndDestroy()) })
  await new Promise<void>(r => srv.listen(0, '127.0.0.1', r))
  await new Promise<void>(r => big.listen(0, '127.0.0.1', r))
  await new Promise<void>(r => rst.listen(0, '127.0.0.1', r))
  t.teardown(() => { srv.close(); big.close(); rst.close() })
  for (const [s, re] of [[srv, /closed before answering/], [big, /too large/], [rst, /parent proxy failed: .*ECONNRESET/]] as const) {
    const child = await testProxy(t, { config: { proxy: { parent: `http://127.0.0.1:${(s.address() as { port: number }).port}` } } })
    t.ok((await exchange(child.port, [CONNECT('site.example:443'), hello])).closed)
    t.ok(await waitFor(() => child.proxy.openConnections === 0))
    t.match(child.ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields, { 'error.message': re })
  }
  const sink = await startTcpSink(t)
  t.equal(sink.accepted(), 0)
})

t.test('through a parent, a name\'s CNAME chain is still decided here (CONNECT, SNI and plain HTTP)', async t => {
  const ok = await fakeParent(t, 'HTTP/1.1 200 Connection established\r\n\r\n')
  const resolve = fakeResolve({
    'alias.example': { addresses: ['203.0.113.5'], cnames: ['edge.ngrok-free.app'] },
    'fine.example': { addresses: ['203.0.113.6'], cnames: ['cdn.example'] },
  })
  const child = await testProxy(t, { config: { proxy: { parent: `http://127.0.0.1:${ok.port}` } }, resolve })
  const c = await exchange(child.port, [CONNECT('alias.example:443'), hello])
  t.match(c.data, /^HTTP\/1\.1 403/, 'CONNECT to a name CNAMEd to a tunnel service')
  t.match(child.ev.events.at(-1), { decision: { action: 'sinkhole', where: 'cname', name: 'edge.ngrok-free.app' }, extra: { 'tunnelguard.cnames': ['edge.ngrok-free.app'] } })
  const h = await exchange(child.port, ['GET http://alias.example/x HTTP/1.1\r\nHost: alias.example\r\nConnection: close\r\n\r\n'])
  t.match(h.data, /^HTTP\/1\.1 403/, 'plain HTTP to it')
  const s = await exchange(child.port, [CONNECT('site.example:443'), records(clientHello({ names: ['alias.example'] }))])
  t.match(s.data, /^HTTP\/1\.1 200/)
  t.ok(s.closed, 'an SNI CNAMEd to a tunnel service: closed after the 200')
  t.match(child.ev.events.at(-1), { decision: { action: 'sinkhole', where: 'cname' }, extra: { 'tunnelguard.sni_cnames': ['edge.ngrok-free.app'] } })
  t.equal(ok.heads.length, 0, 'the parent was never asked')
  const f = await exchange(child.port, [CONNECT('fine.example:443'), records(clientHello({ names: ['fine.example'] }))])
  t.match(f.data, /^HTTP\/1\.1 200/)
  await waitFor(() => ok.heads.length === 1)
  t.match(ok.heads[0], /^CONNECT fine\.example:443 /, 'a chain with nothing listed goes to the parent by name')
  t.match(child.ev.events.at(-1), { decision: { action: 'pass' }, extra: { 'tunnelguard.cnames': ['cdn.example'] } })
  t.ok(await waitFor(() => child.proxy.openConnections === 0), "nothing left open")
})

t.test('through a parent, a name that resolves here to an internal address is refused as it is direct', async t => {
  // a public name pointed at 127.0.0.1 or 169.254.169.254 reached the parent's loopback or the
  // metadata service, where the address literal itself was refused
  const ok = await fakeParent(t, 'HTTP/1.1 200 Connection established\r\n\r\n')
  const resolve = fakeResolve({
    'lo.example': { addresses: ['127.0.0.1'], cnames: [] },
    'meta.example': { addresses: ['169.254.169.254'], cnames: [] },
    'mixed.example': { addresses: ['203.0.113.7', '10.0.0.1'], cnames: [] },
    'intranet.example': { addresses: ['10.1.2.3'], cnames: [] },
  })
  const child = await testProxy(t, { config: { proxy: { parent: `http://127.0.0.1:${ok.port}` } }, resolve })
  for (const [name, why] of [['lo.example', /loopback/], ['meta.example', /link-local/], ['mixed.example', /private/]] as const) {
    const c = await exchange(child.port, [CONNECT(`${name}:443`), hello])
    t.match(c.data, /^HTTP\/1\.1 403/, `CONNECT ${name}`)
    t.match(child.ev.events.at(-1), { decision: { action: 'block', reason: why } }, `${name}: a block line, as direct`)
    const h = await exchange(child.port, [`GET http://${name}/latest/meta-data/ HTTP/1.1\r\nHost: ${name}\r\nConnection: close\r\n\r\n`])
    t.match(h.data, /^HTTP\/1\.1 403/, `GET http://${name}/`)
    t.match(h.data, why, `${name}: the reason says which address and why`)
  }
  t.equal(ok.heads.length, 0, 'the parent was never asked')
  // allowDestinations lets an intranet through the parent, as it does direct
  const allowed = await testProxy(t, { config: { proxy: { parent: `http://127.0.0.1:${ok.port}`, allowDestinations: ['10.0.0.0/8'] } }, resolve })
  const i = await exchange(allowed.port, [CONNECT('intranet.example:443'), hello])
  t.match(i.data, /^HTTP\/1\.1 200/)
  await waitFor(() => ok.heads.length === 1)
  t.match(ok.heads[0], /^CONNECT intranet\.example:443 /, 'a listed range: to the parent by name')
  t.ok(await waitFor(() => child.proxy.openConnections === 0 && allowed.proxy.openConnections === 0), 'nothing left open')
})

t.test('through a parent, a reload that takes a destination out of allowDestinations closes the tunnels open to it', async t => {
  const parent = await fakeParent(t, 'HTTP/1.1 200 Connection established\r\n\r\n')
  const snapOf = (dests: string[]): Snapshot => makeSnapshot({ config: { proxy: { listen: ['127.0.0.1:0'], parent: `http://127.0.0.1:${parent.port}`, allowDestinations: dests } } })
  let snap = snapOf(['10.0.0.0/8'])
  const ev = memoryEvidence()
  const proxy = await startProxy({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev, resolve: fakeResolve({ 'intranet.example': { addresses: ['10.1.2.3'], cnames: [] }, 'public.example': { addresses: ['203.0.113.9'], cnames: [] } }) })
  t.teardown(() => proxy.close())
  const open = async (name: string) => {
    const s = connect(proxy.addresses[0]!.port, '127.0.0.1')
    s.on('error', () => {})
    s.write(CONNECT(`${name}:443`) + hello.toString('latin1'))
    let got = ''
    s.on('data', b => { got += b.toString('latin1') })
    await waitFor(() => got.startsWith(OK))
    return s
  }
  const inside = await open('intranet.example')
  const outside = await open('public.example')
  t.ok(await waitFor(() => parent.heads.length === 2), 'both tunnels asked of the parent')
  snap = snapOf([])
  t.match(await proxy.redecide(), { tunnels: 2, closed: 1 })
  t.ok(await waitFor(() => inside.destroyed || inside.closed), 'the tunnel to 10.1.2.3 is closed')
  t.notOk(outside.destroyed, 'the other goes on')
  t.match(ev.events.at(-1), { decision: { action: 'block', reason: /^intranet\.example resolves to 10\.1\.2\.3, which is private/ }, extra: { 'tunnelguard.reload': true } })
  outside.destroy()
})

t.test('a client gone while the parent is dialled: the parent connection made after it is closed at once', async t => {
  // tunnelguard's SYN to the parent goes unanswered until the kernel sends it again, a second
  // later: by then the client has gone
  const parent = await lateListener(t)
  const child = await testProxy(t, { config: { proxy: { parent: `http://127.0.0.1:${parent.port}` } }, connectTimeout: 5000 })
  const c = connect(child.port, '127.0.0.1').on('error', () => {})
  let got = ''
  c.on('data', d => { got += String(d) })
  c.write(CONNECT('site.example:443'))
  await new Promise(r => setTimeout(r, 200))
  t.equal(got, '', 'no answer yet: the parent is being dialled')
  c.resetAndDestroy()
  t.ok(await waitFor(() => parent.closes() === 1, 4000), 'the parent saw the connection dialled for the client, and its close')
  t.ok(await waitFor(() => child.proxy.openConnections === 0))
  t.notMatch(child.ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields, { 'http.response.status_code': Number }, 'nothing was answered')
})

t.test('a client gone while the origin is dialled after its ClientHello: the connection made after it is closed at once', async t => {
  const origin = await lateListener(t)
  const p = await testProxy(t, {
    config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [origin.port] } },
    resolve: fakeResolve({ 'ok.example': ['127.0.0.1'] }), connectTimeout: 5000,
  })
  const c = connect(p.port, '127.0.0.1').on('error', () => {})
  let got = ''
  c.on('data', d => { got += String(d) })
  c.write(CONNECT(`ok.example:${origin.port}`))
  c.write(hello)
  await new Promise(r => setTimeout(r, 300))
  t.equal(got, OK, 'the 200, and nothing from the origin yet')
  c.resetAndDestroy()
  t.ok(await waitFor(() => origin.closes() === 1, 4000), 'the origin saw the connection dialled for the client, and its close')
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})

t.test('a client gone while the parent is asked: the parent connection is closed at once, not at the timeout', async t => {
  const silent = await fakeParent(t)
  const child = await testProxy(t, { config: { proxy: { parent: `http://127.0.0.1:${silent.port}` } }, connectTimeout: 60_000 })
  const c = connect(child.port, '127.0.0.1').on('error', () => {})
  c.write(CONNECT('site.example:443'))
  c.write(hello)
  t.ok(await waitFor(() => silent.heads.length === 1), 'the parent was asked')
  c.resetAndDestroy()
  t.ok(await waitFor(() => child.proxy.openConnections === 0), 'closed long before the 60 s the answer is waited for')
})
