import t from 'tap'
import type { Socket } from 'node:net'
import { socketField } from '../../src/proxy/socket-field.js'
import { churn } from '../fixtures/promotion.js'

t.test('a value kept on the socket: set, get, cleared; fields apart', async t => {
  const s = {} as Socket
  const a = socketField<number>('a')
  const b = socketField<string>('a')
  t.equal(a.get(s), undefined)
  a.set(s, 1)
  b.set(s, 'x')
  t.equal(a.get(s), 1)
  t.equal(b.get(s), 'x', 'two fields of the same name do not meet')
  a.set(s, undefined)
  t.equal(a.get(s), undefined)
})

t.test('a record that points back at its socket does not keep it through young collections (in a WeakMap it does)', async t => {
  const field = socketField<object>('conn')
  const ring = new Array<object | undefined>(64).fill(undefined)
  const onField = churn((k, v) => { field.set(v as Socket, { socket: v }); ring[k % 64] = v }, k => { ring[k % 64] = undefined })
  const map = new WeakMap<object, object>()
  const onMap = churn((k, v) => { map.set(v, { socket: v }); ring[k % 64] = v }, k => { ring[k % 64] = undefined })
  t.ok(onField < 512 * 1024, `on the socket: the old generation grew ${Math.round(onField / 1024)} KiB`)
  t.ok(onMap > 4 * onField + 1024 * 1024, `the control, a WeakMap: ${Math.round(onMap / 1024)} KiB`)
})
