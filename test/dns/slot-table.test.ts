import t from 'tap'
import dnsPacket from 'dns-packet'
import { PendingTable } from '../../src/dns/pending.js'
import { SlotTable } from '../../src/dns/slot-table.js'
import { churn } from '../fixtures/promotion.js'

t.test('a slot per key: get, set, delete, isFree', async t => {
  const s = new SlotTable<string>(8, 64)
  t.equal(s.capacity, 8)
  t.ok(s.isFree(3))
  s.set(3, 'three')
  t.equal(s.get(3), 'three')
  t.equal(s.size, 1)
  t.notOk(s.isFree(11), '11 & 7 is 3: the slot is taken')
  t.equal(s.get(11), undefined, 'another key in the slot is not found')
  t.notOk(s.delete(11), 'nor deleted')
  t.notOk(s.delete(3, 'other'), 'a delete naming another object leaves it')
  t.equal(s.get(3), 'three')
  t.ok(s.delete(3, 'three'))
  t.notOk(s.delete(3), 'gone')
  t.equal(s.size, 0)
  t.ok(s.isFree(11))
  t.equal(s.get(0), undefined, 'a key never stored (its slot holds key 0, empty)')
})

t.test('reserve doubles past maxLoad, keeps every key findable, empties the array it replaces, stops at maxCapacity', async t => {
  const s = new SlotTable<number>(4, 16)
  const keys = [0x10001, 0x20002, 0x7fff0003]
  const firstValues = (s as unknown as { values: unknown[] }).values
  for (const k of keys) {
    s.reserve()
    t.ok(s.isFree(k))
    s.set(k, k)
  }
  t.equal(s.capacity, 8, '3 entries past half of 4: 8 slots')
  t.ok(firstValues.every(v => v === undefined), 'the array replaced holds nothing (it could keep entries alive)')
  for (const k of keys) t.equal(s.get(k), k)
  for (let k = 4; s.size < 16; k++) {
    s.reserve()
    if (s.isFree(k)) s.set(k, k)
  }
  t.equal(s.capacity, 16, 'no further than maxCapacity, filled to the last slot')
  s.reserve()
  t.equal(s.capacity, 16)
  const all = s.takeAll()
  t.equal(all.length, 16)
  t.ok(all.includes(0x7fff0003))
  t.equal(s.size, 0)
  t.ok(s.isFree(0x7fff0003))
})

t.test('entries that come and go are not promoted by the young collector (a Map is, through the tables it replaces)', async t => {
  const slots = new SlotTable<object>(64, 65_536)
  const bySlots = churn((k, v) => { slots.reserve(); slots.set(k & 0xffff, v) }, k => { slots.delete(k & 0xffff) })
  const map = new Map<number, object>()
  const byMap = churn((k, v) => { map.set(k, v) }, k => { map.delete(k) })
  t.ok(bySlots < 512 * 1024, `SlotTable: the old generation grew ${Math.round(bySlots / 1024)} KiB`)
  // the control, as the measure can see it: a Map churned the same way promotes most of its entries
  t.ok(byMap > 4 * bySlots + 1024 * 1024, `a Map: ${Math.round(byMap / 1024)} KiB`)
})

t.test("PendingTable: answered queries' records, callbacks and buffers are not promoted", async t => {
  const table = new PendingTable()
  const ring = new Array<Buffer | undefined>(64).fill(undefined)      // the queries in flight (40)
  let answered = 0
  let refused = 0
  const grew = churn((k, v) => {
    const q = dnsPacket.encode({ type: 'query', id: 0, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: `n${k}.example` }] })
    if (!table.add(q, q.length, 60_000, () => { answered += v === undefined ? 0 : 1 })) refused++
    ring[k % 64] = q
  }, k => {
    const reply = Buffer.from(ring[k % 64]!)
    ring[k % 64] = undefined
    reply[2] |= 0x80                                 // QR: the query's own bytes, as a response
    if (!table.take(reply)) refused++
  })
  t.equal(refused, 0, 'every query got an ID and its reply was taken')
  t.equal(answered, 20_060)
  t.ok(grew < 2 * 1024 * 1024, `the old generation grew ${Math.round(grew / 1024)} KiB over 20,000 queries`)
  for (const p of table.takeAll()) p.cb(undefined)
  t.equal(table.size, 0)
})
