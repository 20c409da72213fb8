// The admin listener's connection limits (red-team F6: idle connections to it took every file
// descriptor of the process, and one was held ~73 s): a cap on connections, a quarter of it per
// client address, and short head, request and keep-alive timeouts.
import t, { type Test } from 'tap'
import type { Socket } from 'node:net'
import { startAdmin, type AdminOptions } from '../../src/observe/admin.js'
import { createClientTable } from '../../src/observe/client-table.js'
import { createMetrics } from '../../src/observe/metrics.js'
import { flushNotices } from '../../src/observe/throttle.js'
import { memoryEvidence, type MemoryEvidence } from '../fixtures/evidence.js'
import { makeSnapshot } from '../fixtures/snapshot.js'
import { collect, fakeTable, head, open, probed, raw, statusOf, view } from '../fixtures/admin-http.js'

async function start(t: Test, o: Partial<AdminOptions> = {}) {
  const metrics = o.metrics ?? createMetrics()
  const snap = makeSnapshot()
  const admin = await startAdmin({ listen: '127.0.0.1:0', metrics, clients: createClientTable(), getSnapshot: () => snap, ready: () => true, ...o })
  t.teardown(() => admin.close())
  return { admin, metrics }
}

/** A keep-alive /healthz on `s`: the status line once the whole response is in, or 'no answer' after 5 s. */
function ask(s: Socket): Promise<string> {
  return new Promise(resolve => {
    let text = ''
    const done = (status: string) => { clearTimeout(timer); s.off('data', onData); resolve(status) }
    const onData = (d: Buffer) => {
      text += d.toString('latin1')
      if (/\r\n\r\nok\n$/.test(text)) done(text.split('\r\n')[0]!)
    }
    const timer = setTimeout(() => { done('no answer') }, 5000)
    s.on('data', onData)
    s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  })
}

const dropped = async (m: ReturnType<typeof createMetrics>) =>
  Object.fromEntries(((await m.registry.getSingleMetric('tunnelguard_admin_connections_dropped_total')?.get())?.values ?? []).map(v => [v.labels.reason, v.value]))

t.test('at most maxConnections connections, a quarter of them from one address; the rest closed at once', async t => {
  const { admin, metrics } = await start(t, { maxConnections: 8, timeout: 60_000 })
  const held: Socket[] = []
  t.teardown(() => { for (const s of held) s.destroy() })
  // two from 127.0.0.2 (8 / 4), each answered and kept alive
  for (let i = 0; i < 2; i++) {
    const s = await open(admin.port, '127.0.0.2')
    held.push(s)
    t.equal(await ask(s), 'HTTP/1.1 200 OK')
  }
  const third = await collect(await open(admin.port, '127.0.0.2'), 3000)
  t.same([third.closed, third.text], [true, ''], 'a third from the same address is closed without a byte')
  t.ok(third.ms < 2000, `closed at once (${third.ms} ms), not after a timeout`)
  // six more from other addresses fill the cap of 8
  for (let i = 3; i < 9; i++) {
    const s = await open(admin.port, `127.0.0.${i}`)
    held.push(s)
    t.equal(await ask(s), 'HTTP/1.1 200 OK')
  }
  const ninth = await collect(await open(admin.port, '127.0.0.20'), 3000)
  t.same([ninth.closed, ninth.text], [true, ''], 'a ninth connection, from a new address, is closed without a byte')
  t.ok(ninth.ms < 2000, `closed at once (${ninth.ms} ms)`)
  // the held ones still work; one closed makes room
  t.equal(await ask(held[0]!), 'HTTP/1.1 200 OK')
  held.pop()!.destroy()
  let status = 0
  for (let i = 0; i < 50 && status !== 200; i++) {
    status = statusOf(await raw(admin.port, head('/healthz', '127.0.0.1'), 2000, '127.0.0.21'))
    if (status !== 200) await new Promise(r => setTimeout(r, 20))
  }
  t.equal(status, 200, 'a slot freed is taken again')
  const d = await dropped(metrics)
  t.equal(d.max_per_client, 1, 'drops counted by reason: one over the per-address share')
  t.ok(d.max_connections! >= 1, `and ${d.max_connections} over the cap (the ninth, and tries before the slot was free)`)
  for (const s of held) s.destroy()
})

t.test('the default cap is 64 connections, 16 per address', async t => {
  const { admin } = await start(t, { timeout: 60_000 })
  const held: Socket[] = []
  t.teardown(() => { for (const s of held) s.destroy() })
  const statuses = new Set<string>()
  const hold = async (from: string) => {
    const s = await open(admin.port, from)
    held.push(s)
    statuses.add(await ask(s))
  }
  for (let i = 0; i < 16; i++) await hold('127.0.0.2')
  const over = await collect(await open(admin.port, '127.0.0.2'), 3000)
  t.same([over.closed, over.text], [true, ''], 'the 17th from one address is closed')
  for (let a = 3; held.length < 64; a++) for (let i = 0; i < 16 && held.length < 64; i++) await hold(`127.0.0.${a}`)
  t.same([...statuses], ['HTTP/1.1 200 OK'], '64 held, each answered')
  const over64 = await collect(await open(admin.port, '127.0.0.40'), 3000)
  t.same([over64.closed, over64.text], [true, ''], 'the 65th is closed')
})

t.test('an idle connection is closed within a few seconds by default', async t => {
  const { admin } = await start(t)
  const idle = await collect(await open(admin.port), 15_000)
  t.ok(idle.closed, 'closed by the server')
  t.ok(idle.ms >= 4000 && idle.ms < 8000, `after ${idle.ms} ms: the 5 s head timeout, checked every second`)
})

t.test('a head sent slowly, and a kept-alive connection left idle, are closed at the timeout', async t => {
  const { admin } = await start(t, { timeout: 500 })
  const slow = await open(admin.port)
  const slowReply = collect(slow, 5000)
  slow.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n')
  const timer = setInterval(() => { if (!slow.destroyed) slow.write('X-Drip: 1\r\n') }, 100)
  const r = await slowReply
  clearInterval(timer)
  t.ok(r.closed && r.ms < 3000, `a head still coming after the timeout: closed (${r.ms} ms)`)
  t.notMatch(r.text, /200 OK/)
  const kept = await open(admin.port)
  const keptReply = collect(kept, 5000)
  kept.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  const k = await keptReply
  t.match(k.text, /^HTTP\/1\.1 200 OK/, 'answered')
  t.ok(k.closed && k.ms < 3000, `then closed when idle (${k.ms} ms)`)
})

t.test('a client that stops reading a response is cut off at twice the timeout', async t => {
  // 2000 clients of 10 kB each: 20 MB, far more than the socket buffers of a reader that reads nothing
  const big = [{ name: 'x'.repeat(10_000), count: 1 }]
  const views = Array.from({ length: 2000 }, (_, i) => view(`10.0.${i >> 8}.${i & 255}`, big))
  let annotated = 0
  const { admin } = await start(t, { timeout: 300, clients: fakeTable(() => probed(views, () => { annotated++ })) })
  const s = await open(admin.port)
  s.pause()
  s.write(head('/api/clients?limit=2000', '127.0.0.1'))
  // until the server stops writing (the socket buffers full: no progress in three checks in a
  // row, so that a loaded box's slow writer is not taken for a stalled one), then three times the timeout
  let seen = -1
  let still = 0
  for (let i = 0; i < 200 && still < 3; i++) {
    seen = annotated
    await new Promise(r => setTimeout(r, 200))
    still = annotated > 0 && annotated === seen ? still + 1 : 0
  }
  t.ok(annotated > 0, `the response was begun (${annotated} clients written) and stalled`)
  await new Promise(r => setTimeout(r, 900))
  const reply = collect(s, 20_000)
  s.resume()
  const r = await reply
  t.ok(r.closed, 'the server closed it')
  t.ok(r.text.startsWith('HTTP/1.1 200'), 'the response had begun')
  t.ok(r.text.length < 20_000_000, `and was cut short: ${r.text.length} bytes of ${2000 * 10_000}+`)
  t.notMatch(r.text.slice(-40), /\]\}\n(\r\n0\r\n\r\n)?$/, 'its end never came')
})

t.test('two listeners on one registry count their drops in one metric', async t => {
  const metrics = createMetrics()
  const a = await start(t, { metrics, maxConnections: 1, timeout: 60_000 })
  const b = await start(t, { metrics, maxConnections: 1, timeout: 60_000 })
  for (const { admin } of [a, b]) {
    const held = await open(admin.port)
    t.teardown(() => held.destroy())
    t.equal(await ask(held), 'HTTP/1.1 200 OK')
    t.same((await collect(await open(admin.port), 3000)).closed, true)
  }
  t.same(await dropped(metrics), { max_connections: 2 })
})

// A slowloris (many connections that send nothing, or drip a head) was counted but not said: a
// responder reading the log saw nothing of who. Now a warn line names the client and the reason,
// once per client and reason per window with the count.
const closedLines = (ev: MemoryEvidence): Record<string, unknown>[] => ev.messages.filter(m => m.msg === 'admin connection closed').map(m => ({ level: m.level, ...m.fields }))

t.test('connections closed at the accept are said once per client and reason per window, with the count', async t => {
  const ev = memoryEvidence()
  const { admin, metrics } = await start(t, { maxConnections: 8, timeout: 60_000, evidence: ev })
  const held: Socket[] = []
  t.teardown(() => { for (const s of held) s.destroy() })
  for (let i = 0; i < 2; i++) held.push(await open(admin.port, '127.0.0.2'))
  for (let i = 0; i < 5; i++) t.ok((await collect(await open(admin.port, '127.0.0.2'), 3000)).closed, 'over its share: closed')
  t.same(closedLines(ev), [{
    level: 'warn', 'client.ip': '127.0.0.2', 'event.reason': 'max_per_client', 'tunnelguard.closed': 1,
    'error.message': 'over one client\'s share of admin.maxConnections (2; a client counted by its limits prefix): closed at the accept',
  }], 'the first at once; the four after it held for the window\'s end')
  for (let i = 3; i < 9; i++) held.push(await open(admin.port, `127.0.0.${i}`))
  await new Promise(r => setTimeout(r, 100))
  for (let i = 0; i < 3; i++) t.ok((await collect(await open(admin.port, '127.0.0.20'), 3000)).closed, 'over the cap: closed')
  flushNotices()                                     // what a stop says (or the window's end)
  t.same(closedLines(ev).map(l => [l['client.ip'], l['event.reason'], l['tunnelguard.closed']]), [
    ['127.0.0.2', 'max_per_client', 1], ['127.0.0.20', 'max_connections', 1], ['127.0.0.2', 'max_per_client', 4], ['127.0.0.20', 'max_connections', 2],
  ], 'one line per client and reason per window; each connection in one line')
  t.match(closedLines(ev)[1], { 'error.message': 'over admin.maxConnections (8): closed at the accept' })
  t.same(await dropped(metrics), { max_per_client: 5, max_connections: 3 }, 'the lines add up to the counts')
})

t.test('a head not whole within the timeout (idle, or dripped) is counted and said: head_timeout', async t => {
  const ev = memoryEvidence()
  const { admin, metrics } = await start(t, { timeout: 500, evidence: ev })
  const idle = collect(await open(admin.port, '127.0.0.3'), 5000)
  const slow = await open(admin.port, '127.0.0.3')
  const slowReply = collect(slow, 5000)
  slow.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n')
  const timer = setInterval(() => { if (!slow.destroyed) slow.write('X-Drip: 1\r\n') }, 100)
  t.teardown(() => clearInterval(timer))
  t.ok((await idle).closed && (await slowReply).closed, 'both closed')
  // a request that is answered, and a malformed one, are no timeouts
  t.equal(statusOf(await raw(admin.port, head('/healthz', '127.0.0.1'), 3000, '127.0.0.3')), 200)
  t.ok((await raw(admin.port, 'NOT HTTP\r\n\r\n', 3000, '127.0.0.3')).closed)
  const line = ['127.0.0.3', 'head_timeout', 1, 'no whole request head within 500 ms (idle, or sent slowly): closed']
  const said = () => closedLines(ev).map(l => [l['client.ip'], l['event.reason'], l['tunnelguard.closed'], l['error.message']])
  t.same(said(), [line], 'the first at once, the second held for the window\'s end')
  flushNotices()
  t.same(said(), [line, line], 'each connection in one line')
  t.same(await dropped(metrics), { head_timeout: 2 })
})

t.test('past 100 clients in a window, the rest are summed in one line', async t => {
  const ev = memoryEvidence()
  const { admin } = await start(t, { maxConnections: 1, timeout: 60_000, evidence: ev })
  const held = await open(admin.port, '127.0.0.2')
  t.teardown(() => held.destroy())
  await new Promise(r => setTimeout(r, 100))
  for (let i = 1; i <= 102; i++) t.ok((await collect(await open(admin.port, `127.0.1.${i}`), 3000)).closed)
  flushNotices()
  const lines = closedLines(ev)
  t.equal(lines.filter(l => l['client.ip'] !== undefined).length, 100, '100 clients named')
  t.same(lines.filter(l => l['client.ip'] === undefined), [{
    level: 'warn', 'tunnelguard.other_clients': 2, 'event.reason': 'max_connections', 'tunnelguard.closed': 2,
    'error.message': 'over admin.maxConnections (1): closed at the accept',
  }], 'the other two summed')
})

// The admin listener's share per client counted each address alone, where every other per-client
// limit counts a client by `limits` (an IPv6 host rotates addresses in its /64): now by the same key.
t.test('a client\'s share is counted by the limits prefix, and a connection is let go under the key it was counted by', async t => {
  const ev = memoryEvidence()
  let snap = makeSnapshot({ config: { limits: { ipv4Prefix: 24 } } })
  const { admin, metrics } = await start(t, { maxConnections: 8, timeout: 60_000, evidence: ev, getSnapshot: () => snap })
  const held: Socket[] = []
  t.teardown(() => { for (const s of held) s.destroy() })
  for (const ip of ['127.0.0.2', '127.0.0.3']) {
    const s = await open(admin.port, ip)
    held.push(s)
    t.equal(await ask(s), 'HTTP/1.1 200 OK', `${ip} answered`)
  }
  const third = await collect(await open(admin.port, '127.0.0.4'), 3000)
  t.same([third.closed, third.text], [true, ''], 'a third address of the same /24 is over the share (2): closed without a byte')
  const other = await open(admin.port, '127.0.1.4')
  held.push(other)
  t.equal(await ask(other), 'HTTP/1.1 200 OK', 'another /24 has its own share')
  t.same(closedLines(ev).map(l => [l['client.ip'], l['tunnelguard.client_prefix'], l['event.reason']]),
    [['127.0.0.4', '127.0.0.0/24', 'max_per_client']], 'the line names the address and the prefix it was counted by')
  t.same(await dropped(metrics), { max_per_client: 1 })

  // counted at /24, then the config says /32: closed, they are let go under the /24 key
  snap = makeSnapshot()
  for (const s of held.splice(0)) s.destroy()
  const a = await open(admin.port, '127.0.0.2')
  const b = await open(admin.port, '127.0.0.2')
  held.push(a, b)
  t.equal(await ask(a), 'HTTP/1.1 200 OK')
  t.equal(await ask(b), 'HTTP/1.1 200 OK', 'at /32, two from one address')
  // and counted at /32, let go after a change to /24: the /32 count is freed
  snap = makeSnapshot({ config: { limits: { ipv4Prefix: 24 } } })
  for (const s of held.splice(0)) s.destroy()
  await new Promise(r => setTimeout(r, 100))
  snap = makeSnapshot()
  let answered = 0
  for (let i = 0; i < 2; i++) {
    const s = await open(admin.port, '127.0.0.2')
    held.push(s)
    if (await ask(s) === 'HTTP/1.1 200 OK') answered++
  }
  t.equal(answered, 2, 'its share is whole again')
  t.same(await dropped(metrics), { max_per_client: 1 }, 'nothing more dropped')
})

t.test('a request node cannot parse gets a status that says why, and the listener serves on', async t => {
  const { admin } = await start(t)
  const port = admin.port
  for (const [what, request, status] of [
    ['a line that is no request', 'GARBAGE\r\n\r\n', 400],
    ['a bad Content-Length', 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n', 400],
    ['a head past node\'s 16 KiB', `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
  ] as const) {
    const r = await raw(port, request, 3000)
    t.equal(statusOf(r), status, `${what}: ${status} (was a bare close)`)
  }
  // after a request answered on the connection, garbage: the answer stays whole, nothing after it
  const piped = await raw(port, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGARBAGE\r\n\r\n`, 3000)
  t.match(piped.text, /^HTTP\/1\.1 200 [\s\S]*\r\n\r\nok\n/, 'the answer to the request before it')
  t.equal(piped.text.match(/HTTP\/1\.1 /g)?.length, 1, 'no second status line inside or after it')
  t.equal(statusOf(await raw(port, head('/healthz', '127.0.0.1'))), 200, 'served on')
})
