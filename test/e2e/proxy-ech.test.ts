// proxy.ech: a ClientHello with Encrypted Client Hello is logged (log, the default) or refused
// (block) before anything is dialled; after a HelloRetryRequest too; at the sinkhole capture it is
// logged; a reload switches it.
import t, { type Test } from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import type { ConfigInput } from '../../src/config/schema.js'
import { eventKind } from '../../src/observe/ecs.js'
import { startSinkholeCapture } from '../../src/proxy/sinkhole-capture.js'
import { serve } from '../../src/serve.js'
import { clientHello, ECH_EXT, echOuter, records } from '../fixtures/client-hello.js'
import { memoryEvidence } from '../fixtures/evidence.js'
import { exchange, fakeResolve, startTcpSink, testProxy, waitFor } from '../fixtures/origin.js'
import { startRetryServer } from '../fixtures/retry-server.js'
import { makeSnapshot } from '../fixtures/snapshot.js'

const CONNECT = (target: string) => `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`
const status = (s: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(s)?.[1] ?? 0)
const ECH_REASON = 'the ClientHello uses Encrypted Client Hello (proxy.ech: block): its real server name is hidden'
/** A ClientHello as an ECH client sends it: the outer SNI (the ECH config's public name) and the sealed inner hello. */
const echHello = (names: string[] | null = ['public.example']) => records(clientHello({ names, extra: [[ECH_EXT, echOuter()]] }))

async function setup(t: Test, proxy: NonNullable<ConfigInput['proxy']> = {}) {
  const sink = await startTcpSink(t, 'bye')
  const resolve = fakeResolve({ 'ok.example': ['127.0.0.1'], 'public.example': ['203.0.113.7'] })
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [sink.port], ...proxy } }, resolve })
  return { sink, p, target: `ok.example:${sink.port}` }
}

const closeLines = (p: Awaited<ReturnType<typeof setup>>['p']) => p.ev.messages.filter(m => m.msg === 'proxy.close').map(m => m.fields!)

t.test('proxy.ech: log (the default): an ECH hello is decided on its outer SNI, logged with tunnelguard.ech, and passes', async t => {
  const { sink, p, target } = await setup(t)
  const hello = echHello()
  const r = await exchange(p.port, [CONNECT(target), hello], { end: true })
  t.match(r.data, /^HTTP\/1\.1 200[\s\S]*bye$/)
  t.ok(sink.received[0]!.equals(hello), 'the target got the hello as it was')
  t.equal(p.ev.events.length, 1)
  t.match(p.ev.events[0], { decision: { action: 'pass' }, sni: 'public.example', extra: { 'tunnelguard.ech': true, 'tunnelguard.sni_status': 'ok' } })
  // the pass line is not written at log.queries: matched (the default): the close line says it too
  t.ok(await waitFor(() => closeLines(p).length === 1))
  t.match(closeLines(p)[0], { 'tls.client.server_name': 'public.example', 'tunnelguard.ech': true })
  await exchange(p.port, [CONNECT(target), records(clientHello({ names: ['public.example'] }))], { end: true })
  t.ok(await waitFor(() => closeLines(p).length === 2))
  t.notOk(closeLines(p)[1]!['tunnelguard.ech'], 'not on a hello without it')
})

t.test('proxy.ech: block: an ECH hello closes the tunnel without dialling, one block line naming the setting', async t => {
  const { sink, p, target } = await setup(t, { ech: 'block' })
  const r = await exchange(p.port, [CONNECT(target), echHello()])
  t.equal(status(r.data), 200, 'the 200 was sent before the hello could be read')
  t.ok(r.closed, 'closed')
  t.equal(sink.accepted(), 0, 'the target is never contacted')
  t.equal(p.ev.events.length, 1, 'one line')
  const ev = p.ev.events[0]!
  t.match(ev, {
    message: 'proxy.connect', sni: 'public.example',
    decision: { action: 'block', policy: 'proxy.ech', where: 'sni', name: 'public.example', reason: ECH_REASON },
    extra: { 'tunnelguard.ech': true, 'tunnelguard.sni_status': 'ok' },
  })
  t.notOk(ev.decision.list, 'no list matched')
  t.equal(eventKind(ev.decision), 'event', 'a refusal by the proxy\'s own rules, not a tunnel attempt')
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
  t.match(closeLines(p).at(-1), { 'error.message': `blocked: ${ECH_REASON}` })

  // a hello without ECH still goes through
  const plain = records(clientHello({ names: ['ok.example'] }))
  const ok = await exchange(p.port, [CONNECT(target), plain], { end: true })
  t.match(ok.data, /bye$/)
  t.ok(sink.received[0]!.equals(plain))
  t.match(p.ev.events.at(-1), { decision: { action: 'pass' } })
  t.notOk(p.ev.events.at(-1)!.extra!['tunnelguard.ech'])

  // without an SNI: refused under the CONNECT host
  await exchange(p.port, [CONNECT(target), echHello(null)])
  t.match(p.ev.events.at(-1), { decision: { action: 'block', policy: 'proxy.ech', name: 'ok.example', reason: ECH_REASON }, extra: { 'tunnelguard.sni_status': 'none' } })
  t.equal(sink.accepted(), 1)
})

t.test('proxy.ech: block beside the lists: a listed outer SNI is decided by its list; an alert list\'s match is kept on the refusal', async t => {
  const { sink, p, target } = await setup(t, { ech: 'block' })
  await exchange(p.port, [CONNECT(target), echHello(['x.ngrok.io'])])
  t.match(p.ev.events.at(-1), { decision: { action: 'sinkhole', list: 'ngrok', name: 'x.ngrok.io' }, extra: { 'tunnelguard.ech': true } })
  t.notOk(p.ev.events.at(-1)!.decision.policy, 'the list decided: the setting is not named')
  // the tunnels list alerts: the setting refuses, and the line keeps the list's entry (an alert for the responder)
  await exchange(p.port, [CONNECT(target), echHello(['a.trycloudflare.com'])])
  const d = p.ev.events.at(-1)!.decision
  t.match(d, { action: 'block', policy: 'proxy.ech', list: 'tunnels', name: 'a.trycloudflare.com', reason: new RegExp(`^${ECH_REASON.replace(/[().]/g, '\\$&')}; alert: a\\.trycloudflare\\.com`) })
  t.equal(eventKind(d), 'alert')
  t.equal(sink.accepted(), 0)
})

t.test('proxy.ech: block: a second ClientHello (after a HelloRetryRequest) with ECH is refused; with log it passes', async t => {
  const srv = await startRetryServer(t)
  const resolve = fakeResolve({ 'ok.example': ['127.0.0.1'] })
  const first = records(clientHello({ names: ['ok.example'] }))
  const second = records(clientHello({ names: ['ok.example'], extra: [[ECH_EXT, echOuter()]] }))
  for (const ech of ['block', 'log'] as const) {
    const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [srv.port], ech } }, resolve })
    const n = srv.after.length
    const r = await exchange(p.port, [CONNECT(`ok.example:${srv.port}`), first, second], { gapMs: 150 })
    t.equal(status(r.data), 200, ech)
    t.ok(await waitFor(() => p.proxy.openConnections === 0), `${ech}: closed`)
    if (ech === 'log') {
      t.ok(srv.after[n]!.equals(second), 'log: the second hello reached the server')
      t.match(p.ev.events.at(-1), { decision: { action: 'pass' } })
      t.match(closeLines(p).at(-1), { 'tunnelguard.ech': true }, 'log: the close line says the second hello had ECH')
      continue
    }
    t.equal(srv.after[n]!.length, 0, 'block: the second hello never reached the server')
    t.match(p.ev.events.at(-1), {
      sni: 'ok.example',
      decision: { action: 'block', policy: 'proxy.ech', name: 'ok.example', reason: 'the ClientHello after a HelloRetryRequest uses Encrypted Client Hello (proxy.ech: block): its real server name is hidden' },
      extra: { 'tunnelguard.sni_status': 'retry', 'tunnelguard.ech': true },
    })
    t.equal(eventKind(p.ev.events.at(-1)!.decision), 'event')
    // another name in the second hello is refused for that, whatever ECH
    await exchange(p.port, [CONNECT(`ok.example:${srv.port}`), first, records(clientHello({ names: ['b.example'], extra: [[ECH_EXT, echOuter()]] }))], { gapMs: 150 })
    t.ok(await waitFor(() => p.proxy.openConnections === 0))
    t.match(p.ev.events.at(-1), { decision: { action: 'block', reason: /names b\.example where the first named ok\.example: blocked, fail closed$/ }, extra: { 'tunnelguard.ech': true } })
    t.notOk(p.ev.events.at(-1)!.decision.policy)
  }
})

t.test('the sinkhole capture\'s line carries tunnelguard.ech when the hello has it', async t => {
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { proxy: { helloTimeout: '500ms' } } })
  const cap = await startSinkholeCapture({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev, resolve: fakeResolve({}) })
  t.teardown(() => cap.close())
  const port = cap.addresses[0]!.port
  await exchange(port, [echHello(['connect.ngrok-agent.com'])])
  t.ok(await waitFor(() => ev.events.length === 1))
  t.match(ev.events[0], { message: 'sinkhole.capture', sni: 'connect.ngrok-agent.com', decision: { action: 'sinkhole' }, extra: { 'tunnelguard.ech': true } })
  await exchange(port, [records(clientHello({ names: ['connect.ngrok-agent.com'] }))])
  t.ok(await waitFor(() => ev.events.length === 2))
  t.equal(ev.events[1]!.extra, undefined, 'not on a hello without it')
  await exchange(port, ['GET / HTTP/1.1\r\nHost: connect.ngrok-agent.com\r\n\r\n'])
  t.ok(await waitFor(() => ev.events.length === 3))
  t.equal(ev.events[2]!.extra, undefined, 'nor on an HTTP request')
})

t.test('a reload that sets proxy.ech: block applies to the next tunnel (serve in-process, the ECS line)', async t => {
  const sink = await startTcpSink(t, 'bye')
  const dir = t.testdir({})
  const cfg = join(dir, 'tg.yaml')
  const config = (ech: string) => `dns: { upstreams: ["udp://127.0.0.1:9"], timeout: 300ms }\nreload: { watch: false }\nadmin: null\n`
    + `proxy: { allowDestinations: [127.0.0.0/8], connectPorts: [${sink.port}], ech: ${ech} }\n`
  writeFileSync(cfg, config('log'))
  const out = new PassThrough()
  let log = ''
  out.on('data', d => { log += d })
  const r = await serve({ configPath: cfg, stdout: out, signals: false, overrides: { dns: ['127.0.0.1:0'], proxy: ['127.0.0.1:0'], upstreams: ['udp://127.0.0.1:9'] } })
  t.teardown(() => r.stop())
  const port = r.addresses.proxy[0]!.port
  const target = `127.0.0.1:${sink.port}`
  const hello = echHello(['127.0.0.1'])                             // the address as SNI: no lookup of its chain
  const before = await exchange(port, [CONNECT(target), hello], { end: true })
  t.match(before.data, /bye$/, 'log: passes')
  t.equal(sink.accepted(), 1)
  writeFileSync(cfg, config('block'))
  t.equal(await r.reload('test'), true)
  const after = await exchange(port, [CONNECT(target), hello])
  t.equal(status(after.data), 200)
  t.ok(after.closed)
  t.equal(sink.accepted(), 1, 'block: not dialled')
  t.ok(await waitFor(() => log.includes('"policy":"proxy.ech"')))
  const line = JSON.parse(log.split('\n').find(l => l.includes('"policy":"proxy.ech"'))!)
  t.match(line, {
    message: 'proxy.connect', event: { action: 'block', kind: 'event' }, client: { ip: '127.0.0.1' },
    tls: { client: { server_name: '127.0.0.1' } },
    tunnelguard: { policy: 'proxy.ech', matched_on: 'sni', reason: ECH_REASON, ech: true, sni_status: 'ok' },
  })
  t.notOk('tunnelguard.ech' in line, 'one layout: the extra fields nested with the rest')
  t.notOk(line.rule, 'no list')
})
