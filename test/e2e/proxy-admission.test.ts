// Who gets a connection slot: peers outside allowClients and trustForwardedFrom are closed at the
// accept; one address cannot take every slot; refusals are logged once per window with a count.
import t, { type Test } from 'tap'
import { startProxy } from '../../src/proxy/server.js'
import { memoryEvidence } from '../fixtures/evidence.js'
import { fakeResolve, startOrigin, waitFor } from '../fixtures/origin.js'
import { makeSnapshot } from '../fixtures/snapshot.js'
import type { ConfigInput } from '../../src/config/schema.js'
import { rawClient } from '../fixtures/raw-client.js'
import { FdBudget } from '../../src/observe/fd-check.js'

/** A proxy with a clock the test can move forward (the log windows). */
async function proxy(t: Test, config: ConfigInput['proxy'], fds?: FdBudget) {
  let skew = 0n
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { proxy: { listen: ['127.0.0.1:0'], allowDestinations: ['127.0.0.0/8'], ...config } } })
  const p = await startProxy({
    listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev, resolve: fakeResolve({}),
    clock: () => process.hrtime.bigint() + skew, fds,
  })
  t.teardown(() => p.close())
  return { p, ev, port: p.addresses[0]!.port, later: (ms: number) => { skew += BigInt(ms) * 1_000_000n } }
}

const open = (t: Test, port: number, from: string, send?: string) => rawClient(t, port, from, send)

const GET = (port: number, xff?: string) =>
  `GET http://127.0.0.1:${port}/ HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${xff ? `X-Forwarded-For: ${xff}\r\n` : ''}Connection: close\r\n\r\n`
const lines = (ev: ReturnType<typeof memoryEvidence>, msg: string) => ev.messages.filter(m => m.msg === msg).map(m => m.fields!)

t.test('a peer neither allowed nor trusted is closed at the accept, takes no slot, and is logged once per window', async t => {
  const origin = await startOrigin(t)
  const { p, ev, port, later } = await proxy(t, { allowClients: ['127.0.0.1/32'], trustForwardedFrom: ['127.0.0.2/32'], maxConnections: 3 })
  const outsiders = await Promise.all(Array.from({ length: 50 }, () => open(t, port, '127.0.0.66', GET(origin.port))))
  t.ok(await waitFor(() => outsiders.every(o => o.closed())), 'all closed')
  t.equal(outsiders.filter(o => o.data() !== '').length, 0, 'without an answer')
  t.equal(p.openConnections, 0)
  t.equal(ev.counts['dropped.refused'], 50)
  t.equal(ev.counts['dropped.overload'], undefined, 'not one counted against proxy.maxConnections (3)')
  t.same(lines(ev, 'proxy.client_denied'), [{ 'client.ip': '127.0.0.66', 'tunnelguard.refused': 1, 'error.message': 'not in proxy.allowClients or proxy.trustForwardedFrom: closed at the accept' }])
  t.equal(lines(ev, 'proxy.close').length, 0)
  t.equal(origin.requests.length, 0)
  later(10_000)
  await open(t, port, '127.0.0.66')
  t.ok(await waitFor(() => lines(ev, 'proxy.client_denied').length === 2))
  t.match(lines(ev, 'proxy.client_denied')[1], { 'client.ip': '127.0.0.66', 'tunnelguard.refused': 49 }, 'the window\'s end: the 49 held back (this one: at the next window\'s end)')
  const allowed = await open(t, port, '127.0.0.1', GET(origin.port))
  t.ok(await waitFor(() => /^HTTP\/1\.1 200 /.test(allowed.data())), 'an allowed client is served')
  const forwarder = await open(t, port, '127.0.0.2', GET(origin.port, '127.0.0.1'))
  t.ok(await waitFor(() => /^HTTP\/1\.1 200 /.test(forwarder.data())), 'a trusted forwarder (not itself an allowed client) speaks for an allowed one')
  t.match(origin.requests.at(-1)!.headers, { 'x-forwarded-for': '127.0.0.1' })
  const named = await open(t, port, '127.0.0.2', GET(origin.port, '127.0.0.9'))
  t.ok(await waitFor(() => /^HTTP\/1\.1 403 [\s\S]*127\.0\.0\.9 is not in proxy\.allowClients/.test(named.data())), 'and is refused for a client not allowed')
  const tunnel = await open(t, port, '127.0.0.2', `PROXY TCP4 127.0.0.9 127.0.0.1 5555 ${port}\r\nCONNECT x.example:443 HTTP/1.1\r\nHost: x.example:443\r\n\r\n`)
  t.ok(await waitFor(() => /^HTTP\/1\.1 403 [\s\S]*127\.0\.0\.9 is not in proxy\.allowClients/.test(tunnel.data())), 'CONNECT for a client named by PROXY, not allowed: 403')
  t.equal(lines(ev, 'proxy.client_denied').length, 4, 'each request refused for a named client is a line of its own, as before')
  t.match(lines(ev, 'proxy.client_denied').slice(2), [
    { 'client.ip': '127.0.0.9', 'http.request.method': 'GET', 'error.message': 'not in proxy.allowClients: 403', 'source.ip': '127.0.0.2' },
    { 'client.ip': '127.0.0.9', 'client.port': 5555, 'http.request.method': 'CONNECT', 'error.message': 'not in proxy.allowClients: 403', 'source.ip': '127.0.0.2' },
  ], 'why, and the trusted peer that named the client')
  // the trusted peer speaking for itself (no X-Forwarded-For): refused as its own client, no source
  const self = await open(t, port, '127.0.0.2', GET(origin.port))
  t.ok(await waitFor(() => /^HTTP\/1\.1 403 [\s\S]*127\.0\.0\.2 is not in proxy\.allowClients/.test(self.data())))
  const own = lines(ev, 'proxy.client_denied').at(-1)!
  t.match(own, { 'client.ip': '127.0.0.2', 'error.message': 'not in proxy.allowClients: 403' })
  t.notOk('source.ip' in own)
})

t.test('one address cannot take every slot; a trusted forwarder may', async t => {
  const origin = await startOrigin(t)
  const { p, ev, port, later } = await proxy(t, { trustForwardedFrom: ['127.0.0.2/32'], maxConnections: 6, maxConnectionsPerAddress: 2 })
  const held = await Promise.all([open(t, port, '127.0.0.1'), open(t, port, '127.0.0.1')])
  t.ok(await waitFor(() => p.openConnections === 2))
  const over = await Promise.all(Array.from({ length: 5 }, () => open(t, port, '127.0.0.1', GET(origin.port))))
  t.ok(await waitFor(() => over.every(o => o.closed())))
  for (const o of over) t.match(o.data(), /^HTTP\/1\.1 503 [\s\S]*too many connections from 127\.0\.0\.1 \(proxy\.maxConnectionsPerAddress 2\)/)
  t.same(lines(ev, 'proxy.overload'), [{ 'client.ip': '127.0.0.1', 'tunnelguard.max_connections_per_address': 2, 'tunnelguard.refused': 1 }], 'one line per window')
  t.equal(ev.counts['dropped.overload'], 5)
  const other = await open(t, port, '127.0.0.3', GET(origin.port))
  t.ok(await waitFor(() => /^HTTP\/1\.1 200 /.test(other.data())), 'another address is served')
  const fwd = await Promise.all([1, 2, 3].map(() => open(t, port, '127.0.0.2')))
  t.ok(await waitFor(() => p.openConnections === 5), 'three from the trusted forwarder, past the per-address limit')
  held[0]!.s.destroy()
  t.ok(await waitFor(() => p.openConnections === 4))
  const again = await open(t, port, '127.0.0.1', GET(origin.port))
  t.ok(await waitFor(() => /^HTTP\/1\.1 200 /.test(again.data())), 'a slot of its own freed: served again')
  fwd.forEach(f => f.s.destroy())
  held[1]!.s.destroy()
  t.ok(await waitFor(() => p.openConnections === 0))
  later(10_000)
  await Promise.all([open(t, port, '127.0.0.1'), open(t, port, '127.0.0.1')])
  t.ok(await waitFor(() => p.openConnections === 2))
  await open(t, port, '127.0.0.1')
  t.ok(await waitFor(() => lines(ev, 'proxy.overload').length === 2))
  t.match(lines(ev, 'proxy.overload')[1], { 'client.ip': '127.0.0.1', 'tunnelguard.refused': 4 }, 'the window\'s end: the 4 held back')
})

t.test('over proxy.maxConnections: 503, one overload line per window for all addresses, with the count', async t => {
  const { p, ev, port, later } = await proxy(t, { maxConnections: 2 })
  await Promise.all([open(t, port, '127.0.0.1'), open(t, port, '127.0.0.2')])
  t.ok(await waitFor(() => p.openConnections === 2))
  const over = await Promise.all(Array.from({ length: 20 }, (_, i) => open(t, port, `127.0.0.${10 + i}`)))
  t.ok(await waitFor(() => over.every(o => o.closed())))
  for (const o of over) t.match(o.data(), /^HTTP\/1\.1 503 [\s\S]*too many connections \(proxy\.maxConnections 2\)/)
  t.same(lines(ev, 'proxy.overload'), [{ 'client.ip': '127.0.0.10', 'tunnelguard.max_connections': 2, 'tunnelguard.refused': 1 }])
  later(10_000)
  await open(t, port, '127.0.0.99')
  t.ok(await waitFor(() => lines(ev, 'proxy.overload').length === 2))
  t.same(lines(ev, 'proxy.overload')[1], { 'client.ip': '127.0.0.99', 'tunnelguard.max_connections': 2, 'tunnelguard.refused': 19 }, 'the window\'s end: the 19 held back')
  t.equal(ev.counts['dropped.overload'], 21)
})

t.test('open files within the reserve of their limit: 503 at once (no lingering), one overload line per window; room again as connections close', async t => {
  const origin = await startOrigin(t)
  // limit 200, reserve 64: low from 136 open; 134 open elsewhere, counted at the first accept
  const fds = new FdBudget(() => 0, () => 200, () => 134)
  const { p, ev, port, later } = await proxy(t, {}, fds)
  const a = await open(t, port, '127.0.0.1')
  const b = await open(t, port, '127.0.0.2')
  t.ok(await waitFor(() => p.openConnections === 2), 'two kept: 136 open')
  const over = await Promise.all(Array.from({ length: 3 }, (_, i) => open(t, port, `127.0.0.${10 + i}`, GET(origin.port))))
  t.ok(await waitFor(() => over.every(o => o.closed())), 'closed')
  for (const o of over) t.match(o.data(), /^HTTP\/1\.1 503 [\s\S]*too many open files/)
  t.equal(p.openConnections, 2, 'none held lingering')
  t.equal(origin.requests.length, 0)
  t.equal(ev.counts['dropped.overload'], 3)
  t.same(lines(ev, 'proxy.overload'), [{
    'client.ip': '127.0.0.10', 'tunnelguard.fd_limit': 200, 'tunnelguard.fd_reserve': 64, 'tunnelguard.refused': 1,
    'error.message': 'open files within the reserve of the limit: new connections get 503 (raise LimitNOFILE / ulimit -n)',
  }])
  a.s.destroy()
  t.ok(await waitFor(() => p.openConnections === 1))
  const c = await open(t, port, '127.0.0.3', GET(origin.port))
  t.ok(await waitFor(() => /^HTTP\/1\.1 200 /.test(c.data())), 'one closed: the next is served')
  t.ok(await waitFor(() => c.closed() && p.openConnections === 1))
  await open(t, port, '127.0.0.4')
  t.ok(await waitFor(() => p.openConnections === 2), 'and the one after it: 136 open again')
  later(10_000)
  await open(t, port, '127.0.0.99')
  t.ok(await waitFor(() => lines(ev, 'proxy.overload').length === 2))
  t.match(lines(ev, 'proxy.overload')[1], { 'client.ip': '127.0.0.99', 'tunnelguard.refused': 2 }, 'the window\'s end: the two held back')
  t.equal(ev.counts['dropped.overload'], 4)
  b.s.destroy()
})

t.test('a flood from many addresses: 100 named in a window, the rest summed in one line', async t => {
  const { ev, port, later } = await proxy(t, { allowClients: ['127.0.0.1/32'] })
  const from = Array.from({ length: 105 }, (_, i) => `127.0.${1 + (i >> 8)}.${(i & 255) + 1}`)
  for (const a of from) await open(t, port, a)
  t.ok(await waitFor(() => ev.counts['dropped.refused'] === 105))
  t.equal(lines(ev, 'proxy.client_denied').length, 100)
  later(10_000)
  await open(t, port, '127.0.0.66')
  t.ok(await waitFor(() => lines(ev, 'proxy.client_denied').some(l => l['tunnelguard.other_clients'] !== undefined)))
  t.match(lines(ev, 'proxy.client_denied').find(l => l['tunnelguard.other_clients'] !== undefined), { 'tunnelguard.other_clients': 5, 'tunnelguard.refused': 5 })
})
