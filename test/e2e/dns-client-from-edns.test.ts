// tunnelguard behind another resolver (a router's dnsmasq, Pi-hole): the machine that asked is
// named by the resolver in front, in EDNS Client Subnet and dnsmasq's MAC options, and tunnelguard
// takes it from a resolver in dns.trustEdnsFrom. Real dnsmasq (--add-subnet=32,128) in front,
// real dig and kdig behind it, unbound as the upstream, then tunnelguard report.
import t from 'tap'
import { spawn, execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { dig, kdig, type Server } from '../fixtures/dig.js'
import { CLI, startServe } from '../fixtures/serve-process.js'
import { freePort, probe, startUnbound, type TestLike } from '../fixtures/unbound.js'

type Line = Record<string, any>  // eslint-disable-line @typescript-eslint/no-explicit-any -- parsed log lines

/** dnsmasq on 127.0.0.1 (a free port), forwarding everything to `to` with `flags`; no cache, so each query reaches tunnelguard. */
async function startDnsmasq(t: TestLike, to: number, flags: readonly string[]): Promise<Server> {
  let last = ''
  for (let attempt = 0; attempt < 3; attempt++) {      // the free port may be taken before dnsmasq binds it
    const port = await freePort()
    const child = spawn('dnsmasq', ['--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--bind-interfaces',
      '--listen-address=127.0.0.1', `--port=${port}`, `--server=127.0.0.1#${to}`, '--cache-size=0', '--pid-file=', '--log-facility=-', ...flags],
    { stdio: ['ignore', 'ignore', 'pipe'] })
    child.stderr!.on('data', d => { last += String(d) })
    const exited = new Promise<void>(r => child.once('exit', () => r()))
    t.teardown(async () => {
      child.kill('SIGTERM')
      await exited
    })
    // up once it answers (a.test is unbound's, through tunnelguard)
    for (let i = 0; i < 50 && child.exitCode === null; i++) {
      if ((await probe(port, 'a.test')) === 0) return { address: '127.0.0.1', port }
    }
    child.kill('SIGTERM')
  }
  throw new Error(`dnsmasq did not start: ${last}`)
}

t.test('behind dnsmasq: each machine named by its Client Subnet is the client (group, line, report); the resolver is the source', async t => {
  const ub = await startUnbound(t)
  const dir = t.testdir({ 'tunnels.txt': 'ngrok-free.app\n' })
  const port = await freePort()
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, [
    `dns: { listen: ["127.0.0.1:${port}"], upstreams: ["${ub.url}"], timeout: 1s, trustEdnsFrom: ["127.0.0.1/32"] }`,
    'proxy: { listen: [] }',
    'admin: null',
    'lists:',
    '  tunnels: { files: [tunnels.txt], action: block }',
    'groups:',
    '  - { name: lab, clients: [127.0.0.6/32], actions: { tunnels: sinkhole } }',
  ].join('\n'))
  const p = await startServe(t, ['--config', cfg])
  const front = await startDnsmasq(t, port, ['--add-subnet=32,128'])
  const queries = () => p.lines().filter((l: Line) => l.message === 'dns.query') as Line[]
  const lineFor = (name: string) => p.waitFor(l => l.message === 'dns.query' && (l as Line).dns.question.name === name) as Promise<Line>

  const five = await dig(front, 'five.ngrok-free.app', 'A', ['-b', '127.0.0.5'])
  t.equal(five.status, 'NXDOMAIN', '127.0.0.5: blocked, as the list says')
  const l5 = await lineFor('five.ngrok-free.app')
  t.same(l5.client, { ip: '127.0.0.5' }, 'the line names 127.0.0.5 (no port: the option carries none)')
  t.equal(l5.source.ip, '127.0.0.1', 'and the resolver in front as the source')
  t.type(l5.source.port, 'number')

  const six = await dig(front, 'six.ngrok-free.app', 'A', ['-b', '127.0.0.6'])
  t.same(six.answer.map(r => r.data), ['0.0.0.0'], '127.0.0.6: its group (lab) sinkholes instead')
  t.match(await lineFor('six.ngrok-free.app'), { client: { ip: '127.0.0.6' }, event: { action: 'sinkhole' }, tunnelguard: { group: 'lab' } })

  const seven = await kdig(front, 'seven.ngrok-free.app', 'A', ['-b', '127.0.0.7', '+tcp'])
  t.equal(seven.status, 'NXDOMAIN', 'kdig over TCP, through dnsmasq')
  t.match(await lineFor('seven.ngrok-free.app'), { client: { ip: '127.0.0.7' } })

  const ok = await dig(front, 'a.test', 'A', ['-b', '127.0.0.5'])
  t.same(ok.answer.map(r => r.data), ['192.0.2.1'], 'other names are forwarded and answered as before')

  // a client of the resolver's (dig with +subnet, as dnsdist or another forwarder adds it) and dnsmasq's MAC forms
  const direct: Server = { address: '127.0.0.1', port }
  await dig(direct, 'mac.ngrok-free.app', 'A', ['+subnet=10.20.30.40/32', '+ednsopt=65001:02005e10000a'])
  t.match(await lineFor('mac.ngrok-free.app'), { client: { ip: '10.20.30.40', mac: '02-00-5E-10-00-0A' }, source: { ip: '127.0.0.1' } },
    '--add-mac: the machine\'s MAC on its line')
  await dig(direct, 'text.ngrok-free.app', 'A', ['+ednsopt=65073:' + Buffer.from('02:00:5e:10:00:0b').toString('hex')])
  const text = await lineFor('text.ngrok-free.app')
  t.match(text, { client: { ip: '127.0.0.1', mac: '02-00-5E-10-00-0B' } }, '--add-mac=text without a Client Subnet: the sender, with the MAC')
  t.notOk('source' in text, 'no source: the client is the sender')

  // a sender outside trustEdnsFrom: its options are not read
  const stranger = await dig(direct, 'stranger.ngrok-free.app', 'A', ['-b', '127.0.0.2', '+subnet=127.0.0.6/32', '+ednsopt=65001:02005e10000c'])
  t.equal(stranger.status, 'NXDOMAIN', 'blocked: not the sinkhole of the lab group the option names')
  const ls = await lineFor('stranger.ngrok-free.app')
  t.equal(ls.client.ip, '127.0.0.2', 'the sender is the client')
  t.notOk('mac' in ls.client, 'no MAC taken from it')

  await p.stop()
  const log = join(dir, 'tg.jsonl')
  writeFileSync(log, p.stdout())
  const report = JSON.parse(execFileSync(process.execPath, [CLI, 'report', log, '--format', 'json'], { encoding: 'utf8' })) as { clients: Line[] }
  const ips = report.clients.map(c => c.ip).sort()
  t.same(ips, ['10.20.30.40', '127.0.0.1', '127.0.0.2', '127.0.0.5', '127.0.0.6', '127.0.0.7'], 'report: one client per machine, not one for dnsmasq')
  t.equal(queries().filter(l => l.client.ip === '127.0.0.5').length, 1, 'a.test (passed) is not logged by default')
})
