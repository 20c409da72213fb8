// The per-client limits count a client by its prefix (limits.ipv4Prefix / ipv6Prefix), over real
// sockets: every 127/8 address is this host's, so a /24 of loopback addresses plays the addresses
// a host rotates through. IPv6 addresses of one /64: limit-prefix-v6.test.ts (loopback IPv6 is ::1 only).
import t, { type Test } from 'tap'
import { connect, type Socket } from 'node:net'
import dnsPacket from 'dns-packet'
import { startDns } from '../../src/dns/server.js'
import { frame, FrameReader } from '../../src/dns/framing.js'
import { startProxy } from '../../src/proxy/server.js'
import type { ConfigInput } from '../../src/config/schema.js'
import type { Snapshot } from '../../src/snapshot-types.js'
import { memoryEvidence } from '../fixtures/evidence.js'
import { makeSnapshot } from '../fixtures/snapshot.js'
import { decodeMsg, dig } from '../fixtures/dig.js'
import { fakeResolve, waitFor } from '../fixtures/origin.js'
import { rawClient } from '../fixtures/raw-client.js'

const CANARY = 'use-application-dns.net'          // answered by the server itself (NXDOMAIN)
const withLimits = (s: Snapshot, limits: Snapshot['config']['limits']): Snapshot => ({ ...s, config: { ...s.config, limits } })
const fields = (ev: ReturnType<typeof memoryEvidence>, msg: string) => ev.messages.filter(m => m.msg === msg).map(m => m.fields)

async function dns(t: Test, config: ConfigInput) {
  const ev = memoryEvidence()
  let snap = makeSnapshot({ config })
  const s = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev })
  t.teardown(() => s.close())
  return { ev, udp: s.addresses[0]!, port: s.addresses[1]!.port, snap: () => snap, use: (n: Snapshot) => { snap = n } }
}

/** A DNS-over-TCP connection from `from`: whether it was closed, and the ids of its answers. */
function tcpFrom(port: number, from: string): Promise<{ sock: Socket; ids: number[]; closed: () => boolean }> {
  return new Promise(resolve => {
    const sock = connect({ port, host: '127.0.0.1', localAddress: from })
    const reader = new FrameReader()
    const ids: number[] = []
    let closed = false
    sock.on('data', c => reader.push(c, m => ids.push(decodeMsg(Buffer.from(m)).id)))
    sock.on('error', () => {})
    const conn = { sock, ids, closed: () => closed }
    sock.once('close', () => { closed = true; resolve(conn) })
    sock.once('connect', () => {
      sock.write(frame(dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: CANARY }] })))
      resolve(conn)
    })
  })
}

t.test('dig from four addresses of one /24 (limits.ipv4Prefix: 24): one rate-limit bucket; the line names the prefix', async t => {
  const s = await dns(t, { dns: { rateLimit: { qps: 0.001, burst: 2 } }, limits: { ipv4Prefix: 24 } })
  const status = []
  for (const from of ['127.0.5.1', '127.0.5.2', '127.0.5.3', '127.0.5.4']) {
    status.push((await dig(s.udp, CANARY, 'A', ['-b', from, '+time=1'])).status)
  }
  t.same(status, ['NXDOMAIN', 'NXDOMAIN', 'NONE', 'NONE'], 'two answered, then dropped: the /24 is one client')
  t.equal((await dig(s.udp, CANARY, 'A', ['-b', '127.0.6.1'])).status, 'NXDOMAIN', 'another /24 has its own bucket')
  t.same(fields(s.ev, 'dns client rate limited'), [{ 'client.ip': '127.0.5.3', clientPrefix: '127.0.5.0/24', dropped: 1, qps: 0.001 }])
  t.equal(s.ev.counts['dropped.ratelimit'], 2)
  s.use(withLimits(s.snap(), { ipv4Prefix: 32, ipv6Prefix: 64 }))
  t.equal((await dig(s.udp, CANARY, 'A', ['-b', '127.0.5.4'])).status, 'NXDOMAIN', 'a reload to /32: the address is a client of its own')
})

t.test('dns.tcp.maxConnectionsPerClient counts the connections of a /24 together; a reload keeps each counted under its key', async t => {
  const s = await dns(t, { dns: { tcp: { maxConnectionsPerClient: 2 } }, limits: { ipv4Prefix: 24 } })
  const held = [await tcpFrom(s.port, '127.0.7.1'), await tcpFrom(s.port, '127.0.7.2')]
  t.ok(await waitFor(() => held.every(c => c.ids.length === 1)), 'two connections of the /24 served')
  const over = await tcpFrom(s.port, '127.0.7.3')
  t.ok(await waitFor(() => over.closed()), 'a third address of the /24 is refused at accept')
  t.same(over.ids, [])
  t.same(fields(s.ev, 'dns tcp connection refused: too many from this client'), [
    { 'client.ip': '127.0.7.3', clientPrefix: '127.0.7.0/24', refused: 1, maxConnectionsPerClient: 2 },
  ])
  const other = await tcpFrom(s.port, '127.0.8.1')
  t.ok(await waitFor(() => other.ids.length === 1), 'another /24 is served')
  const base = s.snap()
  s.use(withLimits(base, { ipv4Prefix: 32, ipv6Prefix: 64 }))
  const own = await tcpFrom(s.port, '127.0.7.3')
  t.ok(await waitFor(() => own.ids.length === 1), 'after a reload to /32 the address has its own count')
  for (const c of [...held, own, other]) c.sock.destroy()
  await waitFor(() => (s.ev.counts['conn.dns-tcp'] ?? 0) === 0)
  s.use(base)
  // had a connection counted under 127.0.7.0/24 been taken off another key when it closed, the /24 would still count it
  const again = [await tcpFrom(s.port, '127.0.7.4'), await tcpFrom(s.port, '127.0.7.5')]
  t.ok(await waitFor(() => again.every(c => c.ids.length === 1)), 'back at /24: its whole share')
  for (const c of again) c.sock.destroy()
})

t.test('proxy.maxConnectionsPerAddress counts a /24 together; a trusted forwarder in it is not counted', async t => {
  const ev = memoryEvidence()
  let snap = makeSnapshot({ config: { proxy: { listen: ['127.0.0.1:0'], maxConnectionsPerAddress: 2, trustForwardedFrom: ['127.0.9.2/32'] }, limits: { ipv4Prefix: 24 } } })
  const p = await startProxy({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev, resolve: fakeResolve({}) })
  t.teardown(() => p.close())
  const port = p.addresses[0]!.port
  const fwd = await Promise.all([1, 2, 3].map(() => rawClient(t, port, '127.0.9.2')))
  const held = [await rawClient(t, port, '127.0.9.1'), await rawClient(t, port, '127.0.9.3')]
  t.ok(await waitFor(() => p.openConnections === 5), 'the forwarder\'s three are not counted against the /24')
  const over = await rawClient(t, port, '127.0.9.4')
  t.ok(await waitFor(() => over.closed()))
  t.match(over.data(), /^HTTP\/1\.1 503 [\s\S]*too many connections from 127\.0\.9\.0\/24 \(proxy\.maxConnectionsPerAddress 2\)/)
  t.same(fields(ev, 'proxy.overload'), [
    { 'client.ip': '127.0.9.4', 'tunnelguard.client_prefix': '127.0.9.0/24', 'tunnelguard.max_connections_per_address': 2, 'tunnelguard.refused': 1 },
  ])
  const other = await rawClient(t, port, '127.0.10.1')
  t.ok(await waitFor(() => p.openConnections === 6), 'another /24 gets in')
  t.notOk(other.closed())
  snap = withLimits(snap, { ipv4Prefix: 32, ipv6Prefix: 64 })
  const own = await rawClient(t, port, '127.0.9.4')
  t.ok(await waitFor(() => p.openConnections === 7), 'a reload to /32: the address has its own count')
  for (const c of [...held, own, other, ...fwd]) c.s.destroy()
  t.ok(await waitFor(() => p.openConnections === 0))
  snap = withLimits(snap, { ipv4Prefix: 24, ipv6Prefix: 64 })
  await Promise.all([rawClient(t, port, '127.0.9.5'), rawClient(t, port, '127.0.9.6')])
  t.ok(await waitFor(() => p.openConnections === 2), 'back at /24: its whole share (each connection released under the key it was counted under)')
  t.equal(ev.counts['dropped.overload'], 1)
})
