// A reload re-decides every open CONNECT tunnel on the proxy's own settings too, as a new CONNECT
// meets them: a client taken out of proxy.allowClients (or moved to a group whose policy now blocks
// the name), a port taken out of proxy.connectPorts, a destination proxy.allowDestinations no
// longer allows. Each such tunnel gets a decision line that says why (the refusal a new CONNECT
// would get, with `tunnelguard.reload: true`), then its close line; the tunnels the reload does not
// touch stay open and keep carrying bytes. Plain HTTP on a kept-alive connection is decided request
// by request: the next request after a reload meets the new settings and lists.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { serve } from '../../src/serve.js'
import { freePort, makeCert, startOrigin, waitFor } from '../fixtures/origin.js'
import { startServe } from '../fixtures/serve-process.js'

type Line = Record<string, unknown> & { message?: string }

/**
 * `openssl s_server -rev` on `host` (any 127/8 address): one TLS client at a time, each line it
 * reads sent back reversed, the connection kept open.
 */
async function revServer(t: Test, host: string, { cert, key }: { cert: string; key: string }): Promise<number> {
  const port = await freePort()
  const p = spawn('openssl', ['s_server', '-accept', `${host}:${port}`, '-cert', cert, '-key', key, '-rev', '-quiet'], { stdio: 'ignore' })
  t.teardown(() => { p.kill() })
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>(r => {
      const s = connect(port, host, () => { s.destroy(); r(true) })
      s.on('error', () => r(false))
    })
    if (up) return port
    await new Promise(r => setTimeout(r, 50))
  }
  throw new Error('openssl s_server did not start')
}

/** CONNECT `target` through the proxy from `from` (a 127/8 address), with extra head lines; the raw socket after its 200. */
async function connectThrough(proxy: number, target: string, from: string, head = ''): Promise<Socket> {
  const raw = connect({ port: proxy, host: '127.0.0.1', localAddress: from })
  raw.on('error', () => {})
  await once(raw, 'connect')
  raw.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${head}\r\n`)
  const [reply] = await once(raw, 'data') as [Buffer]
  if (!/^HTTP\/1\.1 200 /.test(reply.toString('latin1'))) throw new Error(`no 200: ${reply.toString('latin1')}`)
  return raw
}

/** A TLS session with SNI `servername` through a CONNECT tunnel, handshake done. */
async function tlsThrough(proxy: number, target: string, servername: string, from = '127.0.0.1', head = ''): Promise<TLSSocket> {
  const s = tlsConnect({ socket: await connectThrough(proxy, target, from, head), servername, rejectUnauthorized: false })
  s.on('error', () => {})
  await once(s, 'secureConnect')
  return s
}

/** Whether `s` still carries bytes both ways: a fresh line comes back reversed within 3 s. */
async function alive(s: Socket): Promise<boolean> {
  if (s.destroyed) return false
  const token = `ping-${Math.random().toString(36).slice(2)}`
  const want = [...token].reverse().join('')
  let got = ''
  const onData = (b: Buffer) => { got += b.toString() }
  s.on('data', onData)
  s.write(`${token}\n`)
  const ok = await waitFor(() => got.includes(want) || s.destroyed, 3000)
  s.off('data', onData)
  return ok && got.includes(want)
}

/** Whether `s` closed within `ms`. */
const closes = (s: Socket, ms = 3000) => waitFor(() => s.destroyed || s.closed, ms)

/** A field of a line: a decision line nests ECS fields (`destination: { port }`), an operational line has them dotted (`destination.port`). */
const field = (l: Line, path: string): unknown => path in l ? l[path] : path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], l)

t.test('tunnelguard serve, SIGHUP: a client revoked or moved to a blocking group, a port and a destination taken out close their tunnels; the others go on', async t => {
  // one origin per tunnel (s_server serves one client at a time); `dest` listens on 127.0.0.2
  const dir = t.testdir({ 'mine.txt': 'mine.test\n' })
  const cert = await makeCert(dir, 'origin.test')
  const [keep, port, dest, client, group] = await Promise.all([
    revServer(t, '127.0.0.1', cert), revServer(t, '127.0.0.1', cert), revServer(t, '127.0.0.2', cert), revServer(t, '127.0.0.1', cert), revServer(t, '127.0.0.1', cert),
  ])
  const cfg = join(dir, 'tg.yaml')
  const config = (o: { clients: string; dests: string; ports: number[]; lab: string }) => [
    'dns: { listen: ["127.0.0.1:0"], upstreams: ["udp://127.0.0.1:9"], timeout: 300ms }',
    'admin: { listen: null }',
    'reload: { watch: false }',
    'lists: { mine: { files: [mine.txt], action: block } }',
    `groups: [ { name: lab, clients: [${o.lab}], actions: { mine: off } } ]`,
    `proxy: { listen: ["127.0.0.1:0"], allowClients: [${o.clients}], allowDestinations: [${o.dests}], connectPorts: [${o.ports.join(', ')}] }`, '',
  ].join('\n')
  writeFileSync(cfg, config({ clients: '127.0.0.1/32, 127.0.0.5/32, 127.0.0.6/32', dests: '127.0.0.0/8', ports: [keep, port, dest, client, group], lab: '127.0.0.6/32' }))
  const p = await startServe(t, ['--config', cfg])
  const proxy = (p.lines().find(l => l.message === 'started')!['tunnelguard.proxy'] as { port: number }[])[0]!.port

  const tunnels = {
    keep: await tlsThrough(proxy, `127.0.0.1:${keep}`, 'keep.test'),
    port: await tlsThrough(proxy, `127.0.0.1:${port}`, 'port.test'),
    dest: await tlsThrough(proxy, `127.0.0.2:${dest}`, 'dest.test'),
    client: await tlsThrough(proxy, `127.0.0.1:${client}`, 'client.test', '127.0.0.5'),
    group: await tlsThrough(proxy, `127.0.0.1:${group}`, 'agent.mine.test', '127.0.0.6'),
  }
  for (const [name, s] of Object.entries(tunnels)) t.ok(await alive(s), `${name}: a TLS session through its tunnel`)
  t.equal(p.lines().filter(l => l.message === 'proxy.close').length, 0)

  // 127.0.0.5 revoked, 127.0.0.6 out of the group that let it reach mine.test, the port of `port`
  // and the address of `dest` (127.0.0.2) no longer allowed
  writeFileSync(cfg, config({ clients: '127.0.0.1/32, 127.0.0.6/32', dests: '127.0.0.1/32', ports: [keep, dest, client, group], lab: '127.0.0.7/32' }))
  p.child.kill('SIGHUP')
  await p.waitFor(l => l.message === 'proxy.redecided')
  for (const name of ['port', 'dest', 'client', 'group'] as const) t.ok(await closes(tunnels[name]), `${name}: closed by the reload`)
  t.ok(await alive(tunnels.keep), 'the tunnel the reload does not touch still carries bytes')
  t.match(p.lines().find(l => l.message === 'proxy.redecided'), { 'tunnelguard.tunnels': 5, 'tunnelguard.closed': 4, 'tunnelguard.alerted': 0 })
  await p.waitFor(l => l.message === 'proxy.close' && field(l, 'destination.port') === group)

  const lines = p.lines()
  const reloadLine = (port: number) => lines.findIndex(l => l.message === 'proxy.connect' && field(l, 'tunnelguard.reload') === true && field(l, 'destination.port') === port)
  const closeLine = (port: number) => lines.findIndex(l => l.message === 'proxy.close' && field(l, 'destination.port') === port)
  t.equal(reloadLine(keep), -1, 'no line for the tunnel kept')
  t.equal(closeLine(keep), -1)
  const expect: [number, string, Record<string, unknown>, RegExp][] = [
    [port, 'port', {
      event: { action: 'block', kind: 'event', reason: `closed after a reload: CONNECT to port ${port} is not allowed (proxy.connectPorts: ${keep}, ${dest}, ${client}, ${group})` },
      client: { ip: '127.0.0.1' }, destination: { ip: '127.0.0.1', port }, tls: { client: { server_name: 'port.test' } },
      tunnelguard: { policy: 'proxy.connectPorts', reload: true, matched_on: 'connect' },
    }, /^blocked after a reload: CONNECT to port \d+ is not allowed/],
    [dest, 'dest', {
      event: { action: 'block', kind: 'event', reason: 'closed after a reload: 127.0.0.2 is loopback (127.0.0.0/8); list it in proxy.allowDestinations to allow' },
      client: { ip: '127.0.0.1' }, destination: { ip: '127.0.0.2', port: dest }, tls: { client: { server_name: 'dest.test' } },
      error: { message: '127.0.0.2 is loopback (127.0.0.0/8); list it in proxy.allowDestinations to allow' },
      tunnelguard: { policy: 'proxy.allowDestinations', reload: true },
    }, /^blocked after a reload: 127\.0\.0\.2 is loopback/],
    [client, 'client', {
      event: { action: 'block', kind: 'event', reason: 'closed after a reload: client 127.0.0.5 is not in proxy.allowClients' },
      client: { ip: '127.0.0.5' }, destination: { ip: '127.0.0.1', port: client }, tls: { client: { server_name: 'client.test' } },
      tunnelguard: { policy: 'proxy.allowClients', reload: true },
    }, /^blocked after a reload: client 127\.0\.0\.5 is not in proxy\.allowClients$/],
    [group, 'group', {
      event: { action: 'block', kind: 'alert', reason: 'closed after a reload: block: agent.mine.test matches mine.test in list mine' },
      client: { ip: '127.0.0.6' }, destination: { port: group }, tls: { client: { server_name: 'agent.mine.test' } },
      rule: { ruleset: 'mine', name: 'mine.test' }, tunnelguard: { reload: true, matched_on: 'sni', group: 'default' },
    }, /^blocked after a reload: block: agent\.mine\.test matches mine\.test/],
  ]
  for (const [port, name, decision, closeWhy] of expect) {
    const i = reloadLine(port)
    const j = closeLine(port)
    t.ok(i >= 0, `${name}: a decision line for the reload`)
    t.match(lines[i], { message: 'proxy.connect', ...decision }, `${name}: it says why`)
    t.ok(j > i, `${name}: then its close line`)
    t.match(lines[j], { 'http.response.status_code': 200, 'error.message': closeWhy }, `${name}: the close line says why`)
    t.ok((lines[j]!['source.bytes'] as number) > 0 && (lines[j]!['destination.bytes'] as number) > 0, `${name}: with the bytes so far`)
  }
  t.notOk(field(lines[reloadLine(port)]!, 'error.message'), 'a port refused has no error.message, as at a new CONNECT')
  t.notOk(lines[reloadLine(port)]!.rule, 'no list')
  t.ok(await alive(tunnels.keep), 'and still')
  t.equal(await p.stop(), 0)
})

t.test('serve, a config file change: a client a trusted proxy names is revoked (with the peer that named it); the other client\'s tunnel goes on', async t => {
  const dir = t.testdir({})
  const cert = await makeCert(dir, 'origin.test')
  const [kept, revoked, dest] = await Promise.all([revServer(t, '127.0.0.1', cert), revServer(t, '127.0.0.1', cert), revServer(t, '127.0.0.2', cert)])
  const cfg = join(dir, 'tg.yaml')
  const config = (clients: string, dests: string) => 'dns: { upstreams: ["udp://127.0.0.1:9"], timeout: 300ms }\nadmin: null\nreload: { watch: true, debounce: 20ms }\n'
    + `proxy: { trustForwardedFrom: [127.0.0.1/32], allowClients: [${clients}], allowDestinations: [${dests}], connectPorts: [${kept}, ${revoked}, ${dest}] }\n`
  writeFileSync(cfg, config('10.9.9.0/24', '127.0.0.0/8'))
  const out = new PassThrough()
  let log = ''
  out.on('data', d => { log += d })
  const r = await serve({ configPath: cfg, stdout: out, signals: false, overrides: { dns: ['127.0.0.1:0'], proxy: ['127.0.0.1:0'], upstreams: ['udp://127.0.0.1:9'] } })
  t.teardown(() => r.stop())
  const proxy = r.addresses.proxy[0]!.port
  const keep = await tlsThrough(proxy, `127.0.0.1:${kept}`, 'kept.test', '127.0.0.1', 'X-Forwarded-For: 10.9.9.8\r\n')
  const gone = await tlsThrough(proxy, `127.0.0.1:${revoked}`, 'revoked.test', '127.0.0.1', 'X-Forwarded-For: 10.9.9.9\r\n')
  const far = await tlsThrough(proxy, `127.0.0.2:${dest}`, 'far.test', '127.0.0.1', 'X-Forwarded-For: 10.9.9.8\r\n')
  t.ok(await alive(keep) && await alive(gone) && await alive(far), 'three tunnels, for two clients a trusted proxy named')
  writeFileSync(cfg, config('10.9.9.8/32', '127.0.0.1/32'))
  t.ok(await closes(gone, 5000), 'the file change reloads: the revoked client\'s tunnel is closed')
  t.ok(await closes(far), 'and the one to a destination taken out')
  t.ok(await alive(keep), 'the other client\'s goes on')
  const lines = (): Line[] => log.split('\n').filter(l => l !== '').map(l => JSON.parse(l) as Line)
  t.ok(await waitFor(() => lines().filter(l => l.message === 'proxy.close').length === 2))
  const line = lines().find(l => l.message === 'proxy.connect' && field(l, 'tunnelguard.reload') === true && field(l, 'client.ip') === '10.9.9.9')
  t.match(line, {
    event: { action: 'block', reason: 'closed after a reload: client 10.9.9.9 is not in proxy.allowClients' },
    source: { ip: '127.0.0.1' }, tunnelguard: { policy: 'proxy.allowClients', reload: true },
  }, 'the client, and the peer that named it')
  t.notOk(field(line!, 'client.port'), 'a client named by X-Forwarded-For has no port')
  const far2 = lines().find(l => l.message === 'proxy.connect' && field(l, 'tunnelguard.reload') === true && field(l, 'destination.port') === dest)
  t.match(far2, {
    client: { ip: '10.9.9.8' }, error: { message: /^127\.0\.0\.2 is loopback/ }, tunnelguard: { policy: 'proxy.allowDestinations' },
  })
  // every decision line of a client a peer named names the peer, whose port joins it to the close line
  t.match(far2, { source: { ip: '127.0.0.1', port: Number } }, 'a client allowed: the peer that named it too')
  const farClose = lines().find(l => l.message === 'proxy.close' && field(l, 'destination.port') === dest)
  t.equal(field(farClose!, 'source.port'), field(far2!, 'source.port'), 'the decision line and its connection\'s close line: the same peer port')
  t.ok(await alive(keep), 'and still')
})

t.test('plain HTTP on a kept-alive connection: the next request after a reload (SIGHUP) meets the new clients, ports and lists', async t => {
  const origin = await startOrigin(t)
  const dir = t.testdir({ 'mine.txt': '' })
  const cfg = join(dir, 'tg.yaml')
  const config = (clients: string, ports: string) => 'dns: { upstreams: ["udp://127.0.0.1:9"], timeout: 300ms }\nadmin: null\nreload: { watch: false }\n'
    + 'lists: { mine: { files: [mine.txt], action: block } }\n'
    + `proxy: { allowClients: [${clients}], allowDestinations: [127.0.0.0/8], httpPorts: [${ports}] }\n`
  writeFileSync(cfg, config('127.0.0.1/32, 127.0.0.5/32', String(origin.port)))
  const out = new PassThrough()
  let log = ''
  out.on('data', d => { log += d })
  const r = await serve({ configPath: cfg, stdout: out, overrides: { dns: ['127.0.0.1:0'], proxy: ['127.0.0.1:0'], upstreams: ['udp://127.0.0.1:9'] }, watchFiles: false })
  t.teardown(() => r.stop())
  const proxy = r.addresses.proxy[0]!.port
  /** A kept-alive client connection from `from`; `get` sends a request for Host `host` and resolves with its answer's status line. */
  async function client(from: string) {
    const s = connect({ port: proxy, host: '127.0.0.1', localAddress: from })
    t.teardown(() => s.destroy())
    s.on('error', () => {})
    await once(s, 'connect')
    let data = ''
    s.on('data', b => { data += b.toString('latin1') })
    return {
      s,
      async get(host: string): Promise<string> {
        const n = data.match(/HTTP\/1\.1 \d{3}/g)?.length ?? 0
        s.write(`GET http://127.0.0.1:${origin.port}/ HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
        await waitFor(() => (data.match(/HTTP\/1\.1 \d{3}/g)?.length ?? 0) > n || s.destroyed)
        return data.match(/HTTP\/1\.1 \d{3}[^\r]*/g)?.[n] ?? 'none'
      },
    }
  }
  const revoked = await client('127.0.0.5')
  const listed = await client('127.0.0.1')
  t.match(await revoked.get('a.test'), /^HTTP\/1\.1 200/)
  t.match(await listed.get('app.mine.test'), /^HTTP\/1\.1 200/)
  const reloads = () => log.split('\n').filter(l => l.includes('"message":"reloaded"')).length
  const hup = async () => {
    const n = reloads()
    process.kill(process.pid, 'SIGHUP')
    t.ok(await waitFor(() => reloads() > n), 'reloaded on SIGHUP')
  }
  writeFileSync(join(dir, 'mine.txt'), 'mine.test\n')
  writeFileSync(cfg, config('127.0.0.1/32', String(origin.port)))
  await hup()
  t.match(await revoked.get('a.test'), /^HTTP\/1\.1 403/, 'the revoked client\'s next request, on the same connection: 403')
  t.match(log, /"client\.ip":"127\.0\.0\.5","client\.port":\d+,"http\.request\.method":"GET","error\.message":"not in proxy\.allowClients: 403","related\.ip":\["127\.0\.0\.5"\],"message":"proxy\.client_denied"/)
  t.match(await listed.get('app.mine.test'), /^HTTP\/1\.1 403/, 'a name now listed: 403 on the same connection')
  t.match(log, /"message":"proxy\.http".*"name":"mine\.test"/)
  t.match(await listed.get('ok.test'), /^HTTP\/1\.1 200/, 'a name not listed still passes on it')
  writeFileSync(cfg, config('127.0.0.1/32', String(origin.port + 1)))
  await hup()
  t.match(await listed.get('ok.test'), /^HTTP\/1\.1 403/, 'the port taken out of proxy.httpPorts: 403')
  t.match(log, /"event":\{"action":"block"[^\n]*"policy":"proxy\.httpPorts"/)
  t.equal(origin.requests.length, 3, 'only the requests allowed reached the origin')
})
