import t from 'tap'
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { clientHello, records } from '../fixtures/client-hello.js'
import { exchange, fakeResolve, freePort, run, startOrigin, testProxy, waitFor } from '../fixtures/origin.js'
import { CLI, startServe } from '../fixtures/serve-process.js'

const GET = (host: string) => `GET http://${host}/ HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`

t.test('PROXY protocol v1/v2 and X-Forwarded-For name the client only from trusted peers', async t => {
  const origin = await startOrigin(t)
  const p = await testProxy(t, {
    config: { proxy: { trustForwardedFrom: ['127.0.0.0/8'], allowDestinations: ['127.0.0.0/8'], headerTimeout: '300ms' } },
    resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }),
  })
  const v1 = await exchange(p.port, [`PROXY TCP4 10.9.9.9 127.0.0.1 5555 ${p.port}\r\n${GET('a.ngrok.io')}`])
  t.match(v1.data, /^HTTP\/1\.1 403/)
  t.match(p.ev.events.at(-1), { client: { ip: '10.9.9.9', port: 5555 }, decision: { action: 'sinkhole' } })
  const a = Buffer.from([10, 7, 7, 7, 127, 0, 0, 1, 0x11, 0x5c, 0x0c, 0x38])
  const v2 = Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from([0x21, 0x11, 0, 12]), a])
  await exchange(p.port, [v2.subarray(0, 10), v2.subarray(10), GET('b.ngrok.io')], { gapMs: 20 })
  t.match(p.ev.events.at(-1), { client: { ip: '10.7.7.7', port: 4444 } })
  const outsider = await exchange(p.port, [`PROXY TCP4 8.8.4.4 127.0.0.1 5555 ${p.port}\r\n${GET('a.ngrok.io')}`])
  t.match(outsider.data, /^HTTP\/1\.1 403[\s\S]*8\.8\.4\.4 is not in proxy\.allowClients/, 'the named client must itself be allowed')
  const xff = await run('curl', ['-sS', '-x', `http://127.0.0.1:${p.port}`, '-H', 'X-Forwarded-For: 6.6.6.6, 192.168.5.5', `http://site.example:${origin.port}/`])
  t.equal(xff.code, 0)
  t.match(p.ev.events.at(-1), { client: { ip: '192.168.5.5' } })
  t.equal(origin.requests.at(-1)!.headers['x-forwarded-for'], '6.6.6.6, 192.168.5.5', 'kept when the peer is trusted')
  // its port is not known: not written (the peer's is not the client's)
  const closeOf = (ip: string) => p.ev.messages.filter(m => m.msg === 'proxy.close' && m.fields!['client.ip'] === ip).at(-1)
  t.ok(await waitFor(() => closeOf('192.168.5.5') !== undefined))
  t.equal(closeOf('192.168.5.5')!.fields!['client.port'], undefined, 'close line: no client.port')
  t.equal(JSON.parse(JSON.stringify(closeOf('192.168.5.5')!.fields))['source.ip'], '127.0.0.1', 'the peer as source')
  const viaConnect = await exchange(p.port, ['CONNECT a.ngrok.io:443 HTTP/1.1\r\nHost: a.ngrok.io:443\r\nX-Forwarded-For: 192.168.5.6\r\n\r\n'])
  t.match(viaConnect.data, /^HTTP\/1\.1 403/)
  t.match(p.ev.events.at(-1), { client: { ip: '192.168.5.6', port: 0 } })
  t.ok(await waitFor(() => closeOf('192.168.5.6') !== undefined))
  t.equal(closeOf('192.168.5.6')!.fields!['client.port'], undefined, 'CONNECT: no client.port either')
  // the warnings about such a client: no client.port either (0 read as a real port)
  const mismatch = await run('curl', ['-sS', '-o', '/dev/null', '-x', `http://127.0.0.1:${p.port}`, '-H', 'X-Forwarded-For: 192.168.5.7', '-H', 'Host: d.ngrok.io', `http://site.example:${origin.port}/`])
  t.equal(mismatch.code, 0)
  const hostWarn = p.ev.messages.filter(m => m.msg === 'proxy.host_mismatch').at(-1)!
  t.match(hostWarn.fields, { 'client.ip': '192.168.5.7', 'tunnelguard.host_header': 'd.ngrok.io' })
  t.notOk('client.port' in hostWarn.fields!, 'proxy.host_mismatch: no client.port')
  const connectHead = `CONNECT site.example:443 HTTP/1.1\r\nHost: site.example:443\r\nX-Forwarded-For: 192.168.5.8\r\n\r\n`
  await exchange(p.port, [connectHead, records(clientHello({ names: ['e.ngrok.io'] }))], { gapMs: 50 })
  const sniWarn = p.ev.messages.filter(m => m.msg === 'proxy.sni_mismatch').at(-1)!
  t.match(sniWarn.fields, { 'client.ip': '192.168.5.8', 'tls.client.server_name': 'e.ngrok.io' })
  t.notOk('client.port' in sniWarn.fields!, 'proxy.sni_mismatch: no client.port')
  const plain = await exchange(p.port, [GET('c.ngrok.io')])
  t.match(plain.data, /^HTTP\/1\.1 403/, 'a trusted peer without a PROXY header is served as itself')
  t.match(p.ev.events.at(-1), { client: { ip: '127.0.0.1' } })
  t.ok((await exchange(p.port, ['PROXY TCP4 nonsense\r\n'])).closed, 'malformed PROXY header: closed')
  t.ok((await exchange(p.port, ['PROXY TCP4 1.2'], { waitMs: 2000 })).closed, 'PROXY header never completed: closed')
  t.ok((await exchange(p.port, ['PROX'], { end: true })).closed)
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})

t.test('X-Forwarded-For with a port names the client; an unreadable one leaves the peer, and the lines say so', async t => {
  const p = await testProxy(t, { config: { proxy: { trustForwardedFrom: ['127.0.0.0/8'] } } })
  const closes = () => p.ev.messages.filter(m => m.msg === 'proxy.close')
  for (const [xff, ip] of [['10.1.2.3:5555', '10.1.2.3'], ['[FD00::1]:5', 'fd00::1']]) {
    await exchange(p.port, [`GET http://a.ngrok.io/ HTTP/1.1\r\nHost: a.ngrok.io\r\nX-Forwarded-For: ${xff}\r\nConnection: close\r\n\r\n`])
    t.match(p.ev.events.at(-1), { client: { ip, port: 0 } }, xff)
  }
  for (const xff of ['unknown', '999.1.1.1']) {
    const n = closes().length
    await exchange(p.port, [`GET http://a.ngrok.io/ HTTP/1.1\r\nHost: a.ngrok.io\r\nX-Forwarded-For: ${xff}\r\nConnection: close\r\n\r\n`])
    t.match(p.ev.events.at(-1), { client: { ip: '127.0.0.1' }, extra: { 'tunnelguard.forwarded_unreadable': xff } }, `HTTP: ${xff}`)
    t.ok(await waitFor(() => closes().length === n + 1))
    t.match(closes().at(-1)!.fields, { 'client.ip': '127.0.0.1', 'client.port': Number, 'tunnelguard.forwarded_unreadable': xff })
    await exchange(p.port, [`CONNECT x.ngrok.io:443 HTTP/1.1\r\nHost: x.ngrok.io:443\r\nX-Forwarded-For: ${xff}\r\n\r\n`])
    t.match(p.ev.events.at(-1), { message: 'proxy.connect', client: { ip: '127.0.0.1' }, extra: { 'tunnelguard.forwarded_unreadable': xff } }, `CONNECT: ${xff}`)
    t.ok(await waitFor(() => closes().length === n + 2))
    t.match(closes().at(-1)!.fields, { 'tunnelguard.forwarded_unreadable': xff })
  }
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})

t.test('an untrusted peer cannot name a client', async t => {
  const p = await testProxy(t)
  const r = await exchange(p.port, [`PROXY TCP4 10.9.9.9 127.0.0.1 5555 ${p.port}\r\n${GET('a.ngrok.io')}`])
  t.match(r.data, /^HTTP\/1\.1 400/)
  await exchange(p.port, [`GET http://a.ngrok.io/ HTTP/1.1\r\nHost: a.ngrok.io\r\nX-Forwarded-For: 10.1.1.1\r\nConnection: close\r\n\r\n`])
  t.match(p.ev.events.at(-1), { client: { ip: '127.0.0.1' } })
})

t.test('a dual-stack listener ([::]) names an IPv4 client as IPv4, as the DNS side does', async t => {
  const p = await testProxy(t, { config: { proxy: { listen: ['[::]:0'] } } })
  const r = await exchange(p.port, ['CONNECT x.ngrok.io:443 HTTP/1.1\r\nHost: x.ngrok.io:443\r\n\r\n'])
  t.match(r.data, /^HTTP\/1\.1 403/)
  t.match(p.ev.events.at(-1), { decision: { action: 'sinkhole' } })
  t.equal(p.ev.events.at(-1)!.client.ip, '127.0.0.1', 'not ::ffff:127.0.0.1')
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})

t.test('serve: a client named by X-Forwarded-For has no client.port on any line; report and /api/clients read it', async t => {
  const [proxyPort, adminPort] = [await freePort(), await freePort()]
  const dir = t.testdir({
    'tg.yaml': [
      'dns: { listen: [] }', `proxy: { listen: ["127.0.0.1:${proxyPort}"], trustForwardedFrom: ["127.0.0.0/8"] }`,
      `admin: { listen: "127.0.0.1:${adminPort}" }`, `state: { dir: ${JSON.stringify(join(t.testdirName, 'state'))} }`, '',
    ].join('\n'),
  })
  const serve = await startServe(t, ['--config', join(dir, 'tg.yaml')])
  const proxy = `http://127.0.0.1:${proxyPort}`
  t.equal((await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', proxy, '-H', 'X-Forwarded-For: 10.7.7.1', 'http://a.ngrok.io/'])).stdout, '403')
  t.equal((await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', proxy, '-H', 'X-Forwarded-For: 10.7.7.2', '-H', 'Host: b.ngrok.io', 'http://x.example/'])).stdout, '403')
  await serve.waitFor(l => l.message === 'proxy.close' && l['client.ip'] === '10.7.7.2')
  const named = serve.lines().filter(l => JSON.stringify(l).includes('10.7.7.'))
  t.same(named.map(l => l.message).sort(), ['proxy.close', 'proxy.close', 'proxy.host_mismatch', 'proxy.http', 'proxy.http'])
  for (const l of named) {
    t.notOk('client.port' in l || 'port' in (l.client as object ?? {}), `${String(l.message)}: no client.port`)
  }
  const clients = await (await fetch(`http://127.0.0.1:${adminPort}/api/clients`)).json() as { clients: { ip: string; names: { name: string }[] }[] }
  t.same(clients.clients.map(c => c.ip).sort(), ['10.7.7.1', '10.7.7.2'], '/api/clients lists both')
  t.equal(await serve.stop(), 0)
  const log = join(dir, 'tg.jsonl')
  writeFileSync(log, serve.stdout())
  const report = JSON.parse(execFileSync(process.execPath, [CLI, 'report', log, '--format', 'json'], { encoding: 'utf8' })) as { clients?: unknown[] }
  const text = JSON.stringify(report)
  t.match(text, /10\.7\.7\.1[\s\S]*a\.ngrok\.io|a\.ngrok\.io[\s\S]*10\.7\.7\.1/, 'report names the first with what it asked')
  t.match(text, /10\.7\.7\.2/, 'and the second')
})

t.test('Forwarded (RFC 7239) from a trusted peer names the client, on HTTP and CONNECT, either parser', async t => {
  const origin = await startOrigin(t)
  const p = await testProxy(t, {
    config: { proxy: { trustForwardedFrom: ['127.0.0.0/8'], allowDestinations: ['127.0.0.0/8'] } },
    resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }),
  })
  const closes = () => p.ev.messages.filter(m => m.msg === 'proxy.close')
  const get = (f: string) => `GET http://a.ngrok.io/ HTTP/1.1\r\nHost: a.ngrok.io\r\nForwarded: ${f}\r\nConnection: close\r\n\r\n`
  await exchange(p.port, [get('for=10.1.2.3;proto=http;by=127.0.0.1')])
  t.match(p.ev.events.at(-1), { message: 'proxy.http', client: { ip: '10.1.2.3', port: 0 } })
  // two lines, the second the nearest hop's
  await exchange(p.port, ['GET http://a.ngrok.io/ HTTP/1.1\r\nHost: a.ngrok.io\r\nForwarded: for=10.6.6.6\r\nforwarded: For="[FD00::17]:4711"\r\nConnection: close\r\n\r\n'])
  t.match(p.ev.events.at(-1), { client: { ip: 'fd00::17', port: 0 } })
  const n = closes().length
  await exchange(p.port, [get('for=_hidden')])
  t.match(p.ev.events.at(-1), { client: { ip: '127.0.0.1' }, extra: { 'tunnelguard.forwarded_unreadable': '_hidden' } })
  t.ok(await waitFor(() => closes().length === n + 1))
  t.match(closes().at(-1)!.fields, { 'client.ip': '127.0.0.1', 'client.port': Number, 'tunnelguard.forwarded_unreadable': '_hidden' })
  const bad = await exchange(p.port, [get('for="10.1.1.1')])
  t.match(bad.data, /^HTTP\/1\.1 403/, 'a malformed header: no 5xx, decided as the peer')
  t.match(p.ev.events.at(-1), { client: { ip: '127.0.0.1' }, extra: { 'tunnelguard.forwarded_unreadable': 'for="10.1.1.1' } })
  // the fast path (the plainest head at once) and node's parser (a head in two pieces)
  const connect = 'CONNECT x.ngrok.io:443 HTTP/1.1\r\nHost: x.ngrok.io:443\r\nForwarded: for=10.3.3.3\r\n'
  t.match((await exchange(p.port, [`${connect}\r\n`])).data, /^HTTP\/1\.1 403/)
  t.match(p.ev.events.at(-1), { message: 'proxy.connect', client: { ip: '10.3.3.3', port: 0 } }, 'CONNECT, read on the socket')
  t.match((await exchange(p.port, [connect, 'Forwarded: for=10.4.4.4\r\n\r\n'], { gapMs: 50 })).data, /^HTTP\/1\.1 403/)
  t.match(p.ev.events.at(-1), { message: 'proxy.connect', client: { ip: '10.4.4.4', port: 0 } }, 'CONNECT, read by node')
  await exchange(p.port, ['CONNECT x.ngrok.io:443 HTTP/1.1\r\nForwarded: for=unknown\r\n\r\n'])
  t.match(p.ev.events.at(-1), { message: 'proxy.connect', client: { ip: '127.0.0.1' }, extra: { 'tunnelguard.forwarded_unreadable': 'unknown' } })
  const ok = await run('curl', ['-sS', '-x', `http://127.0.0.1:${p.port}`, '-H', 'Forwarded: for=10.5.5.5', `http://site.example:${origin.port}/`])
  t.equal(ok.code, 0)
  t.match(p.ev.events.at(-1), { client: { ip: '10.5.5.5' }, decision: { action: 'pass' } })
  t.equal(origin.requests.at(-1)!.headers.forwarded, 'for=10.5.5.5', 'passed on from a trusted peer, as X-Forwarded-For is')
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
})

t.test('serve and curl: Forwarded names the client from a trusted loopback address only', async t => {
  const origin = await startOrigin(t)
  const proxyPort = await freePort()
  const dir = t.testdir({
    'tg.yaml': [
      'dns: { listen: [] }', 'log: { queries: all }', 'admin: null',
      `proxy: { listen: ["127.0.0.1:${proxyPort}"], trustForwardedFrom: ["127.0.0.2/32"], allowDestinations: ["127.0.0.0/8"] }`,
      `state: { dir: ${JSON.stringify(join(t.testdirName, 'state'))} }`, '',
    ].join('\n'),
  })
  const serve = await startServe(t, ['--config', join(dir, 'tg.yaml')])
  /** A line's fields as dotted keys, whether it nests them (decision lines) or not (close lines). */
  const flat = (o: Record<string, unknown>, pre = ''): Record<string, unknown> => Object.fromEntries(Object.entries(o).flatMap(([k, v]) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.entries(flat(v as Record<string, unknown>, `${pre}${k}.`)) : [[`${pre}${k}`, v]]))
  const decisions = () => serve.lines().filter(l => l.message === 'proxy.http' || l.message === 'proxy.connect').map(l => flat(l))
  const closes = () => serve.lines().filter(l => l.message === 'proxy.close')
  /** One request through the proxy by curl from the address `from`: its status, and its decision and close lines. */
  const curl = async (from: string, args: string[]) => {
    const n = closes().length
    const r = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--interface', from, '-x', `http://127.0.0.1:${proxyPort}`, ...args])
    await serve.waitFor(() => closes().length > n)
    t.equal(decisions().length, n + 1, 'one decision line per request')
    return { status: r.stdout, decision: decisions().at(-1)!, close: flat(closes().at(-1)!) }
  }
  const both = (r: { decision: Record<string, unknown>; close: Record<string, unknown> }, key: string) => [r.decision[key], r.close[key]]

  const named = await curl('127.0.0.2', ['-H', 'Forwarded: for=10.7.0.60;proto=http;by=203.0.113.43', 'http://a.ngrok.io/'])
  t.equal(named.status, '403')
  t.same(both(named, 'client.ip'), ['10.7.0.60', '10.7.0.60'], 'trusted peer: the client Forwarded names, on the decision and close lines')
  t.same(both(named, 'client.port'), [undefined, undefined], 'its port is not known')
  t.same(both(named, 'source.ip'), ['127.0.0.2', '127.0.0.2'], 'the peer that named it, on both lines')
  t.equal(typeof named.decision['source.port'], 'number')
  t.equal(named.decision['source.port'], named.close['source.port'], 'and its port: the decision line joins its close line')

  const connect = await curl('127.0.0.2', ['-w', '%{http_connect}', '-p', '--proxy-header', 'Forwarded: for="[fd00:cafe::17]:4711"', 'https://b.ngrok.io/'])
  t.match(connect, { status: '403', decision: { message: 'proxy.connect' } })
  t.same(both(connect, 'client.ip'), ['fd00:cafe::17', 'fd00:cafe::17'], 'CONNECT too')
  t.same(both(connect, 'source.port'), [connect.close['source.port'], connect.close['source.port']], 'its peer\'s port on both lines')
  t.not(connect.decision['source.port'], named.decision['source.port'], 'another connection, another port')

  const unknown = await curl('127.0.0.2', ['-H', 'Forwarded: for=unknown', 'http://a.ngrok.io/'])
  t.equal(unknown.status, '403')
  t.same(both(unknown, 'client.ip'), ['127.0.0.2', '127.0.0.2'], 'for=unknown: the peer')
  t.same(both(unknown, 'tunnelguard.forwarded_unreadable'), ['unknown', 'unknown'])

  const forged = await curl('127.0.0.2', ['-H', 'Forwarded: for=10.9.9.9', '-H', 'X-Forwarded-For: 10.8.8.8', 'http://a.ngrok.io/'])
  t.same(both(forged, 'client.ip'), ['127.0.0.2', '127.0.0.2'], 'the two headers disagree: the peer')
  t.same(both(forged, 'tunnelguard.forwarded_unreadable'), Array(2).fill('Forwarded 10.9.9.9, X-Forwarded-For 10.8.8.8'))

  const untrusted = await curl('127.0.0.3', ['-H', 'Forwarded: for=10.7.0.61', 'http://a.ngrok.io/'])
  t.equal(untrusted.status, '403')
  t.same(both(untrusted, 'client.ip'), ['127.0.0.3', '127.0.0.3'], 'untrusted peer: itself')
  t.same(both(untrusted, 'tunnelguard.forwarded_unreadable'), [undefined, undefined])
  t.equal(untrusted.decision['source.ip'], undefined, 'the client is the peer: no source on its decision line')

  const site = `http://127.0.0.1:${origin.port}/`
  const passed = await curl('127.0.0.3', ['-H', 'Forwarded: for=10.7.0.62', site])
  t.equal(passed.status, '200')
  t.same(both(passed, 'client.ip'), ['127.0.0.3', '127.0.0.3'])
  t.equal(origin.requests.at(-1)!.headers.forwarded, undefined, 'not passed on from an untrusted peer')
  const kept = await curl('127.0.0.2', ['-H', 'Forwarded: for=10.7.0.63', site])
  t.equal(kept.status, '200')
  t.same(both(kept, 'client.ip'), ['10.7.0.63', '10.7.0.63'])
  t.same(both(kept, 'source.port'), [kept.close['source.port'], kept.close['source.port']], 'a request passed: the peer on its decision line too')
  t.equal(origin.requests.at(-1)!.headers.forwarded, 'for=10.7.0.63', 'passed on from a trusted one')
  // a warning about the request (its Host names another server) names the peer too: joined to its connection
  const other = await curl('127.0.0.2', ['-H', 'Forwarded: for=10.7.0.64', '-H', 'Host: elsewhere.example', site])
  const warned = flat(serve.lines().filter(l => l.message === 'proxy.host_mismatch').at(-1)!)
  t.match(warned, { 'client.ip': '10.7.0.64', 'source.ip': '127.0.0.2', 'source.port': other.close['source.port'], 'tunnelguard.host_header': 'elsewhere.example' },
    'proxy.host_mismatch: the client, and the peer that named it')
  t.equal(await serve.stop(), 0)
})
