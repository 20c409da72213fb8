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

t.test('pull-style: frames taken one at a time; what is not taken waits for the next call', async t => {
  const r = new FrameReader()
  t.equal(r.next(), undefined, 'nothing fed')
  const all = Buffer.concat([frame(Buffer.from('one')), frame(Buffer.from('two')), frame(Buffer.from('three')).subarray(0, 4)])
  r.feed(all)
  t.equal(r.next()!.toString(), 'one')
  t.equal(r.unread, all.length - 5, 'the rest of the read is held, not looked at')
  t.equal(r.buffered, 0)
  r.feed(frame(Buffer.from('three')).subarray(4))   // fed before the rest was taken: kept in order
  t.equal(r.next()!.toString(), 'two')
  t.equal(r.next()!.toString(), 'three')
  t.equal(r.next(), undefined)
  t.equal(r.unread, 0)
  t.equal(r.frames, 3)
})

t.test('a frame split across reads is allocated once, at its announced length, and appended to', async t => {
  const body = Buffer.alloc(65_535, 7)
  body.writeUInt16BE(0x1234, 0)
  const wire = frame(body)
  const r = new FrameReader()
  // count the octets every Buffer allocation hands out while the frame is dripped in one octet per read
  const B = Buffer as unknown as Record<string, (...a: unknown[]) => Buffer>
  const names = ['alloc', 'allocUnsafe', 'allocUnsafeSlow', 'from', 'concat'] as const
  const saved = names.map(n => B[n]!)
  let allocated = 0
  names.forEach((n, i) => { B[n] = (...a: unknown[]) => { const b = saved[i]!.apply(Buffer, a); allocated += b.length; return b } })
  const got: Buffer[] = []
  const started = r.frames
  try {
    r.push(wire.subarray(0, 1), m => got.push(m))
    r.push(wire.subarray(1, 2), m => got.push(m))
    t.equal(r.buffered, 2)
    for (let i = 2; i < 4002; i++) r.push(wire.subarray(i, i + 1), m => got.push(m))
    t.equal(r.buffered, 4002)
    t.equal(r.frames, started, 'still the same frame')
    r.push(wire.subarray(4002), m => got.push(m))
  } finally {
    names.forEach((n, i) => { B[n] = saved[i]! })
  }
  t.equal(got.length, 1)
  t.ok(got[0]!.equals(body), 'the message as sent')
  t.ok(allocated <= 65_535, `${allocated} octets allocated for a 65,535-octet frame in 4,003 reads (a copy of the partial frame per read would be ~16 MB)`)
})

t.test('a zero-length frame whose length is split across reads', async t => {
  const r = new FrameReader()
  const got: number[] = []
  r.push(Buffer.from([0]), m => got.push(m.length))
  r.push(Buffer.from([0, 0, 1, 9]), m => got.push(m.length))
  t.same(got, [0, 1])
})

t.test('an empty read changes nothing', async t => {
  const r = new FrameReader()
  r.feed(Buffer.alloc(0))
  t.equal(r.next(), undefined)
  r.feed(Buffer.from([0]))
  r.feed(Buffer.alloc(0))
  t.equal(r.buffered, 0, 'the octet is fed, not yet looked at')
  t.equal(r.unread, 1)
  t.equal(r.next(), undefined)
  t.equal(r.buffered, 1)
})
