import t from 'tap'
import { FrameReader, frame } from '../../src/dns/framing.js'

t.test('frame prefixes the length', async t => {
  t.same([...frame(Buffer.from([7, 8, 9]))], [0, 3, 7, 8, 9])
})

t.test('FrameReader reassembles split and joined frames', async t => {
  const got: string[] = []
  const r = new FrameReader()
  const on = (m: Buffer): void => { got.push(m.toString()) }
  const all = Buffer.concat([frame(Buffer.from('one')), frame(Buffer.from('two')), frame(Buffer.from('three'))])
  r.push(all.subarray(0, 1), on)                 // half a length
  t.equal(r.buffered, 1)
  r.push(all.subarray(1, 4), on)                 // rest of the length + 2 octets
  t.same(got, [])
  r.push(all.subarray(4, 12), on)                // end of "one", all of "two", 2 octets of the next length
  t.same(got, ['one', 'two'])
  t.equal(r.buffered, 2)
  r.push(all.subarray(12), on)
  t.same(got, ['one', 'two', 'three'])
  t.equal(r.buffered, 0)
  r.push(frame(Buffer.alloc(0)), on)
  t.same(got, ['one', 'two', 'three', ''], 'an empty frame is still a frame')
})

t.test('a frame announced but not sent stays pending, bounded', async t => {
  const r = new FrameReader()
  let n = 0
  r.push(Buffer.from([0xff, 0xff, 1, 2, 3]), () => { n++ })
  t.equal(n, 0)
  t.equal(r.buffered, 5)
})
