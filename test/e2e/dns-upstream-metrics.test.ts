// What /metrics says of the DNS upstreams: whether each is up (tunnelguard_upstream_up, which
// was said only in the "dns upstream down" / "up" log lines), and how many UDP queries were sent
// to it again (tunnelguard_upstream_resends_total). A real `serve`, dig, and upstreams the test
// runs on 127.0.0.1.
import t, { type Test } from 'tap'
import type { Socket } from 'node:dgram'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startServe, type ServeProcess } from '../fixtures/serve-process.js'
import { dig } from '../fixtures/dig.js'
import { freePort } from '../fixtures/unbound.js'
import { lossyUpstream } from '../fixtures/lossy-upstream.js'

/** lossyUpstream's socket (see the fixture). */
const upstream = async (port: number, answers?: (n: number) => boolean): Promise<Socket> => (await lossyUpstream(port, answers)).socket

const closeSocket = (s: Socket) => new Promise<void>(r => { s.close(() => r()) })

interface Running {
  p: ServeProcess
  dns: { address: string; port: number }
  /** /metrics' lines about `metric` (name and labels → value). */
  scrape(metric: string): Promise<Record<string, number>>
}

async function serveWith(t: Test, cfg: string): Promise<Running> {
  const p = await startServe(t, ['--config', cfg], [], 30_000)
  const started = p.lines().find(l => l.message === 'started') as {
    'tunnelguard.dns': { transport: string; address: string; port: number }[]; 'tunnelguard.admin': { port: number }
  }
  const dns = started['tunnelguard.dns'].find(a => a.transport === 'udp')!
  const admin = started['tunnelguard.admin'].port
  return {
    p, dns,
    async scrape(metric) {
      const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text()
      return Object.fromEntries(text.split('\n').filter(l => l.startsWith(`${metric}{`)).map(l => {
        const sp = l.lastIndexOf(' ')
        return [l.slice(metric.length, sp), Number(l.slice(sp + 1))]
      }))
    },
  }
}

t.test('tunnelguard_upstream_up: 0 once the upstream is marked down, 1 once it answers again; a reload takes one out and puts others in', async t => {
  const [a, b, c] = [await freePort(), await freePort(), await freePort()]
  const urlA = `udp://127.0.0.1:${a}`
  let upA = await upstream(a)
  const upB = await upstream(b)
  t.teardown(async () => { await closeSocket(upB); try { upA.close() } catch { /* closed already */ } })
  const dir = t.testdir({})
  const cfg = join(dir, 'tg.yaml')
  const config = (dns: string) => `dns: { listen: ["127.0.0.1:0"], timeout: 1000ms, ${dns} }\nproxy: { listen: [] }\nadmin: { listen: "127.0.0.1:0" }\nreload: { watch: false }\n`
  writeFileSync(cfg, config(`upstreams: ["${urlA}"]`))
  const s = await serveWith(t, cfg)
  t.same(await s.scrape('tunnelguard_upstream_up'), { [`{upstream="${urlA}"}`]: 1 }, 'the configured upstream, up, before any query')
  t.equal((await dig(s.dns, 'before.example')).status, 'NOERROR')

  // the upstream stops: each query to it fails (ICMP port unreachable), and three in a row mark it down
  await closeSocket(upA)
  let down: Record<string, unknown> | undefined
  for (let i = 0; i < 8 && !down; i++) {
    t.equal((await dig(s.dns, `gone${i}.example`)).status, 'SERVFAIL', `query ${i} with the upstream gone: SERVFAIL`)
    down = s.p.lines().find(l => l.message === 'dns upstream down')
  }
  t.match(down, { 'tunnelguard.upstream': urlA }, 'the code marked it down')
  t.same(await s.scrape('tunnelguard_upstream_up'), { [`{upstream="${urlA}"}`]: 0 }, 'and the gauge says so')

  // back on the same port: the next query that reaches it marks it up
  upA = await upstream(a)
  let status = ''
  for (let i = 0; i < 20 && status !== 'NOERROR'; i++) {
    status = (await dig(s.dns, `back${i}.example`)).status
    if (status !== 'NOERROR') await new Promise(r => setTimeout(r, 250))
  }
  t.equal(status, 'NOERROR', 'answered again')
  t.match(await s.p.waitFor(l => l.message === 'dns upstream up'), { 'tunnelguard.upstream': urlA })
  t.same(await s.scrape('tunnelguard_upstream_up'), { [`{upstream="${urlA}"}`]: 1 }, 'up again')

  // a reload to other upstreams (one of them a forward zone's): A goes, B and C come, with no query in between
  const urlB = `udp://127.0.0.1:${b}`
  const urlC = `tcp://127.0.0.1:${c}`
  writeFileSync(cfg, config(`upstreams: ["${urlB}"], forwardZones: { corp.example: ["${urlC}"] }`))
  s.p.child.kill('SIGHUP')
  await s.p.waitFor(l => l.message === 'reloaded', 30_000)
  t.same(await s.scrape('tunnelguard_upstream_up'), { [`{upstream="${urlB}"}`]: 1, [`{upstream="${urlC}"}`]: 1 }, 'the removed upstream disappears; the new ones appear, up')
  t.same(await s.scrape('tunnelguard_upstream_resends_total'), { [`{upstream="${urlA}"}`]: 0, [`{upstream="${urlB}"}`]: 0 },
    'resends: a series for each UDP upstream configured (a counter keeps the one that went)')
  t.equal((await dig(s.dns, 'after.example')).status, 'NOERROR', 'the new upstream answers')
  t.equal(await s.p.stop(), 0)
})

t.test('tunnelguard_upstream_resends_total: a query lost on the way to the upstream, sent again, is counted', async t => {
  const port = await freePort()
  const url = `udp://127.0.0.1:${port}`
  const up = await upstream(port, n => n > 1)           // the first datagram of each name lost
  t.teardown(() => closeSocket(up))
  const dir = t.testdir({})
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, `dns: { listen: ["127.0.0.1:0"], upstreams: ["${url}"], timeout: 1500ms }\nproxy: { listen: [] }\nadmin: { listen: "127.0.0.1:0" }\n`)
  const s = await serveWith(t, cfg)
  t.same(await s.scrape('tunnelguard_upstream_resends_total'), { [`{upstream="${url}"}`]: 0 }, 'none yet')
  const answers = await Promise.all(Array.from({ length: 4 }, (_, i) => dig(s.dns, `host${i}.lossy.example`)))
  t.same(answers.map(r => r.status), Array(4).fill('NOERROR'), 'each answered, from its second send')
  t.same(await s.scrape('tunnelguard_upstream_resends_total'), { [`{upstream="${url}"}`]: 4 }, 'one resend per query')
  t.equal((await dig(s.dns, 'host0.lossy.example')).status, 'NOERROR', 'from the cache')
  t.same(await s.scrape('tunnelguard_upstream_resends_total'), { [`{upstream="${url}"}`]: 4 }, 'not counted twice')
  t.equal(await s.p.stop(), 0)
})
