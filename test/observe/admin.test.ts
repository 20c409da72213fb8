import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { request } from 'node:http'
import { createServer, connect } from 'node:net'
import { promisify } from 'node:util'
import { Gauge } from 'prom-client'
import { startAdmin } from '../../src/observe/admin.js'
import { createClientTable } from '../../src/observe/client-table.js'
import { createMetrics } from '../../src/observe/metrics.js'
import type { Snapshot } from '../../src/snapshot-types.js'
import { makeSnapshot } from '../fixtures/snapshot.js'

const run = promisify(execFile)

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, timeout: 5000 }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', c => { body += c })
      res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body }))
    })
    req.on('error', reject)
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.end()
  })
}

async function start(t: Test, opts: { snapshot?: Snapshot; ready?: boolean } = {}) {
  const metrics = createMetrics()
  const clients = createClientTable()
  const snap = 'snapshot' in opts ? opts.snapshot : makeSnapshot()
  const admin = await startAdmin({ listen: '127.0.0.1:0', metrics, clients, getSnapshot: () => snap, ready: () => opts.ready ?? true })
  t.teardown(() => admin.close())
  return { admin, metrics, clients, snap }
}

t.test('routes', async t => {
  const { admin, metrics, clients, snap } = await start(t)
  t.equal(admin.address, '127.0.0.1')
  metrics.counters.cacheLookup(true)
  clients.record({ message: 'dns.query', decision: snap!.policy.decide('10.0.0.5', 'a.ngrok.io', 'qname'), client: { ip: '10.0.0.5', port: 1 }, transport: 'udp', durationNs: 1 })
  const m = await get(admin.port, '/metrics')
  t.equal(m.status, 200)
  t.match(m.type, 'text/plain')
  t.match(m.body, 'tunnelguard_dns_cache_lookups_total{result="hit"} 1')
  t.same(await get(admin.port, '/healthz'), { status: 200, type: 'text/plain; charset=utf-8', body: 'ok\n' })
  const ready = await get(admin.port, '/readyz')
  t.equal(ready.status, 200)
  t.same(JSON.parse(ready.body), { ready: true, lists: [
    { name: 'ngrok', action: 'sinkhole', entries: 3, allows: 0 }, { name: 'tunnels', action: 'alert', entries: 1, allows: 0 }], unloaded: [] })
  const c = JSON.parse((await get(admin.port, '/api/clients')).body)
  t.equal(c.count, 1)
  t.match(c.clients[0], { ip: '10.0.0.5', actions: { sinkhole: 1 }, names: [{ name: 'a.ngrok.io', count: 1 }] })
  t.notOk('hostname' in c.clients[0], 'no client names configured: no name fields')
  const check = await get(admin.port, '/api/check?name=Tunnel.Ngrok-Free.App&client=10.1.2.3')
  t.equal(check.status, 200)
  const j = JSON.parse(check.body)
  t.match(j, { name: 'tunnel.ngrok-free.app', client: '10.1.2.3', action: 'sinkhole', list: 'ngrok', entry: { pattern: 'ngrok-free.app' } })
  t.match(j.explanation, /^tunnel\.ngrok-free\.app: SINKHOLE\n  client:  10\.1\.2\.3/)
  t.match(JSON.parse((await get(admin.port, '/api/check?name=example.com')).body), { client: '127.0.0.1', action: 'pass' })
  const bad = await get(admin.port, '/api/check?client=10.0.0.1')
  t.equal(bad.status, 400)
  t.match(JSON.parse(bad.body), { error: /name/ })
  t.equal((await get(admin.port, '/nope')).status, 404)
  const post = await get(admin.port, '/metrics', 'POST')
  t.equal(post.status, 405)
  const head = await get(admin.port, '/healthz', 'HEAD')
  t.same([head.status, head.body], [200, ''])
})

t.test('real curl', async t => {
  const { admin } = await start(t)
  const { stdout } = await run('curl', ['-sS', '--max-time', '5', '--noproxy', '*', `http://127.0.0.1:${admin.port}/api/check?name=connect.ngrok-agent.com`])
  t.match(JSON.parse(stdout), { action: 'sinkhole', entry: { pattern: 'ngrok-agent.com' } })
})

t.test('not ready', async t => {
  const notReady = await start(t, { ready: false })
  const r = await get(notReady.admin.port, '/readyz')
  t.equal(r.status, 503)
  t.match(JSON.parse(r.body), { ready: false })
  const none = await start(t, { snapshot: undefined })
  const r2 = await get(none.admin.port, '/readyz')
  t.same([r2.status, JSON.parse(r2.body)], [503, { ready: false, lists: [], unloaded: [] }])
  t.equal((await get(none.admin.port, '/api/check?name=a.ngrok.io')).status, 503)
})

t.test('readyz: remote lists with no copy yet are named in unloaded, each with its URLs; still 200', async t => {
  const metrics = createMetrics()
  const remote = [
    { list: 'extra', url: 'http://u:***@127.0.0.1:1/a.txt?key=***', fetchedAt: null },
    { list: 'extra', url: 'https://lists.example/b.txt', fetchedAt: null },
    { list: 'loaded', url: 'https://lists.example/c.txt', fetchedAt: 1_700_000_000_000 },
    { list: 'half', url: 'https://lists.example/d.txt', fetchedAt: 1_700_000_000_000 },
    { list: 'half', url: 'https://lists.example/e.txt', fetchedAt: null },
  ]
  const admin = await startAdmin({ listen: '127.0.0.1:0', metrics, clients: createClientTable(), getSnapshot: () => makeSnapshot(), ready: () => true, remote: () => remote })
  t.teardown(() => admin.close())
  const r = await get(admin.port, '/readyz')
  t.equal(r.status, 200, 'a list URL that is down must not take DNS out of service')
  t.match(JSON.parse(r.body), { ready: true, unloaded: [
    { name: 'extra', urls: ['http://u:***@127.0.0.1:1/a.txt?key=***', 'https://lists.example/b.txt'] },
    { name: 'half', urls: ['https://lists.example/e.txt'] }] })
  t.equal(JSON.parse(r.body).unloaded.length, 2, 'a list with every copy is not named')
})

t.test('a bad request target, a failing collector, a broken client', async t => {
  const { admin, metrics } = await start(t)
  const raw = await new Promise<string>((resolve, reject) => {
    const s = connect(admin.port, '127.0.0.1')
    let data = ''
    s.on('data', d => { data += d })
    s.on('end', () => resolve(data))
    s.on('error', reject)
    s.end('GET //[ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')
  })
  t.match(raw, /^HTTP\/1\.1 400/)
  const garbage = await new Promise<string>(resolve => {
    const s = connect(admin.port, '127.0.0.1')
    let data = ''
    s.on('data', d => { data += d })
    s.on('close', () => resolve(data))
    s.on('error', () => resolve(data))
    s.write('NOT HTTP AT ALL\r\n\r\n')
  })
  t.match(garbage, /^HTTP\/1\.1 400 Bad Request\r\n/, 'a parse error: 400, and the connection closed')
  new Gauge({ name: 'broken', help: 'throws', registers: [metrics.registry], collect() { throw new Error('collector broke') } })
  const r = await get(admin.port, '/metrics')
  t.same([r.status, JSON.parse(r.body)], [500, { error: 'collector broke' }])
  t.equal((await get(admin.port, '/healthz')).status, 200, 'still serving')
})

t.test('listen errors', async t => {
  const base = { metrics: createMetrics(), clients: createClientTable(), getSnapshot: () => undefined, ready: () => false }
  await t.rejects(startAdmin({ ...base, listen: 'nonsense' }), { code: 'USAGE' })
  const busy = createServer()
  await new Promise<void>(r => busy.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => busy.close(() => r())))
  const port = (busy.address() as { port: number }).port
  await t.rejects(startAdmin({ ...base, listen: `127.0.0.1:${port}` }), { code: 'EADDRINUSE' })
})

t.test('/api/clients names each client as its lines did: a row per machine that held the address', async t => {
  const { admin, clients, snap } = await start(t)
  const record = (ip: string, name: string, names?: Record<string, string>) => clients.record(
    { message: 'dns.query', decision: snap!.policy.decide(ip, name, 'qname'), client: { ip, port: 1 }, transport: 'udp', durationNs: 1, dns: { name, type: 'A', rcode: 'NOERROR' } },
    names)
  record('10.0.0.7', 'a.ngrok.io', { hostname: 'dev-bob', mac: '02:00:00:00:00:22' })
  record('10.0.0.7', 'b.ngrok.io', { hostname: 'dev-bob', mac: '02:00:00:00:00:22', domain: 'bob.lan' })
  // the lease moves to another machine
  record('10.0.0.7', 'x.trycloudflare.com', { hostname: 'kiosk-lobby', mac: '02:00:00:00:00:99' })
  record('10.0.0.8', 'a.ngrok.io')
  const c = JSON.parse((await get(admin.port, '/api/clients')).body) as { count: number; clients: Record<string, unknown>[] }
  t.equal(c.count, 3)
  t.match(c.clients, [
    { ip: '10.0.0.8', names: [{ name: 'a.ngrok.io', count: 1 }] },
    { ip: '10.0.0.7', hostname: 'kiosk-lobby', mac: '02:00:00:00:00:99', actions: { alert: 1 }, names: [{ name: 'x.trycloudflare.com', count: 1 }] },
    { ip: '10.0.0.7', hostname: 'dev-bob', mac: '02:00:00:00:00:22', domain: 'bob.lan', actions: { sinkhole: 2 },
      names: [{ name: 'a.ngrok.io', count: 1 }, { name: 'b.ngrok.io', count: 1 }] },
  ], 'the ngrok queries stay with dev-bob, who asked them')
  t.same(Object.keys(c.clients[2]!).slice(0, 4), ['ip', 'hostname', 'mac', 'domain'], 'the names right after the address')
  t.notOk('domain' in c.clients[1]!, 'no PTR name known for the kiosk\'s decisions')
  t.notOk('hostname' in c.clients[0]!, 'a client without a lease or PTR name has no name fields')
})
