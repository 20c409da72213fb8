import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startServe } from '../fixtures/serve-process.js'
import { dig } from '../fixtures/dig.js'

// A reload of a big list used to hold the event loop for its whole parse (seconds for a million
// names): every query waited. Now the parse gives the loop a turn every couple of milliseconds.
t.test('queries are answered while a big list is read at a reload (SIGHUP), by the lists loaded before it', async t => {
  const names = Array.from({ length: 250_000 }, (_, i) => `h${i}.d${i % 1000}.big.example`)
  const dir = t.testdir({ 'big.txt': names.join('\n') + '\n', 'small.txt': 'ngrok.io\n' })
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, 'dns: { listen: ["127.0.0.1:0"], upstreams: ["udp://127.0.0.1:9"] }\nproxy: { listen: [] }\nadmin: { listen: null }\n'
    + 'lists:\n  small: { files: [small.txt], action: block }\n  big: { files: [big.txt], action: block }\nreload: { watch: false }\n')
  const p = await startServe(t, ['--config', cfg], [], 120_000)
  const started = p.lines().find(l => l.message === 'started') as { 'tunnelguard.dns': { transport: string; address: string; port: number }[] }
  const udp = started['tunnelguard.dns'].find(a => a.transport === 'udp')!
  t.equal((await dig(udp, 'x.ngrok.io')).status, 'NXDOMAIN', 'serving')

  // the reload drops the small list: an answer of NOERROR-with-no-upstream (SERVFAIL) would mean the new lists were in use
  writeFileSync(cfg, 'dns: { listen: ["127.0.0.1:0"], upstreams: ["udp://127.0.0.1:9"] }\nproxy: { listen: [] }\nadmin: { listen: null }\n'
    + 'lists:\n  big: { files: [big.txt], action: block }\nreload: { watch: false }\n')
  const mark = p.stdout().length
  p.child.kill('SIGHUP')
  const during: string[] = []
  for (let i = 0; i < 400; i++) {
    const r = await dig(udp, 'x.ngrok.io')
    const log = p.stdout().slice(mark)
    if (log.includes('"message":"reloaded"')) break
    if (log.includes('"message":"reload started"')) during.push(r.status)
  }
  const reloaded = await p.waitFor(l => l.message === 'reloaded', 60_000) as { 'tunnelguard.took_ms': number; 'tunnelguard.lists': { name: string; entries: number }[] }
  t.same(reloaded['tunnelguard.lists'], [{ name: 'big', entries: 250_000 }])
  t.ok(during.length >= 3, `answers between "reload started" and "reloaded" (${during.length}, the reload took ${reloaded['tunnelguard.took_ms']} ms)`)
  t.ok(during.every(s => s === 'NXDOMAIN'), 'each by the lists loaded before (the old small list blocks)')
  t.equal((await dig(udp, 'x.ngrok.io')).status, 'SERVFAIL', 'then the new lists: the name is no longer listed and the dead upstream gives SERVFAIL')
  t.equal((await dig(udp, 'h249999.d999.big.example')).status, 'NXDOMAIN', 'the big list is in use')
  t.equal(await p.stop(), 0)
})
