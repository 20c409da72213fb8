import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startServe } from '../fixtures/serve-process.js'
import { dig } from '../fixtures/dig.js'

// A list or config file caught while its writer pauses mid-file (emptied first, as an editor saving
// in place or scp does) was applied by the file watch at once: the listed names passed. Now such a
// change is held until the files have read the same for 10 s, or a SIGHUP.
t.test('serve: a list emptied or a config cut short by a writer is held, the names stay blocked; a SIGHUP applies it', async t => {
  const list = 'ngrok.io\nngrok-free.app\nconnect.ngrok-agent.com\n'
  const dir = t.testdir({ 'l.txt': list })
  const cfg = join(dir, 'tg.yaml')
  const head = 'dns: { listen: ["127.0.0.1:0"], upstreams: ["udp://127.0.0.1:9"], timeout: 500ms }\nproxy: { listen: [] }\nadmin: { listen: null }\n'
  const whole = head + 'reload: { watch: true, debounce: 100ms }\nlists:\n  mine: { files: [l.txt], action: block }\n'
  writeFileSync(cfg, whole)
  const p = await startServe(t, ['--config', cfg])
  const started = p.lines().find(l => l.message === 'started') as { 'tunnelguard.dns': { transport: string; address: string; port: number }[] }
  const udp = started['tunnelguard.dns'].find(a => a.transport === 'udp')!
  t.equal((await dig(udp, 'x.ngrok-free.app')).status, 'NXDOMAIN', 'blocked')
  const count = (m: string) => p.lines().filter(l => l.message === m).length

  writeFileSync(join(dir, 'l.txt'), '')                       // the writer's first step
  const held = await p.waitFor(l => l.message === 'reload held: the change weakens the protection')
  t.match(held, { 'log.level': 'warn', 'tunnelguard.changes': ['list mine: 3 → 0 entries'], 'tunnelguard.hold_ms': 10_000 })
  t.equal((await dig(udp, 'x.ngrok-free.app')).status, 'NXDOMAIN', 'still blocked while held')
  writeFileSync(join(dir, 'l.txt'), list + 'trycloudflare.com\n')   // the writer goes on
  await p.waitFor(l => l.message === 'reloaded' && JSON.stringify(l['tunnelguard.lists']) === '[{"name":"mine","entries":4}]')
  t.equal((await dig(udp, 'a.trycloudflare.com')).status, 'NXDOMAIN', 'the finished file is in use')
  t.equal((await dig(udp, 'x.ngrok-free.app')).status, 'NXDOMAIN')

  writeFileSync(cfg, head + 'reload: { watch: true, debounce: 100ms }\n')   // cut before its lists
  await p.waitFor(l => l.message === 'reload held: the change weakens the protection' && JSON.stringify(l['tunnelguard.changes']).includes('list mine removed'))
  t.equal(count('reload held: the change weakens the protection'), 2)
  t.equal((await dig(udp, 'a.trycloudflare.com')).status, 'NXDOMAIN', 'the running lists are kept')
  const reloads = count('reloaded')
  p.child.kill('SIGHUP')                                      // the admin: the file is as meant
  await p.waitFor(() => count('reloaded') > reloads)
  t.equal((await dig(udp, 'a.trycloudflare.com')).status, 'SERVFAIL', 'applied: the name is not listed now (the dead upstream gives SERVFAIL)')
  t.equal(await p.stop(), 0)
})
