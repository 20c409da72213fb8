import t from 'tap'
import { nameOf, startSinkholeCapture } from '../../src/proxy/sinkhole-capture.js'
import { memoryEvidence } from '../fixtures/evidence.js'
import { makeSnapshot } from '../fixtures/snapshot.js'
import { exchange, fakeResolve, run, waitFor } from '../fixtures/origin.js'
import { clientHello, records } from '../fixtures/client-hello.js'

t.test('sinkhole capture: logs client and SNI or Host, then closes', async t => {
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { proxy: { helloTimeout: '300ms', maxConnections: 1 } } })
  const cap = await startSinkholeCapture({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev, resolve: fakeResolve({}) })
  t.teardown(() => cap.close())
  const port = cap.addresses[0]!.port
  t.same(ev.messages[0], { level: 'info', msg: 'sinkhole.listening', fields: { addresses: [{ address: '127.0.0.1', port }] } }, 'listening, as the proxy says it')
  const tls = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'connect.ngrok-agent.com'], 'Q\n')
  t.not(tls.code, 0)
  t.match(ev.events.at(-1), { message: 'sinkhole.capture', sni: 'connect.ngrok-agent.com', client: { ip: '127.0.0.1' }, decision: { action: 'sinkhole', list: 'ngrok' }, destination: { port } })
  const http = await run('curl', ['-sS', '-H', 'Host: abc.NGROK-free.app:80', `http://127.0.0.1:${port}/`])
  t.not(http.code, 0)
  t.match(ev.events.at(-1), { urlDomain: 'abc.ngrok-free.app', decision: { where: 'host', action: 'sinkhole' } })
  await exchange(port, ['GET / HTTP/1.1\r\nHost: a b\r\n\r\n'])
  t.match(ev.events.at(-1), { urlDomain: 'a\\032b', decision: { action: 'block', unparseable: true } }, 'a Host no host name is: written as dig writes a name')
  // controls in a Host (the proxy's parser refuses them; the capture reads what comes): escaped,
  // and blocked, fail closed, as a Host no host name is at the proxy
  await exchange(port, ['GET / HTTP/1.1\r\nHost: bell\x07\x1b]0;pwned\x07.ngrok-free.app\r\n\r\n'])
  t.match(ev.events.at(-1), { urlDomain: 'bell\\007\\027]0\\;pwned\\007.ngrok-free.app', decision: { action: 'block', unparseable: true } })
  t.notMatch(JSON.stringify(ev.events.at(-1)), /[\u0000-\u001f]/, 'no raw control on the line')
  const hello = records(clientHello({ names: ['x.ngrok.io'] }))
  await exchange(port, [...hello].map(b => Buffer.from([b])))
  t.match(ev.events.at(-1), { sni: 'x.ngrok.io' })
  // a warning alert before the hello (Go's server skips it): the hello's SNI is still named
  const alert = Buffer.from([0x15, 3, 1, 0, 2, 1, 90])
  await exchange(port, [alert.subarray(0, 3), Buffer.concat([alert.subarray(3), records(clientHello({ names: ['y.ngrok.io'] }))])])
  t.match(ev.events.at(-1), { sni: 'y.ngrok.io', decision: { action: 'sinkhole', list: 'ngrok' } })
  t.equal(ev.events.length, 6)
  const unnamed: [string, (string | Buffer)[], boolean][] = [
    ['no SNI', [records(clientHello({ names: null }))], false],
    ['bad hello', [Buffer.from([0x16, 3, 1, 0, 0])], false],
    ['cut hello', [hello.subarray(0, 30)], true],
    ['no Host', ['GET / HTTP/1.0\r\n\r\n'], false],
    ['nothing', [], true],
    ['silence', [Buffer.from('GET / HTTP/1.1\r\n')], false],
    ['an alert alone', [alert], true],
    ['a record header cut short', [alert.subarray(0, 3)], true],
    ['a record body cut short', [alert.subarray(0, 6)], true],
  ]
  for (const [name, chunks, end] of unnamed) {
    const r = await exchange(port, chunks, { end })
    t.ok(r.closed, name)
  }
  t.equal(ev.messages.filter(m => m.msg === 'sinkhole.capture').length, unnamed.length)
  t.same(ev.messages.slice(-unnamed.length).map(m => m.fields!['error.message']).slice(-4),
    ['neither TLS nor an HTTP request with a Host', 'TLS records without a ClientHello', 'incomplete TLS record', 'incomplete TLS record'])
  // what a responder can tell of them: the listener's port, how much came and how it began
  t.match(ev.messages.filter(m => m.msg === 'sinkhole.capture').at(-4), { fields: {
    'destination.port': port, 'source.bytes': 16, 'tunnelguard.first_bytes': Buffer.from('GET / HTTP/1.1\r\n').toString('hex'),
  } }, 'the request line alone (silence after it): port, size, first bytes')
  t.match(ev.messages.filter(m => m.msg === 'sinkhole.capture').at(-5)!.fields, { 'source.bytes': 0, 'tunnelguard.first_bytes': undefined }, 'nothing came: no first bytes')
  const big = await exchange(port, [Buffer.alloc(40_000, 'a')])
  t.ok(big.closed)
  t.ok(await waitFor(() => cap.openConnections === 0))
})

t.test('sinkhole capture: connection limit; bad listen address', async t => {
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { proxy: { helloTimeout: '2s', maxConnections: 1 } } })
  const cap = await startSinkholeCapture({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev, resolve: fakeResolve({}) })
  t.teardown(() => cap.close())
  const port = cap.addresses[0]!.port
  const first = exchange(port, [], { waitMs: 1500 })
  t.ok(await waitFor(() => cap.openConnections === 1))
  t.ok((await exchange(port, [])).closed, 'over the limit: closed at once')
  t.equal(ev.counts['dropped.overload'], 1)
  t.match(ev.messages.filter(m => m.msg === 'sinkhole.overload'), [{ level: 'warn', fields: { 'client.ip': '127.0.0.1', 'tunnelguard.refused': 1, 'tunnelguard.max_connections': 1 } }],
    'said, not only counted')
  await first
  await t.rejects(startSinkholeCapture({ listen: ['127.0.0.1:0', 'nonsense'], getSnapshot: () => snap, evidence: ev, resolve: fakeResolve({}) }), /bad listen address/)
})

t.test('sinkhole capture: one address holds at most proxy.maxConnectionsPerAddress; the others still get in', async t => {
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { proxy: { helloTimeout: '5s', maxConnections: 100, maxConnectionsPerAddress: 2 } } })
  const cap = await startSinkholeCapture({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev, resolve: fakeResolve({}) })
  t.teardown(() => cap.close())
  const port = cap.addresses[0]!.port
  const silent = [exchange(port, [], { waitMs: 4000 }), exchange(port, [], { waitMs: 4000 })]
  t.ok(await waitFor(() => cap.openConnections === 2))
  t.ok((await exchange(port, [])).closed, 'a third from the same address: closed at once')
  t.equal(cap.openConnections, 2)
  t.equal(ev.counts['dropped.overload'], 1)
  t.match(ev.messages.filter(m => m.msg === 'sinkhole.overload'), [{ fields: { 'client.ip': '127.0.0.1', 'tunnelguard.max_connections_per_address': 2, 'tunnelguard.refused': 1 } }])
  // another address is let in, and logged as ever
  const other = await run('curl', ['-sS', '--interface', '127.0.0.2', '-H', 'Host: z.ngrok-free.app', `http://127.0.0.1:${port}/`])
  t.not(other.code, 0)
  t.ok(await waitFor(() => ev.events.length === 1))
  t.match(ev.events[0], { message: 'sinkhole.capture', client: { ip: '127.0.0.2' }, urlDomain: 'z.ngrok-free.app' })
  await Promise.all(silent)
  t.ok(await waitFor(() => cap.openConnections === 0))
  // their places given back: the address gets in again
  await exchange(port, ['GET / HTTP/1.1\r\nHost: y.ngrok-free.app\r\n\r\n'])
  t.ok(await waitFor(() => ev.events.length === 2))
  t.match(ev.events[1], { client: { ip: '127.0.0.1' }, urlDomain: 'y.ngrok-free.app' })
})

t.test('sinkhole capture: a name no list matches is decided on its CNAME chain, and logged in any case', async t => {
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { proxy: { helloTimeout: '300ms' } } })
  const resolve = fakeResolve({ 'innocent.example': { addresses: ['203.0.113.9'], cnames: ['x1.ngrok-free.app'] }, 'plain.example': ['203.0.113.10'] })
  const cap = await startSinkholeCapture({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev, resolve })
  t.teardown(() => cap.close())
  const port = cap.addresses[0]!.port
  // the custom-domain case: DNS sinkholed innocent.example for its CNAME; the agent connects with it as SNI
  await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'innocent.example'], 'Q\n')
  t.ok(await waitFor(() => ev.events.length === 1))
  t.match(ev.events[0], {
    message: 'sinkhole.capture', sni: 'innocent.example', destination: { domain: 'innocent.example', port },
    decision: { action: 'sinkhole', where: 'cname', name: 'x1.ngrok-free.app', list: 'ngrok' },
  })
  await exchange(port, ['GET / HTTP/1.1\r\nHost: Plain.Example\r\n\r\n'])
  t.ok(await waitFor(() => ev.events.length === 2))
  t.match(ev.events[1], {
    urlDomain: 'plain.example', destination: { domain: 'plain.example' },
    decision: { action: 'sinkhole', where: 'host', name: 'plain.example', reason: /reached the sinkhole capture; no list matches it/ },
  })
  t.notOk(ev.events[1]!.decision.list)
  // an unresolvable name: no chain, still logged
  await exchange(port, ['GET / HTTP/1.1\r\nHost: nx.example\r\n\r\n'])
  t.ok(await waitFor(() => ev.events.length === 3))
  t.match(ev.events[2], { decision: { action: 'sinkhole', name: 'nx.example' } })
})

t.test('sinkhole capture: records of other types past 32 KiB end the read; an empty Host names nothing; an address Host is logged, not resolved', async t => {
  const ev = memoryEvidence()
  // a long hello timeout: what ends these reads is what came, not the clock
  const snap = makeSnapshot({ config: { proxy: { helloTimeout: '20s' } } })
  const resolve = fakeResolve({})
  const cap = await startSinkholeCapture({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev, resolve })
  t.teardown(() => cap.close())
  const port = cap.addresses[0]!.port
  const warnings = () => ev.messages.filter(m => m.msg === 'sinkhole.capture').map(m => m.fields!['error.message'])
  // application-data and alert records, complete, back to back: once held whole for the hello timeout
  // (copied and scanned again at each read: a few such clients slowed DNS by seconds)
  for (const type of [0x17, 0x15]) {
    const record = Buffer.concat([Buffer.from([type, 3, 3, 0x40, 0]), Buffer.alloc(0x4000, 7)])
    const r = await exchange(port, Array(8).fill(record), { waitMs: 15_000 })
    t.ok(r.closed, `type ${type}: closed`)
    t.equal(warnings().at(-1), 'TLS records without a ClientHello within the first 32768 bytes', `type ${type}: said when 32 KiB came`)
  }
  await exchange(port, ['GET / HTTP/1.1\r\nHost: \r\n\r\n'], { waitMs: 15_000 })
  t.equal(warnings().at(-1), 'an HTTP request with an empty Host', 'no decision on the name ""')
  const before = ev.events.length
  for (const host of ['[::1]:80', '10.1.2.3']) await exchange(port, [`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`], { waitMs: 15_000 })
  t.ok(await waitFor(() => ev.events.length === before + 2))
  for (const [i, ip] of ['::1', '10.1.2.3'].entries()) {
    t.match(ev.events[before + i], {
      message: 'sinkhole.capture', urlDomain: ip.includes(':') ? `[${ip}]` : ip, destination: { ip, port },
      decision: { action: 'sinkhole', where: 'host', name: ip, reason: /reached the sinkhole capture; an address, which no list names/ },
    }, `Host ${ip}: a sinkhole line on the address, not a block on an unparseable name`)
  }
  t.same(resolve.calls, [], 'an address is not looked up')
  // records of other types, then an HTTP head that never ends: the 32 KiB count the records too
  const records32k = Buffer.concat([0, 1].map(() => Buffer.concat([Buffer.from([0x17, 3, 3, 0x40, 0]), Buffer.alloc(0x4000, 7)])))
  t.same(nameOf(Buffer.concat([records32k, Buffer.from('GET / HTTP/1.1\r\nX-Pad: aaaa')]), false), { reason: 'neither TLS nor an HTTP request with a Host' },
    'decided at 32 KiB in all, not 32 KiB past the records')
  t.ok(await waitFor(() => cap.openConnections === 0))
})
