// Slowloris against the admin listener: connections that send nothing, or drip a request head,
// and more of them than one client may hold. They were closed and counted
// (tunnelguard_admin_connections_dropped_total), but the log said nothing, so a responder reading
// it did not see who. Now a warn line names the client and the reason, once per client and
// reason per 10 s with the count, not once per connection.
import t from 'tap'
import type { Socket } from 'node:net'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startServe } from '../fixtures/serve-process.js'
import { bodyOf, head, open, raw } from '../fixtures/admin-http.js'

const MSG = 'admin connection closed'
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

t.test('serve: many slow admin connections from a client give one warn line per client and reason, with the count', async t => {
  const dir = t.testdir({})
  const cfg = join(dir, 'tg.yaml')
  // 40 connections at most, 10 per client address; nothing is ever asked upstream (port 9: discard)
  writeFileSync(cfg, 'dns: { listen: [], upstreams: ["udp://127.0.0.1:9"] }\nproxy: { listen: [] }\nadmin: { listen: "127.0.0.1:0", maxConnections: 40 }\nreload: { watch: false }\n')
  const p = await startServe(t, ['--config', cfg], [], 30_000)
  const port = (p.lines().find(l => l.message === 'started') as { 'tunnelguard.admin': { port: number } })['tunnelguard.admin'].port
  const held: Socket[] = []
  t.teardown(() => { for (const s of held) s.destroy() })
  const hold = async (from: string) => {
    const s = await open(port, from)
    s.on('error', () => { /* reset by the server */ })
    held.push(s)
    return s
  }
  const closedBy = () => p.lines().filter(l => l.message === MSG)
  const of = (ip: string, reason: string) => closedBy().filter(l => l['client.ip'] === ip && l['event.reason'] === reason)
  const metric = async () => {
    const text = bodyOf(await raw(port, head('/metrics', '127.0.0.1'), 5000, '127.0.0.99'))
    return Object.fromEntries([...text.matchAll(/^tunnelguard_admin_connections_dropped_total\{reason="(\w+)"\} (\d+)$/gm)].map(m => [m[1], Number(m[2])]))
  }

  // 127.0.0.1: 25 connections that send nothing (10 held, 15 over its share);
  // 127.0.0.2: 15 that drip a head, a header every 300 ms (10 held, 5 over its share)
  const t0 = Date.now()
  for (let i = 0; i < 25; i++) await hold('127.0.0.1')
  const drips: Socket[] = []
  for (let i = 0; i < 15; i++) {
    const s = await hold('127.0.0.2')
    if (!s.destroyed) s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n')
    drips.push(s)
  }
  const drip = setInterval(() => { for (const s of drips) if (!s.destroyed && s.writable) s.write('X-Drip: 1\r\n') }, 300)
  t.teardown(() => clearInterval(drip))

  const one = await p.waitFor(l => l.message === MSG && l['client.ip'] === '127.0.0.1' && l['event.reason'] === 'max_per_client')
  t.match(one, { 'log.level': 'warn', 'tunnelguard.closed': 1, 'error.message': /share of admin\.maxConnections \(10;/ }, 'the first one is said at once')
  await p.waitFor(l => l.message === MSG && l['client.ip'] === '127.0.0.2' && l['event.reason'] === 'max_per_client')

  // 127.0.0.3 and .4 fill the listener (40): three more, from .5, are over admin.maxConnections
  const fill: Socket[] = []
  for (let i = 0; i < 10; i++) fill.push(await hold('127.0.0.3'), await hold('127.0.0.4'))
  await sleep(300)
  for (let i = 0; i < 3; i++) await hold('127.0.0.5')
  await p.waitFor(l => l.message === MSG && l['client.ip'] === '127.0.0.5' && l['event.reason'] === 'max_connections')
  for (const s of fill) s.destroy()                  // room again (and nothing more to say of them)

  // the 20 held by .1 and .2 are closed at the 5 s head timeout (checked every second)
  for (const ip of ['127.0.0.1', '127.0.0.2']) await p.waitFor(l => l.message === MSG && l['client.ip'] === ip && l['event.reason'] === 'head_timeout', 10_000)
  let counted: Record<string, number> = {}
  for (let i = 0; i < 40 && (counted.head_timeout ?? 0) < 20; i++) {
    counted = await metric()
    if ((counted.head_timeout ?? 0) < 20) await sleep(250)
  }
  t.same(counted, { max_connections: 3, max_per_client: 20, head_timeout: 20 }, 'every connection closed is counted, by reason')
  const elapsed = Date.now() - t0
  // within the first window (10 s), one line per client and reason: the rest are held for its end
  if (elapsed < 9_500) {
    for (const [ip, reason] of [['127.0.0.1', 'max_per_client'], ['127.0.0.2', 'max_per_client'], ['127.0.0.5', 'max_connections'], ['127.0.0.1', 'head_timeout'], ['127.0.0.2', 'head_timeout']] as const) {
      t.equal(of(ip, reason).length, 1, `one line for ${ip} (${reason}) in ${elapsed} ms, for many connections`)
    }
  }
  t.ok(of('127.0.0.2', 'head_timeout')[0]!['error.message'] === 'no whole request head within 5000 ms (idle, or sent slowly): closed')

  // at the stop, what the windows held back is said: the lines add up to the counts
  t.equal(await p.stop(), 0)
  const lines = closedBy()
  const sum = (ip: string, reason: string) => of(ip, reason).reduce((n, l) => n + (l['tunnelguard.closed'] as number), 0)
  t.same([sum('127.0.0.1', 'max_per_client'), sum('127.0.0.2', 'max_per_client'), sum('127.0.0.5', 'max_connections'), sum('127.0.0.1', 'head_timeout'), sum('127.0.0.2', 'head_timeout')],
    [15, 5, 3, 10, 10], 'each connection in exactly one line')
  t.ok(lines.every(l => ['127.0.0.1', '127.0.0.2', '127.0.0.5'].includes(l['client.ip'] as string)), 'no line for .3 and .4, which closed their own')
  t.ok(lines.length <= 10, `${lines.length} lines for 43 connections closed: at most two per client and reason (the first at once, the rest at the window's end or the stop)`)
})
