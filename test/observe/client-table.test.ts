import t from 'tap'
import { createClientTable } from '../../src/observe/client-table.js'
import type { DecisionEvent } from '../../src/observe/types.js'
import { makeSnapshot } from '../fixtures/snapshot.js'

const snap = makeSnapshot({ config: { groups: [{ name: 'lab', clients: ['10.9.0.0/16'], actions: {} }] } })
const ev = (ip: string, name: string, where: 'qname' | 'sni' = 'qname'): DecisionEvent => ({
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
    names: [{ name: 'a.ngrok.io', count: 2 }, { name: 'b.ngrok.io', count: 1 }, { name: 'z.trycloudflare.com', count: 1 }],
    other_names: 0,
    lists: { ngrok: 3, tunnels: 1 }, where: { qname: 3, sni: 1 },
  })
  t.equal(table.get('10.0.0.5')!.names.get('a.ngrok.io'), 2)
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
  t.same(c.names, [{ name: 'b.ngrok.io', count: 2 }, { name: 'a.ngrok.io', count: 1 }])
  t.equal(c.other_names, 1)
  t.ok(Date.parse(c.last_seen) > 0, 'the wall clock by default')
})

t.test('a decision without a list', async t => {
  const table = createClientTable()
  table.record({ ...ev('10.0.0.1', 'bad..name'), decision: snap.policy.decide('10.0.0.1', 'bad..name', 'qname') })
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
  t.same(table.list().map(c => [c.ip, c.actions, c.names]), [['10.0.0.1', { sinkhole: 2 }, [{ name: 'b.ngrok.io', count: 2 }]]],
    'a new entry: the evicted one\'s counts are gone, the recent ones all kept')
})
