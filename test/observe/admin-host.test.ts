// The admin listener answers only Host headers DNS rebinding cannot produce (red-team F12: a
// page at rebind.attacker.example, its name rebound to 127.0.0.1, read /api/clients): IP
// literals, localhost, and the names in admin.allowHosts. Probes and scrapers ask by address.
import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { promisify } from 'node:util'
import { startAdmin, hostAllowed } from '../../src/observe/admin.js'
import { configSchema } from '../../src/config/schema.js'
import { createClientTable } from '../../src/observe/client-table.js'
import { createMetrics } from '../../src/observe/metrics.js'
import { makeSnapshot } from '../fixtures/snapshot.js'
import { bodyOf, head, raw, serveAdmin, statusOf } from '../fixtures/admin-http.js'

const run = promisify(execFile)

async function start(t: Test, allowHosts?: string[]) {
  const clients = createClientTable()
  const snap = makeSnapshot()
  clients.record({ message: 'dns.query', decision: snap.policy.decide('10.0.0.5', 'a.ngrok.io', 'qname'), client: { ip: '10.0.0.5', port: 1 }, transport: 'udp', durationNs: 1 })
  const admin = await startAdmin({ listen: '127.0.0.1:0', metrics: createMetrics(), clients, getSnapshot: () => snap, ready: () => true, allowHosts })
  t.teardown(() => admin.close())
  return admin
}

const PATHS = ['/api/clients', '/api/check?name=a.ngrok.io', '/readyz', '/metrics', '/healthz', '/nope']

t.test('a rebound name is answered 421 on every path, and learns nothing', async t => {
  const admin = await start(t)
  for (const path of PATHS) {
    const r = await raw(admin.port, head(path, `rebind.attacker.example:${admin.port}`))
    t.equal(statusOf(r), 421, path)
    t.notMatch(r.text, /10\.0\.0\.5|ngrok/, `${path}: no client, no name`)
    t.match(JSON.parse(bodyOf(r)), { error: `Host "rebind.attacker.example:${admin.port}" is not served here: ask by IP address or localhost, or list the name in admin.allowHosts` })
    t.match(r.text, /\r\nx-content-type-options: nosniff\r\n/i)
  }
  const post = await raw(admin.port, `POST /api/clients HTTP/1.1\r\nHost: rebind.attacker.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`)
  t.equal(statusOf(post), 421, 'whatever the method')
})

t.test('the red-team repro with curl: 421, and by address 200', async t => {
  const admin = await start(t)
  const curl = (host?: string) => run('curl', ['-sS', '--max-time', '5', '--noproxy', '*', '-o', '/dev/null', '-w', '%{http_code}',
    ...host ? ['-H', `Host: ${host}`] : [], `http://127.0.0.1:${admin.port}/api/clients`]).then(r => r.stdout)
  t.equal(await curl(`rebind.attacker.example:${admin.port}`), '421')
  t.equal(await curl(), '200')
  t.equal(await curl(`localhost:${admin.port}`), '200')
})

t.test('IP literals, localhost and no Host at all are served', async t => {
  const admin = await start(t)
  const served = [
    `127.0.0.1:${admin.port}`, '127.0.0.1', '10.1.2.3:9153', '[::1]:9153', '[::1]', '[fd00::7]:9153',
    'localhost', `LocalHost:${admin.port}`, '192.0.2.1:',
  ]
  for (const host of served) t.equal(statusOf(await raw(admin.port, head('/api/clients', host))), 200, `Host: ${host}`)
  const http10 = await raw(admin.port, 'GET /healthz HTTP/1.0\r\n\r\n')
  t.equal(statusOf(http10), 200, 'HTTP/1.0 without Host (no browser sends that)')
  // a kubelet httpGet probe: Host is the pod IP and the port, User-Agent kube-probe
  const probe = await raw(admin.port, head('/readyz', '10.244.1.17:9153', 'User-Agent: kube-probe/1.30\r\nAccept: */*\r\n'))
  t.equal(statusOf(probe), 200, 'the kubelet probe of the Kubernetes example')
})

t.test('names, and what only looks like an address, are refused', async t => {
  const admin = await start(t)
  const refused = [
    'rebind.attacker.example', 'localhost.attacker.example', '127.0.0.1.nip.io', 'attacker.example:80:81',
    '[127.0.0.1]:9153', '[::1', '::1', '', 'tunnelguard-admin', '2130706433', 'localhost:x',
  ]
  for (const host of refused) t.equal(statusOf(await raw(admin.port, head('/healthz', host))), 421, `Host: ${JSON.stringify(host)}`)
})

t.test('admin.allowHosts: those names are served too, in any case and with any port', async t => {
  const admin = await start(t, ['tunnelguard-admin.monitoring.svc', 'TG.Example'])
  for (const host of ['tunnelguard-admin.monitoring.svc:9153', 'Tunnelguard-Admin.Monitoring.Svc', 'tg.example:80']) {
    t.equal(statusOf(await raw(admin.port, head('/api/clients', host))), 200, host)
  }
  for (const host of ['tunnelguard-admin', 'x.tunnelguard-admin.monitoring.svc', 'rebind.attacker.example']) {
    t.equal(statusOf(await raw(admin.port, head('/api/clients', host))), 421, host)
  }
})

t.test('hostAllowed', async t => {
  const allow = new Set(['a.example'])
  t.ok(hostAllowed(undefined, allow))
  t.ok(hostAllowed('a.example', allow))
  t.notOk(hostAllowed('b.example', allow))
  t.notOk(hostAllowed('a.example', new Set()))
})

t.test('admin.allowHosts in the config: host names, kept in lower case; serve passes them on', async t => {
  t.same(configSchema.parse({}).admin.allowHosts, [])
  t.same(configSchema.parse({ admin: { allowHosts: ['TG-Admin.Monitoring.svc', 'localhost'] } }).admin.allowHosts, ['tg-admin.monitoring.svc', 'localhost'])
  for (const bad of ['http://x.example', 'x.example:9153', '-x.example', 'x..example', '*.example', '']) {
    const r = configSchema.safeParse({ admin: { allowHosts: [bad] } })
    t.notOk(r.success, JSON.stringify(bad))
    t.match(r.error?.issues[0]?.message, /not a host name/)
  }
  const port = await serveAdmin(t, 'allowHosts: [tg.example]')
  t.equal(statusOf(await raw(port, head('/healthz', `tg.example:${port}`))), 200, 'a name from admin.allowHosts')
  t.equal(statusOf(await raw(port, head('/healthz', `other.example:${port}`))), 421, 'any other name')
})

t.test("the image's HEALTHCHECK passes against the real admin listener", async t => {
  const admin = await start(t)
  const dockerfile = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8')
  const m = /^ {2}CMD \["node", "-e", "(.+)"\]$/m.exec(dockerfile)
  const js = (JSON.parse(`"${m![1]}"`) as string).replace('127.0.0.1:9153', `127.0.0.1:${admin.port}`)
  t.match(js, `http://127.0.0.1:${admin.port}/healthz`, 'it asks by address')
  const code = await new Promise<number>(res => {
    execFile(process.execPath, ['-e', js], { timeout: 10_000 }, e => res(e ? (e.code as number) ?? -1 : 0))
  })
  t.equal(code, 0, 'healthy')
})
