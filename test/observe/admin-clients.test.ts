// /api/clients is written client by client with turns of the event loop between chunks of 64 kB, at most
// ?limit= clients (1000 by default, most recently seen first), those ?client= selects, after the
// counts (red-team F4: 10,000 clients × 50 names as one JSON.stringify gave "500 Invalid string
// length" after 5.2 s, with DNS stalled 4.9 s and 1 GB of RSS).
import t, { type Test } from 'tap'
import { request } from 'node:http'
import { startAdmin, turns, type AdminOptions } from '../../src/observe/admin.js'
import { createClientTable } from '../../src/observe/client-table.js'
import { createMetrics } from '../../src/observe/metrics.js'
import { makeSnapshot } from '../fixtures/snapshot.js'
import { bodyOf, fakeTable, head, open, probed, raw, statusOf, view } from '../fixtures/admin-http.js'

const snap = makeSnapshot()

async function start(t: Test, o: Partial<AdminOptions> = {}) {
  const admin = await startAdmin({ listen: '127.0.0.1:0', metrics: createMetrics(), clients: createClientTable(), getSnapshot: () => snap, ready: () => true, ...o })
  t.teardown(() => admin.close())
  return admin
}

interface Page { total: number; matched: number; limit: number; count: number; clients: { ip: string; [k: string]: unknown }[] }

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, timeout: 30_000 }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', c => { body += c })
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }))
    })
    req.on('error', reject)
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.end()
  })
}
const page = async (port: number, path: string) => JSON.parse((await get(port, path)).body) as Page

/** A table of real clients: 10.0.0.1 seen first … 10.0.0.3 last, then 10.0.1.1, 10.0.1.2, fd00::1. */
function realTable() {
  let now = Date.UTC(2026, 0, 1)
  const clients = createClientTable({ clock: () => now })
  for (const ip of ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.1.1', '10.0.1.2', 'fd00::1']) {
    now += 1000
    clients.record({ message: 'dns.query', decision: snap.policy.decide(ip, 'a.ngrok.io', 'qname'), client: { ip, port: 1 }, transport: 'udp', durationNs: 1 })
  }
  return clients
}

const ips = (p: Page) => p.clients.map(c => c.ip)

t.test('counts first, most recently seen first; ?limit= and ?client= select', async t => {
  const { port } = await start(t, { clients: realTable() })
  const all = await page(port, '/api/clients')
  t.match(all, { total: 6, matched: 6, limit: 1000, count: 6 })
  t.same(ips(all), ['fd00::1', '10.0.1.2', '10.0.1.1', '10.0.0.3', '10.0.0.2', '10.0.0.1'])
  t.match(all.clients[0], { ip: 'fd00::1', actions: { sinkhole: 1 }, names: [{ name: 'a.ngrok.io', count: 1 }] }, 'each client as before')
  const two = await page(port, '/api/clients?limit=2')
  t.match(two, { total: 6, matched: 6, limit: 2, count: 2 })
  t.same(ips(two), ['fd00::1', '10.0.1.2'], 'the two most recent')
  t.same(await page(port, '/api/clients?limit=0'), { total: 6, matched: 6, limit: 0, count: 0, clients: [] }, 'limit=0: the counts alone')
  const net = await page(port, '/api/clients?client=10.0.0.0/24')
  t.match(net, { total: 6, matched: 3, count: 3 })
  t.same(ips(net), ['10.0.0.3', '10.0.0.2', '10.0.0.1'])
  t.same(ips(await page(port, '/api/clients?client=10.0.0.2')), ['10.0.0.2'], 'one address')
  t.same(ips(await page(port, '/api/clients?client=10.0.1.2&client=fd00::/8')), ['fd00::1', '10.0.1.2'], 'several: any of them')
  const one = await page(port, '/api/clients?client=10.0.0.0/8&limit=1')
  t.match(one, { total: 6, matched: 5, limit: 1, count: 1 })
  t.same(ips(one), ['10.0.1.2'])
  t.match(await page(port, '/api/clients?client=192.0.2.0/24'), { total: 6, matched: 0, count: 0, clients: [] })
  const r = await get(port, '/api/clients')
  t.equal(r.headers['transfer-encoding'], 'chunked', 'streamed, no content-length')
  t.match(r.headers['content-type'], 'application/json')
})

t.test('a bad ?limit= or ?client= is a 400', async t => {
  const table = fakeTable(() => [view('10.0.0.1')])
  const { port } = await start(t, { clients: table })
  for (const [q, error] of [
    ['limit=-1', 'limit "-1" is not a whole number from 0 to 9999999'],
    ['limit=abc', 'limit "abc" is not a whole number from 0 to 9999999'],
    ['limit=', 'limit "" is not a whole number from 0 to 9999999'],
    ['limit=99999999', 'limit "99999999" is not a whole number from 0 to 9999999'],
    ['client=bogus', 'client "bogus" is not an address or a CIDR'],
    ['client=10.0.0.0/33', 'client "10.0.0.0/33" is not an address or a CIDR'],
    ['client=10.0.0.1&client=x', 'client "x" is not an address or a CIDR'],
  ]) {
    const r = await get(port, `/api/clients?${q}`)
    t.same([r.status, JSON.parse(r.body)], [400, { error }], q)
  }
  t.equal(table.pulled, 0, 'the table is not read for a bad request')
})

t.test('1000 clients by default', async t => {
  const views = Array.from({ length: 1500 }, (_, i) => view(`10.0.${i >> 8}.${i & 255}`))
  const { port } = await start(t, { clients: fakeTable(() => views) })
  const p = await page(port, '/api/clients')
  t.match(p, { total: 1500, matched: 1500, limit: 1000, count: 1000 })
  t.equal(p.clients.length, 1000)
  t.same(ips(p), views.slice(0, 1000).map(v => v.ip))
})

t.test('the table is read only as far as the response needs: the counts alone read one row; a client filter reads it all', async t => {
  const views = Array.from({ length: 1500 }, (_, i) => view(`10.0.${i >> 8}.${i & 255}`))
  const table = fakeTable(() => views)
  const { port } = await start(t, { clients: table })
  t.match(await page(port, '/api/clients?limit=0'), { total: 1500, matched: 1500, count: 0 })
  t.equal(table.pulled, 1, 'limit=0: one row read, to know there are more')
  table.pulled = 0
  t.same(ips(await page(port, '/api/clients?limit=2')), ['10.0.0.0', '10.0.0.1'])
  t.equal(table.pulled, 3)
  table.pulled = 0
  t.match(await page(port, '/api/clients?limit=1&client=10.0.5.0/24'), { total: 1500, matched: 220, count: 1, clients: [{ ip: '10.0.5.0' }] })
  t.equal(table.pulled, 1500, 'matched counts every client the filter selects')
})

t.test('HEAD reads nothing', async t => {
  const table = fakeTable(() => [view('10.0.0.1')])
  const { port } = await start(t, { clients: table })
  const r = await get(port, '/api/clients', 'HEAD')
  t.same([r.status, r.body], [200, ''])
  t.match(r.headers['content-type'], 'application/json')
  t.equal(table.pulled, 0)
})

/** 2 kB of JSON per client. */
const bigViews = (n: number) => {
  const names = [{ name: 'n'.repeat(2000), count: 1 }]
  return Array.from({ length: n }, (_, i) => view(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, names))
}

t.test('written a chunk at a time: other requests are answered while it is', async t => {
  let turns = 0
  let ticking = true
  const tick = () => { turns++; if (ticking) setImmediate(tick) }
  setImmediate(tick)
  t.teardown(() => { ticking = false })
  const perTurn = new Map<number, number>()
  let annotated = 0
  let healthzAt = -1
  let port = 0
  const each = () => {
    if (annotated++ === 0) {
      // the response has begun: ask for /healthz now
      void get(port, '/healthz').then(r => { if (r.status === 200) healthzAt = annotated })
    }
    perTurn.set(turns, (perTurn.get(turns) ?? 0) + 1)
  }
  const admin = await start(t, { clients: fakeTable(() => probed(bigViews(3000), each)) })
  port = admin.port
  const p = await page(port, '/api/clients?limit=3000')
  t.equal(p.count, 3000)
  t.equal(annotated, 3000, 'each client returned written once')
  t.ok(perTurn.size > 20, `written over ${perTurn.size} turns of the event loop`)
  t.ok(Math.max(...perTurn.values()) <= 40, `at most ${Math.max(...perTurn.values())} clients (64 kB of JSON) in one turn`)
  t.ok(healthzAt > 0 && healthzAt < 3000, `/healthz answered while the response was being written (after ${healthzAt} of 3000 clients)`)
})

t.test('no piece of the response is longer than 64 kB and a client (red-team F4: "Invalid string length")', async t => {
  const { port } = await start(t, { clients: fakeTable(() => bigViews(3000)) })
  const r = await raw(port, head('/api/clients?limit=3000', '127.0.0.1'), 30_000)
  t.match(r.text, /\r\ntransfer-encoding: chunked\r\n/i)
  // the chunks of the transfer coding, each one write
  let rest = r.text.slice(r.text.indexOf('\r\n\r\n') + 4)
  const sizes: number[] = []
  for (let i = 0; i < 10_000 && rest.length > 0; i++) {
    const eol = rest.indexOf('\r\n')
    sizes.push(parseInt(rest.slice(0, eol), 16))
    rest = rest.slice(eol + 2 + sizes.at(-1)! + 2)
  }
  t.equal(sizes.at(-1), 0, 'the last chunk came')
  const one = JSON.stringify(bigViews(1)[0]).length
  t.ok(sizes.length > 50, `${sizes.length} chunks for ${sizes.reduce((a, b) => a + b)} bytes`)
  t.ok(Math.max(...sizes) <= 64 * 1024 + one + 1, `the longest ${Math.max(...sizes)} bytes`)
  t.equal((JSON.parse(bodyOf(r)) as Page).clients.length, 3000, 'and together they are the whole answer')
})

t.test('a client that goes away mid-response stops the writing', async t => {
  let annotated = 0
  const { port } = await start(t, { clients: fakeTable(() => probed(bigViews(20_000), () => { annotated++ })) })
  const s = await open(port)
  const first = new Promise<void>(resolve => { s.once('data', () => { resolve() }) })
  s.write(head('/api/clients?limit=20000', '127.0.0.1'))
  await first
  s.destroy()
  let last = -1
  for (let i = 0; i < 100 && annotated !== last; i++) {
    last = annotated
    await new Promise(r => setTimeout(r, 50))
  }
  t.ok(annotated < 20_000, `stopped after ${annotated} of 20000 clients`)
  t.equal(statusOf(await raw(port, head('/healthz', '127.0.0.1'))), 200, 'and serves on')
})

t.test('an error once the response has begun cuts it short; the listener serves on', async t => {
  let n = 0
  const { port } = await start(t, { clients: fakeTable(() => probed(bigViews(200), () => { if (++n === 100) throw new Error('a view broke') })) })
  const r = await raw(port, head('/api/clients', '127.0.0.1'), 10_000)
  t.ok(r.closed, 'closed')
  t.equal(statusOf(r), 200, 'it had begun')
  t.notMatch(r.text, /0\r\n\r\n$/, 'without the last chunk: the client sees it incomplete')
  t.equal(statusOf(await raw(port, head('/healthz', '127.0.0.1'))), 200)
})

t.test('only the clients sent are built: ?limit=3 of 300 builds three views', async t => {
  const clients = createClientTable()
  for (let i = 0; i < 300; i++) {
    const ip = `10.1.${i >> 8}.${i & 255}`
    clients.record({ message: 'dns.query', decision: snap.policy.decide(ip, 'a.ngrok.io', 'qname'), client: { ip, port: 1 }, transport: 'udp', durationNs: 1 })
  }
  const { port } = await start(t, { clients })
  const iso = Date.prototype.toISOString
  let built = 0
  Date.prototype.toISOString = function (this: Date) { built++; return iso.call(this) }
  t.teardown(() => { Date.prototype.toISOString = iso })
  const p = await page(port, '/api/clients?limit=3')
  t.match(p, { total: 300, matched: 300, count: 3 })
  t.equal(built, 3 * 2, 'first_seen and last_seen of three views, not of 300')
  t.same(ips(p), ['10.1.1.43', '10.1.1.42', '10.1.1.41'])
  built = 0
  t.equal((await page(port, '/api/clients?limit=3')).count, 3)
  t.equal(built, 0, 'asked again with no decision in between: the same JSON, not built again')
})

t.test('responses under way take turns of the event loop: one chunk per turn among them all', async t => {
  let tick = 0
  let ticking = true
  const ticker = () => { tick++; if (ticking) setImmediate(ticker) }
  setImmediate(ticker)
  const shared = turns()
  const seen: [number, number][] = []
  await Promise.all([0, 1, 2].map(async i => {
    for (let k = 0; k < 2; k++) {
      await shared.next()
      seen.push([i, tick])
    }
  }))
  ticking = false
  t.same(seen.map(([i]) => i), [0, 1, 2, 0, 1, 2], 'first come, first served')
  const at = seen.map(([, n]) => n)
  t.equal(new Set(at).size, 6, `each on a turn of its own (turns ${at.join(' ')})`)
})
