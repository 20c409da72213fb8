// Client names as a user gets them: serve with a dnsmasq lease file and PTR lookups through
// unbound (which holds the PTR), real dig from 127.0.0.2, then tunnelguard report.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { dig } from '../fixtures/dig.js'
import { CLI, startServe } from '../fixtures/serve-process.js'
import { freePort, startUnbound } from '../fixtures/unbound.js'

type Line = Record<string, any>  // eslint-disable-line @typescript-eslint/no-explicit-any -- parsed log lines

t.test('serve: client.hostname and client.mac from the lease, client.domain from PTR on later lines; a rewritten lease file shows', async t => {
  const ub = await startUnbound(t, { server: ['local-data-ptr: "127.0.0.2 laptop-2.lan"'] })
  const expiry = Math.floor(Date.now() / 1000) + 3600
  const dir = t.testdir({
    'tunnels.txt': 'ngrok-agent.com\n',
    'dnsmasq.leases': `${expiry} 02:00:00:00:00:02 127.0.0.2 build-2 01:02:00:00:00:00:02\n`,
  })
  const port = await freePort()
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, [
    `dns: { listen: ["127.0.0.1:${port}"], upstreams: ["${ub.url}"], timeout: 1s }`,
    'proxy: { listen: [] }',
    'admin: { listen: "127.0.0.1:0" }',
    'lists:',
    '  tunnels: { files: [tunnels.txt], action: sinkhole }',
    'clients: { leases: [dnsmasq.leases], leaseCheck: 200ms, ptr: true, ptrTtl: 1h }',
  ].join('\n'))
  const p = await startServe(t, ['--config', cfg])
  const server = { address: '127.0.0.1', port }
  /** The answer to one query from 127.0.0.2. */
  const ask = async () => (await dig(server, 'connect.ngrok-agent.com', 'A', ['-b', '127.0.0.2'])).answer[0]?.data
  const queries = () => p.lines().filter((l: Line) => l.message === 'dns.query') as Line[]
  /** Ask until a line satisfies `pred` (bounded); every answer on the way must be the sinkhole (one assertion, however many tries). */
  const askUntil = async (pred: (l: Line) => boolean) => {
    const answers: (string | undefined)[] = []
    for (let i = 0; i < 40 && !queries().some(pred); i++) {
      answers.push(await ask())
      await new Promise(r => setTimeout(r, 100))
    }
    t.same(answers.filter(a => a !== '0.0.0.0'), [], `all ${answers.length} answers sinkholed`)
    return queries().find(pred)
  }

  t.equal(await ask(), '0.0.0.0', 'sinkholed')
  const first = await p.waitFor(l => l.message === 'dns.query')
  t.same(first.client, { ip: '127.0.0.2', port: (first as Line).client.port, hostname: 'build-2', mac: '02-00-00-00-00-02' },
    'the first line names the lease holder and does not wait for the PTR lookup')
  const withPtr = await askUntil(l => l.client.domain !== undefined)
  t.match(withPtr, { client: { ip: '127.0.0.2', hostname: 'build-2', mac: '02-00-00-00-00-02', domain: 'laptop-2.lan' } }, 'a later line carries the PTR name')

  // dnsmasq rewrites its lease file by renaming a new one over it
  writeFileSync(join(dir, 'new.leases'), `${expiry} 02:00:00:00:00:2b 127.0.0.2 build-2b *\n`)
  renameSync(join(dir, 'new.leases'), join(dir, 'dnsmasq.leases'))
  const changed = await askUntil(l => l.client.hostname === 'build-2b')
  t.match(changed, { client: { hostname: 'build-2b', mac: '02-00-00-00-00-2B', domain: 'laptop-2.lan' } }, 'the new lease on later lines')
  t.notOk(p.lines().some((l: Line) => l['log.level'] === 'warn' && l.message !== 'dns.query'), 'no warnings')
  const started = await p.waitFor(l => l.message === 'started') as { 'tunnelguard.admin': { port: number } }
  const live = await fetch(`http://127.0.0.1:${started['tunnelguard.admin'].port}/api/clients`).then(r => r.json()) as { clients: unknown[] }
  t.match(live.clients, [
    { ip: '127.0.0.2', hostname: 'build-2b', mac: '02-00-00-00-00-2B', domain: 'laptop-2.lan' },
    { ip: '127.0.0.2', hostname: 'build-2', mac: '02-00-00-00-00-02', domain: 'laptop-2.lan' },
  ], '/api/clients names each machine as the lines do: the new lease holder and the old one, each with its own decisions')
  t.equal(live.clients.length, 2)

  await p.stop()
  const log = join(dir, 'tg.jsonl')
  writeFileSync(log, p.stdout())
  const report = (...a: string[]) => execFileSync(process.execPath, [CLI, 'report', log, ...a], { encoding: 'utf8' })
  const json = JSON.parse(report('--format', 'json'))
  const lines = queries()
  const byMac = (mac: string) => json.clients.find((c: { mac: string }) => c.mac === mac)
  t.equal(json.clients.length, 2, 'report: a client per machine that held the address')
  t.match(byMac('02-00-00-00-00-02'), { ip: '127.0.0.2', hostname: 'build-2', domain: 'laptop-2.lan', total: lines.filter(l => l.client.hostname === 'build-2').length })
  t.match(byMac('02-00-00-00-00-2B'), { ip: '127.0.0.2', hostname: 'build-2b', domain: 'laptop-2.lan', total: lines.filter(l => l.client.hostname === 'build-2b').length })
  t.match(report(), 'CLIENT 127.0.0.2  build-2b  laptop-2.lan  02-00-00-00-00-2B\n')
  t.match(report(), 'CLIENT 127.0.0.2  build-2  laptop-2.lan  02-00-00-00-00-02\n')
  t.match(report('--format', 'csv'), /\n127\.0\.0\.2,build-2b,laptop-2\.lan,02-00-00-00-00-2B,connect\.ngrok-agent\.com,/)
})

t.test('serve: a missing lease file is a warning naming it; serving goes on', async t => {
  const ub = await startUnbound(t)
  const dir = t.testdir({ 'tunnels.txt': 'ngrok-agent.com\n' })
  const port = await freePort()
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, [
    `dns: { listen: ["127.0.0.1:${port}"], upstreams: ["${ub.url}"], timeout: 1s }`,
    'proxy: { listen: [] }', 'admin: { listen: null }',
    'lists:', '  tunnels: { files: [tunnels.txt], action: sinkhole }',
    'clients: { leases: [missing.leases] }',
  ].join('\n'))
  const p = await startServe(t, ['--config', cfg])
  t.match(p.lines().find(l => l.message === 'cannot read lease file; keeping its last good leases'), { 'log.level': 'warn', 'file.path': join(dir, 'missing.leases') })
  t.equal((await dig({ address: '127.0.0.1', port }, 'connect.ngrok-agent.com')).answer[0]?.data, '0.0.0.0')
  const line = (await p.waitFor(l => l.message === 'dns.query')) as Line
  t.same(Object.keys(line.client), ['ip', 'port'], 'no names')
})
