import { createHash, randomBytes } from 'node:crypto'
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import t from 'tap'
import { ReadRelay } from '../../src/proxy/relay.js'
import type { TestLike } from '../fixtures/unbound.js'

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

function listen(server: Server): Promise<number> {
  return new Promise(resolve => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)))
}

/**
 * An origin that writes `payload` to each connection and ends it, a sink that keeps what it is
 * sent (pausing for `pauseMs` after each `every` bytes, so its sender's writes queue), and a relay
 * from a socket to the origin to a socket to the sink, attached after `attachAfterMs`.
 */
async function run(t: TestLike, payload: Buffer, opts: { every?: number; pauseMs?: number; attachAfterMs?: number } = {}) {
  const origin = createServer(s => { s.end(payload) })
  let done!: (b: { data: Buffer; ended: boolean }) => void
  const received = new Promise<{ data: Buffer; ended: boolean }>(r => { done = r })
  const sink = createServer(s => {
    const parts: Buffer[] = []
    let got = 0
    let mark = opts.every ?? Infinity
    s.on('data', (b: Buffer) => {
      parts.push(b)
      got += b.length
      if (got >= mark) {
        mark += opts.every!
        s.pause()
        setTimeout(() => s.resume(), opts.pauseMs ?? 0)
      }
    })
    s.on('end', () => { done({ data: Buffer.concat(parts), ended: true }); s.end() })
  })
  const [op, sp] = await Promise.all([listen(origin), listen(sink)])
  t.teardown(() => { origin.close(); sink.close() })
  const relay = ReadRelay.create()!
  let stops = 0                                  // reads after which the relay stopped reading
  const read = relay.onread.callback
  relay.onread.callback = (n, b) => { const go = read(n, b); if (go === false) stops++; return go }
  const from = connect({ host: '127.0.0.1', port: op, onread: relay.onread })
  const to: Socket = connect({ host: '127.0.0.1', port: sp })
  await Promise.all([new Promise(r => from.once('connect', r)), new Promise(r => to.once('connect', r))])
  if (opts.attachAfterMs) await new Promise(r => setTimeout(r, opts.attachAfterMs))
  relay.attach(from, to)
  const r = await received
  from.destroy()
  to.destroy()
  relay.release()
  return { ...r, stops }
}

t.test('every byte arrives intact and in order while the destination keeps falling behind', async t => {
  const payload = randomBytes(8 * 1024 * 1024 + 123)
  const r = await run(t, payload, { every: 256 * 1024, pauseMs: 20 })
  t.equal(r.data.length, payload.length)
  t.equal(sha(r.data), sha(payload), 'no read overwrote bytes still waiting to be written')
  t.ok(r.ended, "the source's end ends the destination")
  t.ok(r.stops > 0, `reading stopped while the destination had bytes queued (${r.stops} times) and went on`)
})

t.test('bytes read before the relay is attached are written first', async t => {
  const small = Buffer.from('server speaks first\r\n')
  const r = await run(t, small, { attachAfterMs: 100 })
  t.equal(r.data.toString(), small.toString())
  t.ok(r.ended)
  const big = randomBytes(300 * 1024)    // more than a relay reads before it has a destination
  const r2 = await run(t, big, { attachAfterMs: 150 })
  t.equal(sha(r2.data), sha(big), 'all of it, in order')
  t.ok(r2.stops > 0, 'reading stopped at the early limit and went on after attach')
})

t.test('a destination that is still writing when attached is waited for', async t => {
  const payload = randomBytes(2 * 1024 * 1024)
  const origin = createServer(s => { s.end(payload) })
  const parts: Buffer[] = []
  let ended!: () => void
  const end = new Promise<void>(r => { ended = r })
  const sink = createServer(s => {
    s.pause()                                    // nothing is read at first, so the early bytes below stay queued
    setTimeout(() => s.resume(), 200)
    s.on('data', (b: Buffer) => parts.push(b))
    s.on('end', () => ended())
  })
  const [op, sp] = await Promise.all([listen(origin), listen(sink)])
  t.teardown(() => { origin.close(); sink.close() })
  const relay = ReadRelay.create()!
  const from = connect({ host: '127.0.0.1', port: op, onread: relay.onread })
  const to = connect({ host: '127.0.0.1', port: sp })
  await new Promise(r => to.once('connect', r))
  const filler = randomBytes(16 * 1024 * 1024)  // more than the socket buffers take while the sink is paused
  to.write(filler)
  t.ok(to.writableLength > 0, 'the destination has bytes queued')
  relay.attach(from, to)
  const pooled = ReadRelay.pooled
  relay.release()
  t.equal(ReadRelay.pooled, pooled, 'a relay released while its destination has bytes queued keeps its buffer out of the pool')
  await end
  from.destroy()
  to.destroy()
  const all = Buffer.concat(parts)
  t.equal(all.length, filler.length + payload.length)
  t.equal(sha(all.subarray(filler.length)), sha(payload))
})

t.test('at most MAX_RELAYS relays are open; a released one makes room', async t => {
  const before = ReadRelay.open
  const a = ReadRelay.create(before + 2)!
  const b = ReadRelay.create(before + 2)!
  t.ok(a && b)
  t.equal(ReadRelay.create(before + 2), undefined, 'past the limit: none (the tunnel is piped)')
  a.release()
  a.release()
  t.equal(ReadRelay.open, before + 1, 'released once, however often called')
  const c = ReadRelay.create(before + 2)
  t.ok(c, 'room again')
  b.release()
  c!.release()
  t.equal(ReadRelay.open, before)
})

t.test("a released relay's buffer is used by the next one", async t => {
  const a = ReadRelay.create()!
  const pooled = ReadRelay.pooled
  a.release()
  t.equal(ReadRelay.pooled, pooled + 1, 'pooled (nothing was written from it)')
  const b = ReadRelay.create()!
  t.equal(ReadRelay.pooled, pooled, 'taken by the next relay')
  t.equal(b.onread.buffer, a.onread.buffer, 'the same buffer')
  b.release()
})
