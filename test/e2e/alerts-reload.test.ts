import t from 'tap'
import { appendFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startServe } from '../fixtures/serve-process.js'
import { dig } from '../fixtures/dig.js'
import { startSyslogReceiver, startWebhookReceiver } from '../fixtures/alert-receivers.js'

t.test('alerts appended to a running config reach the webhook and syslog without a restart', async t => {
  const { port, posts } = await startWebhookReceiver(t)
  const { port: syslogPort, datagrams } = await startSyslogReceiver(t)

  const dir = t.testdir({ 'l.txt': 'ngrok.io\n' })
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, 'dns: { listen: ["127.0.0.1:0"], upstreams: ["udp://127.0.0.1:9"] }\nproxy: { listen: [] }\nadmin: { listen: "127.0.0.1:0" }\nlists:\n  l: { files: [l.txt], action: block }\nreload: { debounce: 50ms }\n')
  const p = await startServe(t, ['--config', cfg])
  const started = p.lines().find(l => l.message === 'started') as { 'tunnelguard.dns': { transport: string; address: string; port: number }[] }
  const udp = started['tunnelguard.dns'].find(a => a.transport === 'udp')!
  appendFileSync(cfg, `alerts: {window: 5m, webhook: {url: "http://127.0.0.1:${port}/tg"}, syslog: {url: "udp://127.0.0.1:${syslogPort}"}}\n`)
  await p.waitFor(l => l.message === 'reloaded')
  await dig(udp, 'tunnel.ngrok.io')
  for (let i = 0; i < 250 && (posts.length === 0 || datagrams.length === 0); i++) await new Promise(r => setTimeout(r, 20))
  t.equal(posts.length, 1, 'the webhook got the alert')
  t.match(posts[0], { rule: { name: 'ngrok.io', ruleset: 'l' }, dns: { question: { name: 'tunnel.ngrok.io' } } })
  t.equal(datagrams.length, 1, 'syslog got it')
  t.match(datagrams[0], /tunnel\.ngrok\.io/)
  t.equal(await p.stop(), 0)
})

t.test('admin.listen changed by a reload: a warning that listeners change only on restart', async t => {
  const dir = t.testdir({ 'l.txt': 'ngrok.io\n' })
  const cfg = join(dir, 'tg.yaml')
  const base = 'dns: { listen: ["127.0.0.1:0"], upstreams: ["udp://127.0.0.1:9"] }\nproxy: { listen: [] }\nlists:\n  l: { files: [l.txt] }\nreload: { watch: false }\n'
  writeFileSync(cfg, base + 'admin: { listen: "127.0.0.1:0" }\n')
  const p = await startServe(t, ['--config', cfg])
  writeFileSync(cfg, base + 'admin: { listen: "127.0.0.1:19153" }\n')
  p.child.kill('SIGHUP')
  const w = await p.waitFor(l => typeof l.message === 'string' && l.message.startsWith('reload: admin.listen changed'))
  t.match(w, { 'log.level': 'warn', message: 'reload: admin.listen changed; listeners change only on restart', 'tunnelguard.listening': '127.0.0.1:0', 'tunnelguard.new': '127.0.0.1:19153' })
  t.equal(await p.stop(), 0)
})
