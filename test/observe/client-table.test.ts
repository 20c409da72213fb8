import t from 'tap'
import { createClientTable } from '../../src/observe/client-table.js'
import type { DecisionEvent } from '../../src/observe/types.js'
import type { Where } from '../../src/policy/types.js'
import { makeSnapshot } from '../fixtures/snapshot.js'

const snap = makeSnapshot({ config: { groups: [{ name: 'lab', clients: ['10.9.0.0/16'], actions: {} }] } })
const ev = (ip: string, name: string, where: Where = 'qname'): DecisionEvent => ({
  message: 'dns.query', decision: snap.policy.decide(ip, name, where), client: { ip, port: 1 }, transport: 'udp', durationNs: 1,
})

t.test('per client: times, actions, names, lists, where', async t => {
  let now = Date.UTC(2026, 10, 21, 10, 0, 0)
  const table = createClientTable({ clock: () => now })
  table.record(ev('10.0.0.5', 'a.ngrok.io'))
  now += 1000
  table.record(ev('10.0.0.5', 'a.ngrok.io'))
  table.record(ev('10.0.0.5', 'z.trycloudflare.com', 'sni'))
  table.record(ev('10.0.0.5', 'b.ngrok.io'))
  now += 1000
  table.record(ev('10.9.1.1', 'c.ngrok.io'))
  t.equal(table.size, 2)
  const [first, second] = table.list()
  t.equal(first!.ip, '10.9.1.1', 'most recently seen first')
  t.equal(first!.group, 'lab')
  t.same(second, {
    ip: '10.0.0.5', group: 'default',
    first_seen: '2026-11-21T10:00:00.000Z', last_seen: '2026-11-21T10:00:01.000Z',
    actions: { sinkhole: 3, alert: 1 },
    names: [{ name: 'a.ngrok.io', count: 2, matched: [], other_matched: 0 }, { name: 'b.ngrok.io', count: 1, matched: [], other_matched: 0 },
      { name: 'z.trycloudflare.com', count: 1, matched: [], other_matched: 0 }],
    other_names: 0,
    lists: { ngrok: 3, tunnels: 1 }, where: { qname: 3, sni: 1 },
  })
  t.equal(table.get('10.0.0.5')!.names.get('a.ngrok.io')!.count, 2)
  t.equal(table.get('192.0.2.1'), undefined)
})

t.test('bounded: clients evicted least recently seen first, names per client capped', async t => {
  const table = createClientTable({ maxClients: 2, maxNames: 2 })
  table.record(ev('10.0.0.1', 'a.ngrok.io'))
  table.record(ev('10.0.0.2', 'a.ngrok.io'))
  table.record(ev('10.0.0.1', 'b.ngrok.io'))
  table.record(ev('10.0.0.3', 'a.ngrok.io'))
  t.same(table.list().map(c => c.ip), ['10.0.0.3', '10.0.0.1'])
  table.record(ev('10.0.0.1', 'c.ngrok.io'))
  table.record(ev('10.0.0.1', 'b.ngrok.io'))
  const c = table.list().find(x => x.ip === '10.0.0.1')!
  t.same(c.names.map(n => [n.name, n.count]), [['b.ngrok.io', 2], ['a.ngrok.io', 1]])
  t.equal(c.other_names, 1)
  t.ok(Date.parse(c.last_seen) > 0, 'the wall clock by default')
})

t.test('one IPv6 /64 holds at most maxPerPrefix rows: a host rotating its addresses cannot push the other clients out', async t => {
  const table = createClientTable({ maxClients: 10, maxPerPrefix: 3 })
  table.record(ev('10.0.0.1', 'a.ngrok.io'))
  table.record(ev('2001:db8:9::1', 'a.ngrok.io'))
  for (let i = 1; i <= 50; i++) table.record(ev(`2001:db8:1:2::${i.toString(16)}`, 'x.ngrok.io'))
  t.equal(table.size, 5, 'the IPv4 client, the other /64, and three of the rotating one')
  t.ok(table.get('10.0.0.1'), 'still there')
  t.ok(table.get('2001:db8:9::1'), 'another /64: still there')
  t.same(table.list().slice(0, 3).map(c => c.ip), ['2001:db8:1:2::32', '2001:db8:1:2::31', '2001:db8:1:2::30'], 'its newest three')
  // a row of the /64 evicted by the global bound leaves room in the /64 too
  const small = createClientTable({ maxClients: 2, maxPerPrefix: 2 })
  small.record(ev('2001:db8:1:2::1', 'a.ngrok.io'))
  small.record(ev('10.0.0.1', 'a.ngrok.io'))
  small.record(ev('10.0.0.2', 'a.ngrok.io'))                       // evicts 2001:db8:1:2::1 (least recently seen)
  small.record(ev('2001:db8:1:2::2', 'a.ngrok.io'))                // evicts 10.0.0.1
  small.record(ev('2001:db8:1:2::3', 'a.ngrok.io'))                // evicts 10.0.0.2: the /64 holds two
  t.same(small.list().map(c => c.ip), ['2001:db8:1:2::3', '2001:db8:1:2::2'])
  small.record(ev('2001:db8:1:2::4', 'a.ngrok.io'))                // the /64 is full: its oldest goes
  t.same(small.list().map(c => c.ip), ['2001:db8:1:2::4', '2001:db8:1:2::3'])
  // link-local addresses are not one host's: each is its own
  const ll = createClientTable({ maxClients: 10, maxPerPrefix: 1 })
  ll.record(ev('fe80::1', 'a.ngrok.io'))
  ll.record(ev('fe80::2', 'a.ngrok.io'))
  t.equal(ll.size, 2)
})

t.test('a decision without a list', async t => {
  const table = createClientTable()
  table.record({ ...ev('10.0.0.1', 'bad..name'), decision: snap.policy.decide('10.0.0.1', 'bad..name', 'sni') })
  t.same(table.list()[0]!.lists, {})
  t.same(table.list()[0]!.actions, { block: 1 })
})

t.test('runs of one client, and a client back after being evicted, start from what the table holds', async t => {
  const table = createClientTable({ maxClients: 1 })
  table.record(ev('10.0.0.1', 'a.ngrok.io'))
  table.record(ev('10.0.0.1', 'a.ngrok.io'))
  t.same(table.list().map(c => [c.ip, c.actions]), [['10.0.0.1', { sinkhole: 2 }]])
  table.record(ev('10.0.0.2', 'a.ngrok.io'))
  t.equal(table.get('10.0.0.1'), undefined, 'evicted by the second client')
  table.record(ev('10.0.0.1', 'b.ngrok.io'))
  table.record(ev('10.0.0.1', 'b.ngrok.io'))
  t.same(table.list().map(c => [c.ip, c.actions, c.names.map(n => [n.name, n.count])]), [['10.0.0.1', { sinkhole: 2 }, [['b.ngrok.io', 2]]]],
    'a new entry: the evicted one\'s counts are gone, the recent ones all kept')
})

t.test('a row per machine: an address handed to another machine starts a new row; names as they were at record time', async t => {
  const table = createClientTable()
  const bob = { ip: '10.0.0.22', port: 1, hostname: 'dev-bob', mac: '52:54:00:00:00:22' }
  table.record(ev('10.0.0.22', 'connect.ngrok-agent.com'), bob)
  table.record(ev('10.0.0.22', 'a.ngrok.io'), { ...bob, hostname: 'dev-bob-2', domain: 'bob.lan' })
  table.record(ev('10.0.0.22', 'x.trycloudflare.com'), { hostname: 'kiosk-lobby', mac: '52:54:00:00:00:99' })
  table.record(ev('10.0.0.22', 'b.ngrok.io'), { hostname: 'printer' })
  table.record(ev('10.0.0.22', 'c.ngrok.io'))
  table.record(ev('10.0.0.22', 'd.ngrok.io'), { domain: 'ptr-only.lan', hostname: '' })
  t.equal(table.size, 4)
  t.same(table.list().map(c => [c.hostname, c.mac, c.domain, c.names.map(n => n.name)]), [
    [undefined, undefined, 'ptr-only.lan', ['c.ngrok.io', 'd.ngrok.io']],
    ['printer', undefined, undefined, ['b.ngrok.io']],
    ['kiosk-lobby', '52:54:00:00:00:99', undefined, ['x.trycloudflare.com']],
    ['dev-bob-2', '52:54:00:00:00:22', 'bob.lan', ['a.ngrok.io', 'connect.ngrok-agent.com']],
  ], 'dev-bob\'s queries stay with dev-bob (one MAC, its latest hostname); a hostname without a MAC is its own machine; no names: the bare address')
  t.same(table.list().map(c => Object.keys(c).slice(0, 4)).slice(2), [['ip', 'hostname', 'mac', 'group'], ['ip', 'hostname', 'mac', 'domain']])
  t.equal(table.get('10.0.0.22', '52:54:00:00:00:22')!.names.get('connect.ngrok-agent.com')!.count, 1)
  t.equal(table.get('10.0.0.22', 'printer')!.hostname, 'printer')
  t.equal(table.get('10.0.0.22')!.machine, '')
  t.equal(table.get('10.0.0.23'), undefined)
})

const capture = (ip: string, name: string, where: 'sni' | 'host'): DecisionEvent => ({
  message: 'sinkhole.capture', decision: snap.policy.decide(ip, name, where), client: { ip, port: 1 }, transport: 'tcp', durationNs: 1,
  destination: { domain: name, port: where === 'sni' ? 443 : 80 }, ...(where === 'sni' ? { sni: name } : { urlDomain: name }),
})

t.test('where: the log\'s matched_on, a sinkhole capture under its own label, Host apart from URL', async t => {
  const table = createClientTable()
  const proxyEv = (where: 'sni' | 'host' | 'url'): DecisionEvent => ({
    ...ev('10.0.0.32', 'abc.ngrok-free.app', where), message: where === 'sni' ? 'proxy.connect' : 'proxy.http',
    destination: { domain: where === 'host' ? 'www.example.test' : 'abc.ngrok-free.app', port: 443 },
  })
  table.record(capture('10.0.0.31', 'connect.ngrok-agent.com', 'sni'))
  table.record(capture('10.0.0.31', 'abc.ngrok-free.app', 'host'))
  table.record(proxyEv('sni'))
  table.record(proxyEv('url'))
  table.record(proxyEv('host'))
  const by = new Map(table.list().map(c => [c.ip, c]))
  t.same(by.get('10.0.0.31')!.where, { 'sinkhole-sni': 1, 'sinkhole-host': 1 }, 'the agent that reached the sinkhole')
  t.same(by.get('10.0.0.32')!.where, { sni: 1, host: 1, url: 1 }, 'the proxy user')
})

t.test('names: the name asked, the name decided on beside it; case and a trailing dot folded', async t => {
  const table = createClientTable({ maxNames: 3 })
  const ip = '10.0.0.11'
  // a DNS query whose answer CNAMEs to a listed name
  for (let i = 0; i < 2; i++) table.record({ ...ev(ip, 'x1.ngrok-free.app', 'cname'), dns: { name: 'innocent.example.test', type: 'A', rcode: 'NOERROR' } })
  // proxy names as the client spelt them
  const http = (host: string): DecisionEvent => ({ ...ev(ip, host, 'url'), message: 'proxy.http', destination: { domain: host, port: 80 }, urlDomain: host })
  table.record(http('ABC123.Ngrok-Free.APP'))
  table.record(http('abc123.ngrok-free.app.'))
  table.record(http('abc123.ngrok-free.app'))
  // a CONNECT to an address with an SNI: decided on the SNI; then one decided on the address, another SNI behind it
  const connect = (sni: string, decided: string): DecisionEvent => ({
    ...ev(ip, decided, 'sni'), message: 'proxy.connect', destination: { domain: '192.0.2.7', port: 443 }, sni })
  table.record(connect('Connect.Ngrok-Agent.com', 'connect.ngrok-agent.com'))
  table.record(connect('example.net', '192.0.2.7'))
  table.record(connect('192.0.2.7', '192.0.2.7'))
  t.same(table.list()[0]!.names, [
    { name: '192.0.2.7', count: 3, matched: ['connect.ngrok-agent.com', 'example.net'], other_matched: 0 },
    { name: 'abc123.ngrok-free.app', count: 3, matched: [], other_matched: 0 },
    { name: 'innocent.example.test', count: 2, matched: ['x1.ngrok-free.app'], other_matched: 0 },
  ])
  // matched names kept per client: at most maxNames over all its names
  for (const n of ['a.ngrok.io', 'b.ngrok.io']) table.record(connect(n, n))
  t.same(table.list()[0]!.names.find(n => n.name === '192.0.2.7'), { name: '192.0.2.7', count: 5, matched: ['connect.ngrok-agent.com', 'example.net'], other_matched: 2 })
})

t.test("the proxy's own refusals are counted as refused, not as blocks; one that keeps a list match is a block", async t => {
  const table = createClientTable({ clock: () => Date.UTC(2026, 10, 21) })
  const refusal = { action: 'block' as const, group: 'default', where: 'connect' as const, name: '10.1.2.3', reason: 'internal', policy: 'proxy.allowDestinations' }
  table.record({ ...ev('10.0.0.5', 'a.ngrok.io'), message: 'proxy.connect', decision: refusal })
  table.record({ ...ev('10.0.0.5', 'x.trycloudflare.com', 'connect'), message: 'proxy.connect', decision: { ...snap.policy.decide('10.0.0.5', 'x.trycloudflare.com', 'connect'), action: 'block', policy: 'proxy.connectPorts' } })
  t.same(table.list()[0]!.actions, { block: 1, refused: 1 })
})

t.test('an address a client named (destination.ip, no destination.domain) is the name asked, as report reads it', async t => {
  const table = createClientTable()
  const decision = { action: 'block' as const, group: 'default', where: 'connect' as const, name: '203.0.113.5', reason: 'listed', list: 'ips' }
  table.record({ message: 'proxy.connect', decision, client: { ip: '10.0.0.5', port: 1 }, transport: 'tcp', durationNs: 1, destination: { ip: '203.0.113.5', port: 443 } })
  table.record({ message: 'proxy.connect', decision: snap.policy.decide('10.0.0.5', 'x.ngrok.io', 'sni'), client: { ip: '10.0.0.5', port: 1 }, transport: 'tcp',
    durationNs: 1, destination: { ip: '203.0.113.5', port: 443 }, sni: 'x.ngrok.io' })
  t.same(table.list()[0]!.names, [{ name: '203.0.113.5', count: 2, matched: ['x.ngrok.io'], other_matched: 0 }])
})

t.test("rows(): each row's JSON is its view's, built once and again only after its client's next decision", async t => {
  let now = Date.UTC(2026, 10, 21)
  const table = createClientTable({ clock: () => now })
  table.record(ev('10.0.0.1', 'a.ngrok.io'))
  now += 1000
  table.record(ev('10.0.0.2', 'a.ngrok.io'))
  const rows = [...table.rows()]
  t.same(rows.map(r => r.ip), ['10.0.0.2', '10.0.0.1'], 'most recently seen first, as list()')
  t.same(rows.map(r => JSON.parse(r.json())), table.list(), 'the JSON of the same views')
  const stringify = JSON.stringify
  let calls = 0
  JSON.stringify = ((...a: Parameters<typeof stringify>) => { calls++; return stringify(...a) }) as typeof stringify
  t.teardown(() => { JSON.stringify = stringify })
  const before = rows[1]!.json()
  t.equal(calls, 0, 'kept: a quiet client is not serialized again')
  now += 1000
  table.record(ev('10.0.0.1', 'b.ngrok.io'))
  const after = [...table.rows()][0]!
  t.equal(after.ip, '10.0.0.1')
  t.not(after.json(), before, 'its next decision is in its JSON')
  t.equal(calls, 1, 'built anew once')
  t.match(JSON.parse(after.json()), { last_seen: '2026-11-21T00:00:02.000Z', actions: { sinkhole: 2 }, names: [{ name: 'a.ngrok.io' }, { name: 'b.ngrok.io' }] })
  t.equal(calls, 1)
  const capped = createClientTable({ maxNames: 1 })
  capped.record(ev('10.0.0.1', 'a.ngrok.io'))
  const row = [...capped.rows()][0]!
  t.equal(JSON.parse(row.json()).other_names, 0)
  capped.record(ev('10.0.0.1', 'b.ngrok.io'))
  t.equal(JSON.parse(row.json()).other_names, 1, 'a decision past the names cap is in it too')
})
