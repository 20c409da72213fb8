import t from 'tap'
import { LiveSet } from '../src/live-set.js'
import { churn } from './fixtures/promotion.js'

t.test('add gives a slot, remove gives it back (once), values and size follow', async t => {
  const s = new LiveSet<string>()
  const a = s.add('a')
  const b = s.add('b')
  t.equal(s.size, 2)
  t.ok(s.holds(a, 'a'))
  t.notOk(s.holds(a, 'b'))
  s.remove(a, 'a')
  s.remove(a, 'a')
  t.equal(s.size, 1, 'a second remove does nothing')
  t.notOk(s.holds(a, 'a'))
  t.same(s.values(), ['b'])
  const c = s.add('c')
  t.equal(c, a, 'the slot given back is taken again')
  s.remove(a, 'a')
  t.ok(s.holds(c, 'c'), "a late remove of what the slot held before leaves its new object")
  t.same(s.values().sort(), ['b', 'c'])
  s.remove(b, 'b')
  s.remove(c, 'c')
  t.equal(s.size, 0)
  t.same(s.values(), [])
})

t.test('objects that come and go are not promoted by the young collector (a Set\'s are)', async t => {
  const ring = new Int32Array(64)
  const live = new LiveSet<object>()
  const objs = new Array<object | undefined>(64).fill(undefined)
  const byLive = churn((k, v) => { ring[k % 64] = live.add(v); objs[k % 64] = v }, k => { live.remove(ring[k % 64]!, objs[k % 64]!); objs[k % 64] = undefined })
  const set = new Set<object>()
  const bySet = churn((k, v) => { set.add(v); objs[k % 64] = v }, k => { set.delete(objs[k % 64]!); objs[k % 64] = undefined })
  t.ok(byLive < 512 * 1024, `LiveSet: the old generation grew ${Math.round(byLive / 1024)} KiB`)
  t.ok(bySet > 4 * byLive + 1024 * 1024, `the control, a Set churned the same way: ${Math.round(bySet / 1024)} KiB`)
})
