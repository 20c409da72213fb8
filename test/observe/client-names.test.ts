import t, { type Test } from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ConfigInput } from '../../src/config/schema.js'
import { createClientNames, MAX_PTR_IN_FLIGHT, PTR_RETRY_MS } from '../../src/observe/client-names.js'
import type { Config } from '../../src/snapshot-types.js'
import { memoryEvidence } from '../fixtures/evidence.js'
import { startPtrServer } from '../fixtures/ptr-server.js'
import { makeSnapshot } from '../fixtures/snapshot.js'

const NOW = Date.UTC(2026, 10, 21, 10)
const sec = (ms: number) => Math.floor(ms / 1000)

function config(clients: ConfigInput['clients'], upstream = 'udp://127.0.0.1:9'): Config {
  return makeSnapshot({ config: { dns: { upstreams: [upstream], timeout: '300ms' }, clients } }).config
}

function setup(t: Test) {
  let now = NOW
  const ev = memoryEvidence()
  const names = createClientNames({ evidence: () => ev, clock: () => now })
  t.teardown(() => names.close())
  const name = (ip: string) => {
    const client: Record<string, unknown> = { ip, port: 1 }
    names.annotate(client, ip)
    return client
  }
  /** Annotate until `pred` holds (PTR answers arrive asynchronously); bounded. */
  const until = async (ip: string, pred: (c: Record<string, unknown>) => boolean) => {
    for (let i = 0; i < 100; i++) {
      const c = name(ip)
      if (pred(c)) return c
      await new Promise(r => setTimeout(r, 10))
    }
    return name(ip)
  }
  return { names, ev, name, until, advance: (ms: number) => { now += ms } }
}

const tick = () => new Promise(r => setTimeout(r, 30))

t.test('off (the default): the client object is left as it is', async t => {
  const s = setup(t)
  await s.names.configure(config({}))
  t.same(s.name('10.0.0.5'), { ip: '10.0.0.5', port: 1 })
})

t.test('leases: hostname and MAC of the lease valid at the time; IPv4-mapped clients; re-read on change', async t => {
  const dir = t.testdir({
    'dnsmasq.leases': [
      `${sec(NOW + 3_600_000)} 02:00:00:00:00:05 10.0.0.5 laptop-5 *`,
      `${sec(NOW + 3_600_000)} 02:00:00:00:00:06 10.0.0.6 * *`,
      `${sec(NOW - 60_000)} 02:00:00:00:00:07 10.0.0.7 expired-7 *`,
      `${sec(NOW + 3_600_000)} zz 10.0.0.8 nomac-8 *`,
    ].join('\n') + '\n',
  })
  const file = join(dir, 'dnsmasq.leases')
  const s = setup(t)
  await s.names.configure(config({ leases: [file], leaseCheck: '100ms' }))
  t.same(s.name('10.0.0.5'), { ip: '10.0.0.5', port: 1, hostname: 'laptop-5', mac: '02-00-00-00-00-05' })
  t.same(s.name('10.0.0.6'), { ip: '10.0.0.6', port: 1, mac: '02-00-00-00-00-06' }, 'a lease without a hostname')
  t.same(s.name('10.0.0.8'), { ip: '10.0.0.8', port: 1, hostname: 'nomac-8' }, 'a lease without a MAC')
  t.same(s.name('10.0.0.7'), { ip: '10.0.0.7', port: 1 }, 'expired before the query')
  t.same(s.name('10.0.0.9'), { ip: '10.0.0.9', port: 1 }, 'no lease')
  t.match(s.name('::ffff:10.0.0.5'), { hostname: 'laptop-5' }, 'a dual-stack listener\'s IPv4 client')
  t.same(s.name('::ffff:10.0.0.9'), { ip: '::ffff:10.0.0.9', port: 1 })
  s.advance(2 * 3_600_000)
  t.same(s.name('10.0.0.5'), { ip: '10.0.0.5', port: 1 }, 'the lease has ended by now')
  s.advance(-2 * 3_600_000)
  writeFileSync(file, `${sec(NOW + 3_600_000)} 02:00:00:00:00:55 10.0.0.5 laptop-5b *\n`)
  const c = await s.until('10.0.0.5', c => c.hostname === 'laptop-5b')
  t.same(c, { ip: '10.0.0.5', port: 1, hostname: 'laptop-5b', mac: '02-00-00-00-00-55' }, 'the rewritten file is read')
  t.same(s.ev.messages, [])
})

t.test('a lease file that cannot be read: a warning naming it, not a crash; read once it is there', async t => {
  const dir = t.testdir({})
  const file = join(dir, 'dhcpd.leases')
  const s = setup(t)
  await s.names.configure(config({ leases: [file], leaseCheck: '100ms' }))
  t.match(s.ev.messages, [{ level: 'warn', msg: 'cannot read lease file; keeping its last good leases', fields: { file, error: /ENOENT/ } }])
  t.same(s.name('10.0.0.5'), { ip: '10.0.0.5', port: 1 })
  writeFileSync(file, 'lease 10.0.0.5 {\n  starts 6 2026/11/21 09:00:00;\n  ends 6 2026/11/21 11:00:00;\n  hardware ethernet 02:00:00:00:00:05;\n  client-hostname "laptop-5";\n}\n')
  t.match(await s.until('10.0.0.5', c => c.hostname !== undefined), { hostname: 'laptop-5', mac: '02-00-00-00-00-05' })
  t.match(s.ev.messages.at(-1), { level: 'info', msg: 'lease file readable again', fields: { file } })
})

t.test('PTR: never waits; later lines carry the name; cached for ptrTtl, negative answers too; failures retried sooner', async t => {
  const srv = await startPtrServer(t, {
    '5.0.0.10.in-addr.arpa': 'laptop-5.corp.example.',
    '6.0.0.10.in-addr.arpa': 'NXDOMAIN',
    '7.0.0.10.in-addr.arpa': 'SERVFAIL',
  })
  const s = setup(t)
  await s.names.configure(config({ ptr: true, ptrTtl: '1h' }, srv.url))
  t.same(s.name('10.0.0.5'), { ip: '10.0.0.5', port: 1 }, 'the first line does not wait for the lookup')
  const c = await s.until('10.0.0.5', c => c.domain !== undefined)
  t.same(c, { ip: '10.0.0.5', port: 1, domain: 'laptop-5.corp.example' })
  // the server has seen `n` questions, and their answers have had time to come back (bounded: a loaded box is slow)
  const asked = async (n: number) => {
    for (let i = 0; i < 200 && srv.asked.length < n; i++) await tick()
    await tick()
  }
  for (const ip of ['10.0.0.6', '10.0.0.7']) s.name(ip)
  await asked(3)
  // (the two lookups go out on different upstream sockets: they may arrive in either order)
  t.same([...srv.asked].sort(), ['5.0.0.10.in-addr.arpa', '6.0.0.10.in-addr.arpa', '7.0.0.10.in-addr.arpa'], 'one lookup per address')
  for (const ip of ['10.0.0.5', '10.0.0.6', '10.0.0.7']) s.name(ip)
  s.advance(PTR_RETRY_MS - 1)
  for (const ip of ['10.0.0.5', '10.0.0.6', '10.0.0.7']) s.name(ip)
  await tick()
  t.equal(srv.asked.length, 3, 'answers, negative answers and failures are cached')
  s.advance(1)
  t.same(s.name('10.0.0.7'), { ip: '10.0.0.7', port: 1 })
  await asked(4)
  t.equal(srv.asked.at(-1), '7.0.0.10.in-addr.arpa', `a failure is tried again after ${PTR_RETRY_MS} ms`)
  t.equal(srv.asked.length, 4)
  srv.answers.set('5.0.0.10.in-addr.arpa', 'SILENT')
  s.advance(3_600_000)
  t.same(s.name('10.0.0.5'), { ip: '10.0.0.5', port: 1, domain: 'laptop-5.corp.example' }, 'expired: asked again, the old name serves meanwhile')
  await new Promise(r => setTimeout(r, 400))
  t.same(s.name('10.0.0.5'), { ip: '10.0.0.5', port: 1, domain: 'laptop-5.corp.example' }, 'and after a failed refresh')
  t.same(s.name('10.0.0.6'), { ip: '10.0.0.6', port: 1 }, 'no name')
  t.equal(srv.asked.filter(n => n === '5.0.0.10.in-addr.arpa').length, 2)
})

t.test(`PTR: at most ${MAX_PTR_IN_FLIGHT} lookups in flight; a bounded cache`, async t => {
  const srv = await startPtrServer(t)
  for (let i = 0; i < 80; i++) srv.answers.set(`${i}.1.0.10.in-addr.arpa`, 'SILENT')
  const s = setup(t)
  await s.names.configure(config({ ptr: true, ptrMaxEntries: 100 }, srv.url))
  for (let i = 0; i < 80; i++) s.name(`10.0.1.${i}`)
  // the datagrams reach the fake server over a few ticks; wait for them (bounded, inside the 300 ms
  // timeout, and no line is annotated meanwhile, so nothing more can be sent), then count
  for (let i = 0; i < 20 && srv.asked.length < MAX_PTR_IN_FLIGHT; i++) await new Promise(r => setTimeout(r, 10))
  await tick()
  t.equal(srv.asked.length, MAX_PTR_IN_FLIGHT)
  await new Promise(r => setTimeout(r, 400))          // the lookups time out (300 ms)
  srv.answers.set('79.1.0.10.in-addr.arpa', 'late-79.example')
  await s.until('10.0.1.79', c => c.domain === 'late-79.example')
  t.match(s.name('10.0.1.79'), { domain: 'late-79.example' }, 'one skipped is asked on a later line')
  await s.names.configure(config({ ptr: true, ptrMaxEntries: 2 }, srv.url))
  t.same(s.name('10.0.1.79'), { ip: '10.0.1.79', port: 1 }, 'a new cache size: a new cache')
})

t.test('leases and PTR together; reconfigured on reload', async t => {
  const srv = await startPtrServer(t, { '5.0.0.10.in-addr.arpa': 'laptop-5.corp.example' })
  const other = await startPtrServer(t, { '5.0.0.10.in-addr.arpa': 'other-5.example' })
  const dir = t.testdir({ 'a.leases': `${sec(NOW + 3_600_000)} 02:00:00:00:00:05 10.0.0.5 laptop-5 *\n` })
  const file = join(dir, 'a.leases')
  const s = setup(t)
  const both = config({ leases: [file], leaseCheck: '100ms', ptr: true }, srv.url)
  await s.names.configure(both)
  t.same(s.name('10.0.0.5'), { ip: '10.0.0.5', port: 1, hostname: 'laptop-5', mac: '02-00-00-00-00-05' })
  t.same(await s.until('10.0.0.5', c => c.domain !== undefined),
    { ip: '10.0.0.5', port: 1, hostname: 'laptop-5', mac: '02-00-00-00-00-05', domain: 'laptop-5.corp.example' }, 'the keys in a fixed order')
  writeFileSync(file, `${sec(NOW + 3_600_000)} 02:00:00:00:00:05 10.0.0.5 laptop-5b *\n`)
  t.match(await s.until('10.0.0.5', c => c.hostname === 'laptop-5b'), { domain: 'laptop-5.corp.example' }, 'a re-read file reaches cached clients')
  await s.names.configure(both)
  t.match(s.name('10.0.0.5'), { hostname: 'laptop-5b' }, 'the same config again: nothing re-read, nothing lost')
  // reload: other upstreams, a longer TTL, PTR only
  s.advance(3_600_000)
  await s.names.configure(config({ ptr: true, ptrTtl: '2h' }, other.url))
  t.same(await s.until('10.0.0.5', c => c.domain === 'other-5.example'), { ip: '10.0.0.5', port: 1, domain: 'other-5.example' }, 'new upstreams; leases off')
  t.equal(other.asked.length, 1)
  await s.names.configure(config({ leases: [file] }))
  t.same(s.name('10.0.0.5'), { ip: '10.0.0.5', port: 1, hostname: 'laptop-5b', mac: '02-00-00-00-00-05' }, 'PTR off, leases on')
  await s.names.configure(config({}))
  t.same(s.name('10.0.0.5'), { ip: '10.0.0.5', port: 1 }, 'all off')
  s.names.close()
  s.names.close()
})
