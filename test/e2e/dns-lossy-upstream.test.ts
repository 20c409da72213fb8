import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startServe } from '../fixtures/serve-process.js'
import { dig } from '../fixtures/dig.js'
import { lossyUpstream } from '../fixtures/lossy-upstream.js'

// Half the datagrams to the upstream lost (a congested link, a rate-limiting firewall): each query
// was sent once and waited out its whole time, so the clients got SERVFAIL one for one with the
// loss. Now a query unanswered for a third of its time is sent again.
t.test('serve: an upstream link that loses the first datagram of every query still answers every dig, within the time', async t => {
  const { socket: up, seen } = await lossyUpstream(0, n => n > 1)   // the first datagram of each name lost
  t.teardown(() => up.close())
  const dir = t.testdir({})
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, `dns: { listen: ["127.0.0.1:0"], upstreams: ["udp://127.0.0.1:${up.address().port}"], timeout: 1500ms }\nproxy: { listen: [] }\nadmin: { listen: null }\n`)
  const p = await startServe(t, ['--config', cfg])
  const started = p.lines().find(l => l.message === 'started') as { 'tunnelguard.dns': { transport: string; address: string; port: number }[] }
  const udp = started['tunnelguard.dns'].find(a => a.transport === 'udp')!
  const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => dig(udp, `host${i}.lossy.example`)))
  t.same(answers.map(a => a.status), Array(8).fill('NOERROR'), 'no SERVFAIL for a lost datagram')
  t.same(answers.map(a => a.answer.map(r => r.data)), Array(8).fill(['192.0.2.7']))
  t.same([...seen.values()], Array(8).fill(2), 'each asked twice: once lost, once answered')
  t.equal(await p.stop(), 0)
})
