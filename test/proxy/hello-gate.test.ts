import t from 'tap'
import type { Socket } from 'node:net'
import { PassThrough, Writable } from 'node:stream'
import { HelloGate } from '../../src/proxy/hello-gate.js'
import type { HelloRead } from '../../src/proxy/hello-reader.js'
import { clientHello, records } from '../fixtures/client-hello.js'

const CCS = Buffer.from([0x14, 3, 3, 0, 1, 1])
const data = (n: number, fill = 0xaa) => Buffer.concat([Buffer.from([0x17, 3, 3, n >> 8, n & 255]), Buffer.alloc(n, fill)])
const hello = (name: string) => records(clientHello({ names: [name] }))
const tick = () => new Promise(r => setTimeout(r, 5))

/** A client socket, the server side that records what reaches it (`slow`: it takes one write, then waits for `drain()`), and a gate between. */
function setup(rest: Buffer = Buffer.alloc(0), o: { slow?: boolean; timeout?: number } = {}) {
  const client = new PassThrough()
  const got: Buffer[] = []
  let held: (() => void) | undefined
  const up = new Writable({
    highWaterMark: o.slow ? 1 : 16_384,
    write(b: Buffer, _e, cb) {
      got.push(b)
      if (o.slow) held = cb
      else cb()
    },
  })
  let ended = false
  up.on('finish', () => { ended = true })
  const checked: [HelloRead, boolean][] = []
  // passes a hello that names ok.example
  const check = (r: HelloRead, early: boolean) => {
    checked.push([r, early])
    return r.kind === 'hello' && r.names[0] === 'ok.example'
  }
  const gate = new HelloGate(client as unknown as Socket, up as unknown as Socket, rest, check, o.timeout ?? 1000)
  return {
    client, up, gate, checked,
    sent: () => Buffer.concat(got),
    ended: () => ended,
    drain: () => { const h = held; held = undefined; h?.() },
  }
}

t.test('before the server answered: change_cipher_spec and early data pass as they come, split anywhere; then the client is piped', async t => {
  const g = setup(CCS.subarray(0, 2))
  const early = data(300)
  const all = Buffer.concat([CCS, early])
  g.client.write(all.subarray(2, 9))        // the CCS's rest, the data's header cut
  g.client.write(all.subarray(9, 100))
  await tick()
  t.ok(g.sent().equals(all.subarray(0, 100)), 'a record\'s body goes on as it comes')
  g.client.write(all.subarray(100))
  g.client.write(Buffer.from([0x17, 3]))    // a header cut short, held
  await tick()
  t.ok(g.sent().equals(all))
  g.gate.server(false)
  g.gate.server(true)                       // classified once: later calls change nothing
  await tick()
  t.ok(g.sent().equals(Buffer.concat([all, Buffer.from([0x17, 3])])), 'what was held goes on')
  g.client.write(hello('x.ngrok.io'))       // after a ServerHello, not looked at (the server takes no hello now)
  await tick()
  t.equal(g.checked.length, 0)
  t.equal(g.sent().length, all.length + 2 + hello('x.ngrok.io').length, 'piped')
})

t.test('a second hello sent before the server answered is decided before it goes on', async t => {
  const first = hello('ok.example')
  const ok = setup(Buffer.concat([CCS, first]))
  t.match(ok.checked, [[{ kind: 'hello', names: ['ok.example'] }, true]], 'the same name passes')
  t.ok(ok.sent().equals(Buffer.concat([CCS, first])))
  ok.gate.server(true)                      // the request it already answered
  ok.client.write(data(10))
  await tick()
  t.equal(ok.checked.length, 1, 'no third hello waited for: piped')
  t.equal(ok.sent().length, CCS.length + first.length + 15)

  const listed = hello('x.ngrok.io')
  const bad = setup(CCS)
  for (let i = 0; i < listed.length; i++) bad.client.write(listed.subarray(i, i + 1))
  await tick()
  t.match(bad.checked, [[{ kind: 'hello', names: ['x.ngrok.io'] }, true]], 'decided once, when complete')
  t.ok(bad.sent().equals(CCS), 'the second hello never reached the server')
  t.ok(bad.client.destroyed && bad.up.destroyed, 'both sides closed')

  const junk = setup(Buffer.from([0x16, 3, 3, 0, 0]))
  t.match(junk.checked, [[{ kind: 'invalid' }, true]], 'a malformed handshake record is refused')
  t.equal(junk.sent().length, 0)
  t.ok(junk.client.destroyed)
})

t.test('after a retry request: change_cipher_spec, then the second hello; anything else, a timeout or the end is refused', async t => {
  const g = setup(data(20).subarray(0, 10))    // early data cut when the request came: its rest still passes
  g.gate.server(true)
  const second = Buffer.concat([data(20).subarray(10), CCS, hello('ok.example')])
  g.client.write(second.subarray(0, 20))
  g.client.write(second.subarray(20))
  await tick()
  t.match(g.checked, [[{ kind: 'hello', names: ['ok.example'] }, false]])
  t.ok(g.sent().equals(Buffer.concat([data(20), CCS, hello('ok.example')])))
  g.client.write('after')
  await tick()
  t.match(g.sent().toString('latin1'), /after$/, 'piped')

  for (const [name, bytes, reason] of [
    ['application data', data(5), /record type 23 before the ClientHello/],
    ['not TLS', Buffer.from('GET / HTTP/1.1\r\n'), undefined],
    ['a listed name', hello('x.ngrok.io'), undefined],
  ] as const) {
    const b = setup()
    b.gate.server(true)
    b.client.write(bytes)
    await tick()
    t.equal(b.checked.length, 1, name)
    if (reason) t.match(b.checked[0]![0], { kind: 'invalid', reason }, name)
    t.equal(b.checked[0]![1], false)
    t.equal(b.sent().length, 0, `${name}: nothing went on`)
    t.ok(b.up.destroyed)
  }
  const notTls = setup()
  notTls.gate.server(true)
  notTls.client.write('SSH-2.0\r\n')
  await tick()
  t.match(notTls.checked, [[{ kind: 'not-tls' }, false]])

  const flood = Buffer.concat(Array.from({ length: 6000 }, () => CCS))
  for (const [name, bytes] of [['whole records', flood], ['cut inside a record', flood.subarray(0, 33_000)]] as const) {
    const f = setup()
    f.gate.server(true)
    f.client.write(bytes)
    await tick()
    t.match(f.checked, [[{ kind: 'invalid', reason: 'change_cipher_spec records over the cap' }, false]], name)
    t.equal(f.sent().length, 0, `${name}: held, never sent`)
  }

  // the records before the second hello are held with it: a refused one takes them along
  const held = setup()
  held.gate.server(true)
  const both = Buffer.concat([CCS, CCS, hello('x.ngrok.io')])
  for (let i = 0; i < both.length; i += 7) held.client.write(both.subarray(i, i + 7))
  await tick()
  t.match(held.checked, [[{ kind: 'hello', names: ['x.ngrok.io'] }, false]], 'decided once, when complete')
  t.equal(held.sent().length, 0, 'nothing reached the server')

  const late = setup(Buffer.alloc(0), { timeout: 20 })
  late.gate.server(true)
  await new Promise(r => setTimeout(r, 60))
  t.match(late.checked, [[{ kind: 'timeout' }, false]])
  t.ok(late.client.destroyed)

  const ends = setup()
  ends.gate.server(true)
  ends.client.end()
  ends.client.resume()
  await tick()
  t.match(ends.checked, [[{ kind: 'eof' }, false]], 'the client ends')

  const resets = setup()
  resets.gate.server(true)
  resets.client.destroy()
  await tick()
  t.match(resets.checked, [[{ kind: 'eof' }, false]], 'the client is gone')
})

t.test('the client ends before the server answered: the server is told; a retry request then finds no second hello', async t => {
  const g = setup(CCS)
  g.client.end()
  await tick()
  t.ok(g.ended(), 'half-close kept')
  g.gate.server(true)
  t.match(g.checked, [[{ kind: 'eof' }, false]])
  const n = setup(hello('ok.example').subarray(0, 20))
  n.client.end()
  await tick()
  n.gate.server(false)
  t.equal(n.sent().length, 0, 'a ServerHello: the hello cut short is dropped, nothing piped')
  t.ok(n.ended())
  // it ended before the gate was set up (while the server was dialled)
  const early = new PassThrough()
  early.end()
  early.resume()
  await tick()
  const sink = new PassThrough()
  new HelloGate(early as unknown as Socket, sink as unknown as Socket, Buffer.alloc(0), () => true, 1000)
  t.ok(sink.writableEnded, 'the server is told')
  const c = setup()
  c.client.destroy()
  await tick()
  t.equal(c.checked.length, 0, 'a close before the server answered is the tunnel\'s to handle')
})

t.test('a server that does not read: the client is not read either until it drains', async t => {
  const g = setup(Buffer.alloc(0), { slow: true })
  g.client.write(Buffer.concat([data(100), data(100), data(100)]))
  await tick()
  t.ok(g.client.isPaused(), 'paused')
  g.drain()
  await tick()
  g.drain()
  await tick()
  t.equal(g.sent().length, 315)
  g.client.write(data(1))
  await tick()
  g.gate.server(false)
  g.drain()
  await tick()
  t.ok(g.sent().length >= 315)
  const r = setup(Buffer.alloc(0), { slow: true })
  r.client.write(Buffer.concat([data(10), data(10)]))
  await tick()
  t.ok(r.client.isPaused())
  r.gate.server(true)
  r.drain()
  await tick()
  r.drain()
  await tick()
  t.notOk(r.client.isPaused(), 'resumed once drained, after the retry request too')
  r.client.write(Buffer.concat([CCS, hello('ok.example')]))
  for (let i = 0; i < 4; i++) {
    r.drain()
    await tick()
  }
  t.match(r.checked, [[{ kind: 'hello' }, false]])
})
