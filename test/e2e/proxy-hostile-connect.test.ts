import t, { type Test } from 'tap'
import { exchange, fakeResolve, startTcpSink, testProxy, waitFor, type TestProxy } from '../fixtures/origin.js'
import { clientHello, records, sniBody } from '../fixtures/client-hello.js'
import { startRetryServer } from '../fixtures/retry-server.js'

const CONNECT = (target: string) => `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`
const status = (s: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(s)?.[1] ?? 0)
const bytes = (b: Buffer) => [...b].map(x => Buffer.from([x]))

async function setup(t: Test, proxy: Record<string, unknown> = {}) {
  const sink = await startTcpSink(t, 'bye')
  const resolve = fakeResolve({ 'ok.example': ['127.0.0.1'] })
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [sink.port], ...proxy } }, resolve })
  return { sink, p, target: `ok.example:${sink.port}` }
}

/** After each hostile case: a good tunnel still works (half-close kept) and nothing is left open. */
async function stillServes(t: Test, p: TestProxy, sink: Awaited<ReturnType<typeof startTcpSink>>) {
  const hello = records(clientHello({ names: ['ok.example'] }))
  const before = sink.accepted()
  const r = await exchange(p.port, [CONNECT(`ok.example:${sink.port}`), hello], { end: true })
  t.match(r.data, /^HTTP\/1\.1 200[\s\S]*bye$/, 'a good tunnel still works, and survives the client half-close')
  t.equal(sink.accepted(), before + 1)
  t.ok(sink.received.at(-1)!.equals(hello), 'the target got the ClientHello bytes exactly')
  t.ok(await waitFor(() => p.proxy.openConnections === 0), 'no connection left open')
}

t.test('ClientHello dripped a byte at a time across records: allowed and blocked', async t => {
  const { sink, p, target } = await setup(t)
  const hs = clientHello({ names: ['ok.example'] })
  const sniAt = hs.indexOf(Buffer.from('ok.example'))
  const hello = records(hs, [sniAt + 2, 5])
  const r = await exchange(p.port, [CONNECT(target), ...bytes(hello)], { gapMs: 1, end: true })
  t.match(r.data, /bye$/)
  t.ok(sink.received[0]!.equals(hello))
  const ev = p.ev.events.at(-1)!
  t.match(ev, { message: 'proxy.connect', sni: 'ok.example', decision: { action: 'pass' }, extra: { 'tunnelguard.sni_status': 'ok' } })
  const bad = clientHello({ names: ['evil.ngrok.io'] })
  const badRecs = records(bad, [bad.indexOf(Buffer.from('ngrok')), 3])
  const b = await exchange(p.port, [CONNECT(target), ...bytes(badRecs)], { gapMs: 1 })
  t.ok(b.closed)
  t.equal(sink.accepted(), 1, 'the target is never contacted')
  t.match(p.ev.events.at(-1), { decision: { action: 'sinkhole', where: 'sni', name: 'evil.ngrok.io' } })
  await stillServes(t, p, sink)
})

t.test('SNI edge cases', async t => {
  const { sink, p, target } = await setup(t)
  const cases: [string, Buffer, string, string][] = [
    ['several names, the second listed', records(clientHello({ names: ['ok.example', 'x.ngrok.io'] })), 'block', 'invalid'],
    ['two server_name extensions', records(clientHello({ sniBodies: [sniBody([[0, Buffer.from('ok.example')]]), sniBody([[0, Buffer.from('x.ngrok.io')]])] })), 'block', 'invalid'],
    ['empty SNI', records(clientHello({ names: [''] })), 'block', 'invalid'],
    ['upper case and trailing dot', records(clientHello({ names: ['X.NGROK.IO.'] })), 'sinkhole', 'ok'],
    ['very long name', records(clientHello({ names: [`${'a.'.repeat(150)}example`] })), 'block', 'ok'],
    ['NUL in name', records(clientHello({ names: ['ok.example\0.ngrok.io'] })), 'block', 'invalid'],
    ['a newline in the name (a forged report row)', records(clientHello({ names: ['ok.example\nCLIENT 10.9.9.9'] })), 'block', 'invalid'],
    ['oversized hello', records(clientHello({ names: ['ok.example'], padding: 40_000 })), 'block', 'invalid'],
    ['an alert record inside the hello', Buffer.from([0x16, 3, 1, 0, 1, 1, 0x15, 3, 1, 0, 2, 2, 40]), 'block', 'invalid'],
    // Go's TLS server skips a warning alert sent first, then routes on the hello's SNI: not "not TLS"
    ['a warning alert before the hello', Buffer.concat([Buffer.from([0x15, 3, 1, 0, 2, 1, 90]), records(clientHello({ names: ['ok.example'] }))]), 'block', 'invalid'],
  ]
  for (const [name, hello, action, sniStatus] of cases) {
    const r = await exchange(p.port, [CONNECT(target), hello])
    t.equal(status(r.data), 200, name)
    t.ok(r.closed, `${name}: closed`)
    t.match(p.ev.events.at(-1), { decision: { action }, extra: { 'tunnelguard.sni_status': sniStatus } }, name)
    t.equal(sink.accepted(), 0, `${name}: target never contacted`)
    t.ok(await waitFor(() => p.proxy.openConnections === 0))
  }
  const passing: [string, Buffer, string][] = [
    ['no SNI: decided on the CONNECT host', records(clientHello({ names: null })), 'none'],
    ['not TLS: decided on the CONNECT host', Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'), 'not-tls'],
    ['ECH outer hello', records(clientHello({ names: ['ok.example'], extra: [[0xfe0d, Buffer.alloc(16)]] })), 'ok'],
    ['an address in SNI', records(clientHello({ names: ['127.0.0.1'] })), 'ok'],
  ]
  for (const [name, first, sniStatus] of passing) {
    const r = await exchange(p.port, [CONNECT(target), first], { end: true })
    t.match(r.data, /bye$/, name)
    t.match(p.ev.events.at(-1), { decision: { action: 'pass' }, extra: { 'tunnelguard.sni_status': sniStatus } }, name)
    t.ok(sink.received.at(-1)!.equals(first))
  }
  t.match(p.ev.events.at(-1), { extra: { 'tunnelguard.mismatch': true } })
  t.match(p.ev.events.at(-2), { extra: { 'tunnelguard.ech': true } })
  await stillServes(t, p, sink)
})

t.test('CONNECT to internal addresses by name and by address tricks', async t => {
  const sink = await startTcpSink(t)
  const resolve = fakeResolve({
    'localhost.example': ['127.0.0.1'], 'meta.example': ['169.254.169.254'], 'mixed.example': ['203.0.113.9', '10.0.0.1'],
    'ula.example': ['fd00::1'], 'alibaba.example': ['100.100.100.200'], 'empty.example': [],
    'alias.example': { addresses: ['203.0.113.9'], cnames: ['edge.ngrok-free.app'] },
    'inside.trycloudflare.com': ['10.0.0.1'],
  })
  const p = await testProxy(t, { config: { proxy: { connectPorts: [443, sink.port] } }, resolve })
  const forbidden = ['127.0.0.1:443', '2130706433:443', '0177.0.0.1:443', '0x7f.1:443', '127.1:443', '[::ffff:127.0.0.1]:443', '[::1]:443',
    '169.254.169.254:443', '[fe80::1]:443', '0.0.0.0:443', '10.0.0.1:443', '100.100.100.200:443', 'localhost.example:443', 'meta.example:443',
    'mixed.example:443', 'ula.example:443', 'alibaba.example:443', `127.0.0.1:${sink.port}`, `localhost.example:${sink.port}`]
  for (const target of forbidden) {
    const r = await exchange(p.port, [CONNECT(target)])
    t.equal(status(r.data), 403, target)
    t.match(r.data, /allowDestinations/)
  }
  t.equal(sink.accepted(), 0)
  t.match(p.ev.events.at(-1), { decision: { action: 'block', where: 'connect', policy: 'proxy.allowDestinations' }, extra: { 'error.message': /127\.0\.0\.1, which is loopback/ } })
  t.notOk(p.ev.events.at(-1)!.decision.list, 'a refusal by the proxy\'s rules alone names no list')
  for (const target of ['x.example:22', 'x.example:6379', 'x.example:3128']) {
    const r = await exchange(p.port, [CONNECT(target)])
    t.match(r.data, /^HTTP\/1\.1 403[\s\S]*connectPorts/, target)
    t.match(p.ev.events.at(-1), { decision: { action: 'block', name: 'x.example', policy: 'proxy.connectPorts' } })
    t.notOk(p.ev.events.at(-1)!.decision.entry)
  }
  // a listed name (the tunnels list only alerts) refused by the proxy's rules keeps its list match
  const port = await exchange(p.port, [CONNECT('x.trycloudflare.com:8443')])
  t.match(port.data, /^HTTP\/1\.1 403[\s\S]*connectPorts/)
  t.match(p.ev.events.at(-1), { decision: {
    action: 'block', policy: 'proxy.connectPorts', list: 'tunnels', entry: { pattern: 'trycloudflare.com' }, name: 'x.trycloudflare.com',
    reason: /^CONNECT to port 8443 is not allowed .*; alert: x\.trycloudflare\.com/,
  } })
  const inside = await exchange(p.port, [CONNECT('inside.trycloudflare.com:443')])
  t.equal(status(inside.data), 403)
  t.match(p.ev.events.at(-1), { decision: { action: 'block', policy: 'proxy.allowDestinations', list: 'tunnels', entry: { pattern: 'trycloudflare.com' } } })
  // a listed name that blocks is refused by its list first, whatever the port
  t.equal(status((await exchange(p.port, [CONNECT('connect.ngrok-agent.com:8443')])).data), 403)
  t.match(p.ev.events.at(-1), { decision: { action: 'sinkhole', list: 'ngrok' } })
  t.notOk(p.ev.events.at(-1)!.decision.policy)
  for (const target of ['[[x.example]]:443', 'x.example:91337', 'x.example:-1', 'x.example:007', 'x.example', 'a@x.example:443']) {
    t.equal(status((await exchange(p.port, [CONNECT(target)])).data), 400, target)
  }
  const cname = await exchange(p.port, [CONNECT('alias.example:443')])
  t.equal(status(cname.data), 403)
  t.match(p.ev.events.at(-1), { decision: { action: 'sinkhole', where: 'cname', name: 'edge.ngrok-free.app' }, extra: { 'tunnelguard.cnames': ['edge.ngrok-free.app'] } })
  t.equal(status((await exchange(p.port, [CONNECT('nx.example:443')])).data), 502)
  t.equal(status((await exchange(p.port, [CONNECT('empty.example:443')])).data), 502)
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})

t.test('the proxy itself and a rebinding resolver', async t => {
  let n = 0
  const answers = [['127.0.0.1'], ['10.0.0.1']]
  const sink = await startTcpSink(t, 'bye')
  const p = await testProxy(t, {
    config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [sink.port, 1] } },
    resolve: async name => (name === 'self.example' ? { addresses: ['127.0.0.1'], cnames: [] } : { addresses: answers[n++ % 2]!, cnames: [] }),
  })
  const self = await exchange(p.port, [CONNECT(`self.example:${p.port}`)])
  t.equal(status(self.data), 403, 'a name resolving to the proxy is refused (also without the port in connectPorts)')
  const self2 = await exchange(p.port, [`GET http://self.example:${p.port}/ HTTP/1.1\r\nHost: self.example:${p.port}\r\nConnection: close\r\n\r\n`])
  t.match(self2.data, /^HTTP\/1\.1 403[\s\S]*own listener/, 'plain HTTP loop refused')
  const hello = records(clientHello({ names: ['rebind.example'] }))
  const first = await exchange(p.port, [CONNECT(`rebind.example:${sink.port}`), hello], { end: true })
  t.match(first.data, /bye$/, 'first answer (loopback, allowed here) is dialled')
  const second = await exchange(p.port, [CONNECT(`rebind.example:${sink.port}`), hello])
  t.equal(status(second.data), 403, 'second answer (private) refused: each connection resolves once and dials what it checked')
  t.equal(n, 2)
  t.equal(sink.accepted(), 1)
})

t.test('an SNI other than the CONNECT host: its CNAME chain is decided too (a custom domain on a tunnel service)', async t => {
  const sink = await startTcpSink(t, 'bye')
  const resolve = fakeResolve({
    'ok.example': ['127.0.0.1'], 'plain.example': ['203.0.113.6'],
    'custom.example': { addresses: ['203.0.113.5'], cnames: ['abc.ngrok-free.app'] },
  })
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [sink.port] } }, resolve })
  for (const host of ['ok.example', '127.0.0.1']) {
    const r = await exchange(p.port, [CONNECT(`${host}:${sink.port}`), records(clientHello({ names: ['Custom.Example'] }))])
    t.equal(status(r.data), 200, host)
    t.ok(r.closed, `${host}: closed`)
    t.match(p.ev.events.at(-1), {
      sni: 'Custom.Example',
      decision: { action: 'sinkhole', where: 'cname', name: 'abc.ngrok-free.app' },
      extra: { 'tunnelguard.sni_cnames': ['abc.ngrok-free.app'], 'tunnelguard.mismatch': true },
    }, `CONNECT ${host}, SNI custom.example`)
    t.equal(sink.accepted(), 0, `${host}: target never contacted`)
  }
  for (const sni of ['plain.example', 'nx.example']) {
    const r = await exchange(p.port, [CONNECT(`ok.example:${sink.port}`), records(clientHello({ names: [sni] }))], { end: true })
    t.match(r.data, /bye$/, `${sni}: a chain with nothing listed, or no answer, passes`)
    t.match(p.ev.events.at(-1), { decision: { action: 'pass', name: 'ok.example' } })
    t.notOk((p.ev.events.at(-1)!.extra ?? {})['tunnelguard.sni_cnames'])
    // a lookup that failed (here the fake resolver's error) is named on the line: the chain went unchecked
    t.equal((p.ev.events.at(-1)!.extra ?? {})['tunnelguard.sni_chain_error'], sni === 'nx.example' ? 'NXDOMAIN' : undefined, sni)
  }
  t.same(resolve.calls.filter(n => n === 'plain.example' || n === 'nx.example'), ['plain.example', 'nx.example'])
  const calls = resolve.calls.length
  await exchange(p.port, [CONNECT(`ok.example:${sink.port}`), records(clientHello({ names: ['OK.example.'] }))], { end: true })
  t.same(resolve.calls.slice(calls), ['ok.example'], 'an SNI that is the CONNECT host is resolved once (by the route)')
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})

t.test('a refusal tells the client the name, entry and list, not where the list file lives', async t => {
  const p = await testProxy(t)
  const r = await exchange(p.port, [CONNECT('x.ngrok.io:443')])
  t.equal(status(r.data), 403)
  const d = p.ev.events.at(-1)!.decision
  t.ok(d.entry, 'an entry matched')
  t.match(d.reason, d.entry!.source, 'the log line keeps the list file and line')
  const header = /X-Tunnelguard-Reason: (.*)\r\n/.exec(r.data)![1]
  t.equal(header, `${d.action}: x.ngrok.io matches ${d.entry!.pattern} in list ${d.list}`)
  t.notMatch(r.data, d.entry!.source, 'the client does not see it')
  const h = await exchange(p.port, ['GET http://x.ngrok.io/ HTTP/1.1\r\nHost: x.ngrok.io\r\n\r\n'])
  t.match(h.data, new RegExp(`^HTTP/1\\.1 403[\\s\\S]*\\r\\n\\r\\n403 Forbidden from tunnelguard, this network's proxy:\\n${d.action}: x\\.ngrok\\.io matches ${d.entry!.pattern.replace(/\./g, '\\.')} in list ${d.list}\\n$`))
  t.notMatch(h.data, d.entry!.source)
})

t.test('a CONNECT host that cannot be normalized: 400, and a block decision line (fail closed)', async t => {
  const { p } = await setup(t)
  const r = await exchange(p.port, ['CONNECT bad_name!.ngrok.io:443 HTTP/1.1\r\nHost: x\r\n\r\n'])
  t.equal(status(r.data), 400)
  // what is wrong, not "write host:port" to a client that wrote it
  t.match(r.data, /\r\nX-Tunnelguard-Reason: bad CONNECT target "bad_name!\.ngrok\.io:443": host "bad_name!\.ngrok\.io" is no valid name \(character "!"\)\r\n/)
  t.notMatch(r.data, /write host:port/)
  t.equal(p.ev.events.length, 1, 'one decision line')
  t.match(p.ev.events[0], {
    message: 'proxy.connect', destination: { domain: 'bad_name!.ngrok.io' },
    decision: { action: 'block', where: 'connect', name: 'bad_name!.ngrok.io', unparseable: true, reason: /unparseable name .*: blocked, fail closed/ },
  })
  t.ok(await waitFor(() => p.ev.messages.some(m => m.msg === 'proxy.close')))
  t.match(p.ev.messages.find(m => m.msg === 'proxy.close')!.fields, { 'http.response.status_code': 400 })
  // a label over 63 characters is no host name either: 400 too (was a 403), and its block line
  const long = `${'a'.repeat(64)}.ngrok.io`
  const l = await exchange(p.port, [`CONNECT ${long}:443 HTTP/1.1\r\n\r\n`])
  t.equal(status(l.data), 400, 'a label of 64 characters')
  t.match(l.data, /X-Tunnelguard-Reason: [^\r]*a label of 64 characters; at most 63/)
  t.match(p.ev.events.at(-1), { decision: { action: 'block', where: 'connect', name: long, unparseable: true } })
  // a listed name with no port: its list's decision; an unlisted one with none: the 400 alone
  await exchange(p.port, ['CONNECT x.ngrok.io HTTP/1.1\r\n\r\n'])
  t.match(p.ev.events.at(-1), { decision: { action: 'sinkhole', list: 'ngrok', name: 'x.ngrok.io' } })
  const why: Record<string, string> = {
    'ok.example': 'no port: write host:port', 'ok.example:0': 'port 0 is out of range (1-65535)', 'ok.example:99999': 'port 99999 is out of range (1-65535)',
    '[::1': '"[" is not closed: write [IPv6]:port', 'a@b.example:443': 'userinfo ("user@") is no part of a target: write host:port',
  }
  for (const [bad, reason] of Object.entries(why)) {
    const n = p.ev.events.length
    const r = await exchange(p.port, [`CONNECT ${bad} HTTP/1.1\r\n\r\n`])
    t.equal(status(r.data), 400, bad)
    t.equal(/X-Tunnelguard-Reason: (.*)\r\n/.exec(r.data)?.[1], `bad CONNECT target "${bad}": ${reason}`, `${bad}: says what is wrong`)
    t.equal(p.ev.events.length, n, `${bad}: no decision line (no host to decide, or one that passes)`)
  }
})

t.test('a second ClientHello after a HelloRetryRequest must name what the first did (RFC 8446 4.1.2)', async t => {
  const srv = await startRetryServer(t)
  const resolve = fakeResolve({ 'ok.example': ['127.0.0.1'] })
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [srv.port] } }, resolve })
  const ccs = Buffer.from([0x14, 3, 3, 0, 1, 1])
  const first = records(clientHello({ names: ['ok.example'] }))
  const cases: [string, Buffer, boolean][] = [
    ['the same name (case and a trailing dot aside)', Buffer.concat([ccs, records(clientHello({ names: ['OK.example.'] }))]), true],
    ['a listed name', Buffer.concat([ccs, records(clientHello({ names: ['x.ngrok.io'] }))]), false],
    ['another unlisted name', records(clientHello({ names: ['other.example'] })), false],
    ['no SNI', records(clientHello({ names: null })), false],
    ['not a ClientHello', Buffer.from('GET / HTTP/1.1\r\n\r\n'), false],
    ['a malformed one', Buffer.from([0x16, 3, 3, 0, 0]), false],
  ]
  for (const [i, [name, second, passes]] of cases.entries()) {
    const r = await exchange(p.port, [CONNECT(`ok.example:${srv.port}`), first, second], { gapMs: 150 })
    t.equal(status(r.data), 200, name)
    t.ok(await waitFor(() => p.proxy.openConnections === 0), `${name}: closed`)
    if (passes) {
      t.ok(srv.after[i]!.equals(second), `${name}: the second hello reached the server`)
      t.match(p.ev.events.at(-1), { decision: { action: 'pass' }, extra: { 'tunnelguard.sni_status': 'ok' } })
    } else {
      t.equal(srv.after[i]!.length, 0, `${name}: the second hello never reached the server`)
      t.match(p.ev.events.at(-1), { decision: { action: 'block', reason: /after a HelloRetryRequest/ }, extra: { 'tunnelguard.sni_status': 'retry' } }, name)
    }
  }
  t.match(p.ev.events.find(e => e.sni === 'x.ngrok.io'), { decision: { action: 'block', list: 'ngrok', name: 'x.ngrok.io', reason: /names x\.ngrok\.io where the first named ok\.example/ } })
  t.match(p.ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields, { 'error.message': /blocked: malformed ClientHello after a HelloRetryRequest/ })
  // a first hello without SNI: the second must have none either
  const bare = records(clientHello({ names: null }))
  for (const [second, passes] of [[bare, true], [records(clientHello({ names: ['ok.example'] })), false]] as const) {
    const n = srv.after.length
    await exchange(p.port, [CONNECT(`ok.example:${srv.port}`), bare, second], { gapMs: 150 })
    t.ok(await waitFor(() => p.proxy.openConnections === 0))
    t.equal(srv.after[n]!.length, passes ? second.length : 0)
  }
  t.match(p.ev.events.at(-1), { decision: { reason: /names ok\.example where the first named none/ } })
  // the client goes away instead of retrying
  const gone = await exchange(p.port, [CONNECT(`ok.example:${srv.port}`), first], { gapMs: 150, end: true })
  t.equal(status(gone.data), 200)
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
  t.match(p.ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields, { 'error.message': 'no second ClientHello after a HelloRetryRequest (eof)' })
})

t.test('a retry request that comes in two pieces is still seen', async t => {
  const srv = await startRetryServer(t, true, true)
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [srv.port] } }, resolve: fakeResolve({ 'ok.example': ['127.0.0.1'] }) })
  await exchange(p.port, [CONNECT(`ok.example:${srv.port}`), records(clientHello({ names: ['ok.example'] })), records(clientHello({ names: ['x.ngrok.io'] }))], { gapMs: 200 })
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
  t.equal(srv.after[0]!.length, 0)
  t.match(p.ev.events.at(-1), { decision: { action: 'block', list: 'ngrok' }, extra: { 'tunnelguard.sni_status': 'retry' } })
})

t.test('a ServerHello that is no retry request: the tunnel flows both ways as before', async t => {
  const srv = await startRetryServer(t, false)
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [srv.port] } }, resolve: fakeResolve({ 'ok.example': ['127.0.0.1'] }) })
  const later = records(clientHello({ names: ['x.ngrok.io'] }))           // bytes after a real ServerHello are not a hello: not looked at
  const r = await exchange(p.port, [CONNECT(`ok.example:${srv.port}`), records(clientHello({ names: ['ok.example'] })), later], { gapMs: 150 })
  t.equal(status(r.data), 200)
  t.ok(await waitFor(() => srv.after[0]!.equals(later)), 'what the client sent after it reached the server')
})
