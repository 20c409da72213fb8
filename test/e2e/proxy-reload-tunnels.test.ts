// A reload that lists a name applies to the tunnels already open to it: each open CONNECT tunnel is
// decided again, on its CONNECT host, its SNI, the CNAME chains and the Hosts of its plain-HTTP
// requests, with the new lists. A block or sinkhole closes it (a decision line saying so, then its
// close line); an alert writes an alert line and keeps it; an unrelated tunnel goes on. An ngrok
// agent connected before the admin lists connect.ngrok-agent.com never goes idle: without this it
// kept its session.
import t, { type Test } from 'tap'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls'
import { readFileSync } from 'node:fs'
import { startProxy } from '../../src/proxy/server.js'
import type { Resolve } from '../../src/proxy/context.js'
import { serve } from '../../src/serve.js'
import type { Snapshot } from '../../src/snapshot-types.js'
import { clientHello, records } from '../fixtures/client-hello.js'
import { memoryEvidence } from '../fixtures/evidence.js'
import { fakeResolve, makeCert, startOrigin, startTcpSink, waitFor } from '../fixtures/origin.js'
import { makeSnapshot, type TestLists } from '../fixtures/snapshot.js'

const BASE: TestLists = {
  ngrok: { action: 'sinkhole', patterns: ['ngrok.io', 'ngrok-agent.com', 'ngrok-free.app'] },
}

/** A loopback TLS origin that echoes what it reads, on many connections at once. */
async function echoOrigin(t: Test): Promise<{ port: number; open(): number }> {
  const { cert, key } = await makeCert(t.testdir(), 'origin.test')
  const open = new Set<Socket>()
  const srv = createTlsServer({ cert: readFileSync(cert), key: readFileSync(key) }, s => {
    open.add(s)
    s.on('close', () => open.delete(s))
    s.on('error', () => {})
    s.pipe(s)
  })
  await new Promise<void>(r => srv.listen(0, '127.0.0.1', r))
  t.teardown(() => { for (const s of open) s.destroy(); srv.close() })
  return { port: (srv.address() as { port: number }).port, open: () => open.size }
}

/** CONNECT `target` through the proxy and read its 200; the raw socket after it. */
async function connectThrough(port: number, target: string): Promise<Socket> {
  const raw = connect(port, '127.0.0.1')
  raw.on('error', () => {})
  await once(raw, 'connect')
  raw.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`)
  const [head] = await once(raw, 'data') as [Buffer]
  if (!/^HTTP\/1\.1 200 /.test(head.toString('latin1'))) throw new Error(`no 200: ${head.toString('latin1')}`)
  return raw
}

/** A TLS session through a CONNECT tunnel (SNI `servername`), handshake done. */
async function tlsThrough(port: number, target: string, servername: string): Promise<TLSSocket> {
  const raw = await connectThrough(port, target)
  const s = tlsConnect({ socket: raw, servername, rejectUnauthorized: false })
  s.on('error', () => {})
  await once(s, 'secureConnect')
  return s
}

/** Whether `s` still carries bytes both ways: an echo of a fresh token comes back within 2 s. */
async function alive(s: Socket): Promise<boolean> {
  if (s.destroyed) return false
  const token = `ping-${Math.random()}`
  let got = ''
  const onData = (b: Buffer) => { got += b.toString() }
  s.on('data', onData)
  s.write(token)
  const ok = await waitFor(() => got.includes(token) || s.destroyed, 2000)
  s.off('data', onData)
  return ok && got.includes(token)
}

/** Whether `s` closed within `ms`. */
const closes = (s: Socket, ms = 2000) => waitFor(() => s.destroyed || s.closed, ms)

/** A proxy whose snapshot a test swaps as a reload does; `reload` swaps it in and calls the hook. */
async function setup(t: Test, port: number, resolve: Resolve = fakeResolve({}), idleTimeout?: string) {
  const ev = memoryEvidence({ logsPass: false })
  const snapOf = (lists: TestLists): Snapshot => makeSnapshot({
    lists, config: { proxy: { listen: ['127.0.0.1:0'], allowDestinations: ['127.0.0.0/8'], connectPorts: [port], ...idleTimeout === undefined ? {} : { idleTimeout } } },
  })
  let snap = snapOf(BASE)
  const proxy = await startProxy({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev, resolve })
  t.teardown(() => proxy.close())
  return {
    ev, proxy, port: proxy.addresses[0]!.port,
    reload: (lists: TestLists) => {
      snap = snapOf({ ...BASE, ...lists })
      return proxy.redecide()
    },
    swap: (lists: TestLists) => { snap = snapOf({ ...BASE, ...lists }) },
    closeLines: () => ev.messages.filter(m => m.msg === 'proxy.close'),
  }
}

t.test('a reload that sinkholes a name closes the tunnels open to it; an alert keeps its tunnel; others go on', async t => {
  const origin = await echoOrigin(t)
  const resolve = fakeResolve({ 'other.test': ['127.0.0.1'], 'keep.test': ['127.0.0.1'], 'watched.test': ['127.0.0.1'] })
  const p = await setup(t, origin.port, resolve)
  const listed = await tlsThrough(p.port, `other.test:${origin.port}`, 'other.test')
  const keep = await tlsThrough(p.port, `keep.test:${origin.port}`, 'keep.test')
  const watched = await tlsThrough(p.port, `watched.test:${origin.port}`, 'watched.test')
  t.ok(await alive(listed) && await alive(keep) && await alive(watched), 'three TLS sessions through three tunnels')
  const before = p.ev.events.length

  const did = await p.reload({ reloaded: { action: 'sinkhole', patterns: ['other.test'] }, watch: { action: 'alert', patterns: ['watched.test'] } })
  t.match(did, { tunnels: 3, closed: 1, alerted: 1 })
  t.ok(await closes(listed), 'the tunnel to the name listed is closed')
  t.ok(await waitFor(() => origin.open() === 2), 'its origin side too')
  t.ok(await alive(keep), 'an unrelated tunnel goes on')
  t.ok(await alive(watched), 'the alerted tunnel is kept open')

  const lines = p.ev.events.filter(e => e.extra?.['tunnelguard.reload'] === true)
  t.equal(lines.length, 2, 'one line for the closed tunnel, one for the alerted one')
  const closed = lines.find(e => e.decision.action === 'sinkhole')!
  t.match(closed, {
    message: 'proxy.connect', client: { ip: '127.0.0.1' },
    decision: { action: 'sinkhole', list: 'reloaded', name: 'other.test', where: 'connect' },
    destination: { domain: 'other.test', ip: '127.0.0.1', port: origin.port }, sni: 'other.test',
    extra: { 'event.reason': /^closed after a reload: sinkhole: other\.test matches other\.test in list reloaded$/, 'tunnelguard.reload': true },
  })
  t.match(lines.find(e => e.decision.action === 'alert'), {
    message: 'proxy.connect', decision: { action: 'alert', list: 'watch', name: 'watched.test' },
    destination: { domain: 'watched.test' }, extra: { 'event.reason': /^open at a reload that lists it: .*; kept open$/ },
  })
  t.ok(await waitFor(() => p.closeLines().length === 1))
  const close = p.closeLines()[0]!.fields!
  t.match(close, {
    'client.ip': '127.0.0.1', 'destination.domain': 'other.test', 'tls.client.server_name': 'other.test', 'http.response.status_code': 200,
    'error.message': /^blocked after a reload: sinkhole: other\.test matches/,
  })
  t.ok((close['source.bytes'] as number) > 0 && (close['destination.bytes'] as number) > 0, 'the close line has the bytes so far')
  t.match(p.ev.messages.find(m => m.msg === 'proxy.redecided')?.fields, { 'tunnelguard.tunnels': 3, 'tunnelguard.closed': 1, 'tunnelguard.alerted': 1 })
  t.ok(Number.isInteger(p.ev.messages.find(m => m.msg === 'proxy.redecided')?.fields?.['tunnelguard.took_ms']), 'took_ms in whole ms, as the reloaded line has it (one type in an index)')

  // the same lists again: nothing new (an alert is said once per match)
  const again = await p.reload({ reloaded: { action: 'sinkhole', patterns: ['other.test'] }, watch: { action: 'alert', patterns: ['watched.test'] } })
  t.match(again, { tunnels: 2, closed: 0, alerted: 0 })
  t.equal(p.ev.events.length, before + 2)
  t.ok(await alive(keep) && await alive(watched))

  // a list that blocks the alerted name at last: closed
  t.match(await p.reload({ watch: { action: 'block', patterns: ['watched.test'] } }), { closed: 1 })
  t.ok(await closes(watched))
  t.ok(await alive(keep), 'still going')
  keep.destroy()
  t.ok(await waitFor(() => p.proxy.openConnections === 0))
  t.match(await p.reload({}), { tunnels: 0 }, 'no tunnel open: nothing to do, and no line')
  t.equal(p.ev.messages.filter(m => m.msg === 'proxy.redecided').length, 3)
})

t.test('the SNI, the CNAME chains and an ngrok agent-like session are decided again', async t => {
  const origin = await echoOrigin(t)
  const resolve = fakeResolve({
    'front.test': ['127.0.0.1'],
    'cdn.test': { addresses: ['127.0.0.1'], cnames: ['edge.hidden.test'] },
    'sni-cdn.test': { addresses: ['127.0.0.1'], cnames: ['sni-edge.hidden2.test'] },
  })
  const p = await setup(t, origin.port, resolve)
  // CONNECT one name, SNI another (a domain front): the SNI was decided; a reload listing it closes
  const fronted = await tlsThrough(p.port, `front.test:${origin.port}`, 'agent.tunnel.test')
  // a name CNAMEd to a tunnel service: its chain was decided
  const chained = await tlsThrough(p.port, `cdn.test:${origin.port}`, 'cdn.test')
  // an SNI with a chain of its own
  const sniChained = await tlsThrough(p.port, `front.test:${origin.port}`, 'sni-cdn.test')
  t.ok(await alive(fronted) && await alive(chained) && await alive(sniChained))
  await p.reload({ tunnelsvc: { action: 'block', patterns: ['tunnel.test', 'hidden.test', 'hidden2.test'] } })
  t.ok(await closes(fronted) && await closes(chained) && await closes(sniChained), 'all three closed')
  const lines = p.ev.events.filter(e => e.extra?.['tunnelguard.reload'] === true)
  t.match(lines.map(e => [e.decision.name, e.decision.where]).sort(), [
    ['agent.tunnel.test', 'sni'], ['edge.hidden.test', 'cname'], ['sni-edge.hidden2.test', 'cname'],
  ])
  t.ok(lines.every(e => e.decision.action === 'block' && e.decision.list === 'tunnelsvc' && e.destination?.domain !== undefined))
})

t.test('an ngrok agent session opened before connect.ngrok-agent.com is listed is closed at the reload', async t => {
  const origin = await echoOrigin(t)
  const p = await setup(t, origin.port, fakeResolve({ 'connect.agent.test': ['127.0.0.1'] }))
  // the lists of the first snapshot do not have it (an admin adds a list for it)
  const agent = await tlsThrough(p.port, `connect.agent.test:${origin.port}`, 'connect.agent.test')
  // a session that never goes idle
  const beat = setInterval(() => { if (!agent.destroyed) agent.write('.') }, 20)
  t.teardown(() => clearInterval(beat))
  await new Promise(r => setTimeout(r, 100))
  await p.reload({ agents: { action: 'sinkhole', patterns: ['connect.agent.test'] } })
  t.ok(await closes(agent, 1000), 'closed at once, busy as it is')
  t.match(p.ev.events.at(-1), { decision: { action: 'sinkhole', list: 'agents' }, extra: { 'tunnelguard.reload': true } })
})

t.test('plain HTTP in a tunnel: the Hosts its requests named are decided again', async t => {
  const origin = await startOrigin(t)
  const p = await setup(t, origin.port)
  const raw = await connectThrough(p.port, `127.0.0.1:${origin.port}`)     // an address: no name at the CONNECT
  raw.write('GET /a HTTP/1.1\r\nHost: app.plain.test\r\n\r\n')
  const [first] = await once(raw, 'data') as [Buffer]
  t.match(first.toString(), /^HTTP\/1\.1 200 /, 'the first request is answered')
  const did = await p.reload({ plain: { action: 'sinkhole', patterns: ['plain.test'] } })
  t.match(did, { closed: 1 })
  t.ok(await closes(raw))
  t.match(p.ev.events.at(-1), {
    decision: { action: 'sinkhole', name: 'app.plain.test', where: 'host' },
    destination: { ip: '127.0.0.1' }, extra: { 'tunnelguard.reload': true },
  })
  t.ok(await waitFor(() => p.closeLines().length === 1))
  t.match(p.closeLines()[0]!.fields, { 'error.message': /^blocked after a reload/, 'tunnelguard.tunnel_requests': 1 })
})

t.test('a reload while a tunnel is being set up applies to it once it is let through', async t => {
  const sink = await startTcpSink(t)
  const p = await setup(t, sink.port, fakeResolve({ 'late.test': ['127.0.0.1'] }))
  const raw = await connectThrough(p.port, `late.test:${sink.port}`)
  // the CONNECT was decided with the old lists; the reload comes before the ClientHello
  t.match(await p.reload({ late: { action: 'block', patterns: ['late.test'] } }), { tunnels: 0 }, 'no tunnel registered yet')
  raw.write(records(clientHello({ names: ['late.test'] })))
  t.ok(await closes(raw), 'closed as soon as it was let through')
  const lines = p.ev.events.filter(e => e.extra?.['tunnelguard.reload'] === true)
  t.match(lines, [{ decision: { action: 'block', list: 'late' } }])
  t.equal(sink.accepted(), 0, 'closed while dialling: the upstream is closed at once')
})

t.test('a tunnel closed at idle timeout while an SNI chain resolves is not registered, nor dialled', async t => {
  const sink = await startTcpSink(t)
  let answer!: () => void
  const resolve = async (name: string) => {
    if (name === 'slow.test') await new Promise<void>(r => { answer = r })
    return { addresses: ['127.0.0.1'], cnames: [] }
  }
  const p = await setup(t, sink.port, resolve, '100ms')
  const raw = await connectThrough(p.port, `fast.test:${sink.port}`)
  raw.write(records(clientHello({ names: ['slow.test'] })))
  t.ok(await waitFor(() => answer !== undefined), 'the SNI chain is being resolved')
  t.ok(await waitFor(() => p.closeLines().length === 1), 'closed at idle timeout')
  t.match(p.closeLines()[0]!.fields, { 'error.message': 'idle timeout' })
  answer()
  await new Promise(r => setTimeout(r, 50))
  t.match(await p.reload({ l: { action: 'block', patterns: ['slow.test'] } }), { tunnels: 0 })
  t.equal(sink.accepted(), 0)
})

t.test('serve: a SIGHUP-style reload that adds a name to a list closes the tunnel open to it (the ECS lines)', async t => {
  const sink = await startTcpSink(t)
  const dir = t.testdir({ 'mine.txt': '' })
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, 'dns: { upstreams: ["udp://127.0.0.1:9"], timeout: 300ms }\nreload: { watch: false }\nadmin: null\n'
    + `proxy: { allowDestinations: [127.0.0.0/8], connectPorts: [${sink.port}] }\n`
    + 'lists: { mine: { files: [mine.txt], action: sinkhole } }\n')
  const out = new PassThrough()
  let log = ''
  out.on('data', d => { log += d })
  const r = await serve({ configPath: cfg, stdout: out, signals: false, overrides: { dns: ['127.0.0.1:0'], proxy: ['127.0.0.1:0'], upstreams: ['udp://127.0.0.1:9'] } })
  t.teardown(() => r.stop())
  const port = r.addresses.proxy[0]!.port
  const raw = await connectThrough(port, `127.0.0.1:${sink.port}`)
  raw.write(records(clientHello({ names: ['agent.mine.test'] })))
  t.ok(await waitFor(() => sink.received[0] !== undefined && sink.received[0].length > 0), 'the hello reached the origin')
  writeFileSync(join(dir, 'mine.txt'), 'mine.test\n')
  t.equal(await r.reload('test'), true)
  t.ok(await closes(raw), 'closed by the reload')
  t.ok(await waitFor(() => log.includes('"msg":"proxy.close"') || log.includes('proxy.close')))
  const lines = log.split('\n').filter(l => l !== '').map(l => JSON.parse(l) as Record<string, unknown>)
  const i = lines.findIndex(l => l.message === 'proxy.connect' && (l.tunnelguard as { reload?: boolean }).reload === true)
  t.ok(i >= 0, 'a decision line for the reload')
  t.match(lines[i], {
    message: 'proxy.connect', event: { action: 'sinkhole', reason: /^closed after a reload: sinkhole: agent\.mine\.test matches mine\.test in list mine$/ },
    client: { ip: '127.0.0.1' }, destination: { ip: '127.0.0.1', port: sink.port }, tls: { client: { server_name: 'agent.mine.test' } },
    rule: { ruleset: 'mine', name: 'mine.test' }, tunnelguard: { reload: true, matched_on: 'sni' },
  })
  t.ok(await waitFor(() => log.split('\n').slice(i + 1).some(l => l.includes('proxy.close'))), 'the close line after it')
  const close = JSON.parse(log.split('\n').find(l => l.includes('proxy.close'))!)
  t.match(JSON.stringify(close), /blocked after a reload/)
})
