import t from 'tap'
import { createSocket } from 'node:dgram'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import dnsPacket from 'dns-packet'
import { startServe } from '../fixtures/serve-process.js'
import { decodeMsg, dig } from '../fixtures/dig.js'

// Half the datagrams to the upstream lost (a congested link, a rate-limiting firewall): each query
// was sent once and waited out its whole time, so the clients got SERVFAIL one for one with the
// loss. Now a query unanswered for a third of its time is sent again.
t.test('serve: an upstream link that loses the first datagram of every query still answers every dig, within the time', async t => {
  const up = createSocket('udp4')
  const seen = new Map<string, number>()
  up.on('message', (m, r) => {
    const d = decodeMsg(m)
    const name = d.questions![0]!.name.toLowerCase()
    const n = (seen.get(name) ?? 0) + 1
    seen.set(name, n)
    if (n === 1) return
    up.send(dnsPacket.encode({ type: 'response', id: d.id, flags: 0x8180, questions: d.questions as dnsPacket.Question[],
      answers: [{ type: 'A', name: d.questions![0]!.name, ttl: 60, data: '192.0.2.7' }] }), r.port, r.address)
  })
  await new Promise<void>(r => up.bind(0, '127.0.0.1', () => r()))
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
