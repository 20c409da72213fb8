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
  t.match(w, { 'log.level': 'warn', message: 'reload: admin.listen changed; listeners change only on restart', 'tunnelguard.listening': ['127.0.0.1:0'], 'tunnelguard.new': ['127.0.0.1:19153'] })
  t.equal(await p.stop(), 0)
})

t.test('a reload rejected for a bad syslog URL keeps the old syslog and webhook delivering; the fixed config then applies', async t => {
  const { port: hook1, posts: posts1 } = await startWebhookReceiver(t)
  const { port: hook2, posts: posts2 } = await startWebhookReceiver(t)
  const { port: syslogPort, datagrams } = await startSyslogReceiver(t)
  const dir = t.testdir({ 'l.txt': 'ngrok.io\n', 'other.txt': 'other.example\n' })
  const cfg = join(dir, 'tg.yaml')
  const base = (list: string) => `dns: { listen: ["127.0.0.1:0"], upstreams: ["udp://127.0.0.1:9"] }\nproxy: { listen: [] }\nadmin: { listen: null }\nlists:\n  l: { files: [${list}], action: block }\nreload: { watch: false, debounce: 10ms }\n`
  const alerts = (hook: number, syslog: number) => `alerts: {window: 0, webhook: {url: "http://127.0.0.1:${hook}/tg", backoff: 10ms}, syslog: {url: "udp://127.0.0.1:${syslog}"}}\n`
  writeFileSync(cfg, base('l.txt') + alerts(hook1, syslogPort))
  const p = await startServe(t, ['--config', cfg])
  const started = p.lines().find(l => l.message === 'started') as { 'tunnelguard.dns': { transport: string; address: string; port: number }[] }
  const udp = started['tunnelguard.dns'].find(a => a.transport === 'udp')!
  const count = (msg: string) => p.lines().filter(l => l.message === msg).length
  /** One blocked query; waits (bounded) until syslog has `n` datagrams and `posts` has `m` posts. */
  async function alertOnce(n: number, posts: unknown[], m: number): Promise<void> {
    await dig(udp, 'tunnel.ngrok.io')
    for (let i = 0; i < 250 && (datagrams.length < n || posts.length < m); i++) await new Promise(r => setTimeout(r, 20))
  }
  async function hup(msg: string): Promise<void> {
    const before = count(msg)
    p.child.kill('SIGHUP')
    await p.waitFor(() => count(msg) > before)
  }

  await alertOnce(1, posts1, 1)
  t.equal(datagrams.length, 1, 'syslog got the first alert')
  t.equal(posts1.length, 1, 'the webhook too')

  // the webhook and the list change in the same (rejected) reload: none of it applies
  writeFileSync(cfg, base('other.txt') + alerts(hook2, 99999))
  await hup('reload rejected; keeping the previous config and lists')
  const rejected = p.lines().find(l => l.message === 'reload rejected; keeping the previous config and lists')!
  t.same(rejected['tunnelguard.reload_errors'], [`${cfg}: 1 error`, `${cfg}:7: alerts.syslog.url: 99999 is not a port (1-65535); write e.g. udp://127.0.0.1:514`], 'rejected by the config check: file, line, setting, fix')
  await alertOnce(2, posts1, 2)
  t.equal(datagrams.length, 2, 'after the rejected reload the old syslog output still delivers')
  t.equal(posts1.length, 2, 'and the old webhook (and the old list still blocks the name)')
  t.equal(posts2.length, 0, 'the rejected webhook got nothing')

  writeFileSync(cfg, base('l.txt') + alerts(hook2, syslogPort))
  await hup('reloaded')
  await alertOnce(3, posts2, 1)
  t.equal(datagrams.length, 3, 'the fixed config: syslog delivers')
  t.equal(posts2.length, 1, 'and the new webhook')
  t.equal(posts1.length, 2, 'the old webhook got nothing more')
  t.same(p.lines().filter(l => typeof l.message === 'string' && l.message.startsWith('alert ')), [], 'no alert output failed or gave up')
  t.equal(await p.stop(), 0)
})
