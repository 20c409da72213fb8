import t from 'tap'
import { createSocket, type Socket } from 'node:dgram'
import { once } from 'node:events'
import { setImmediate as turn } from 'node:timers/promises'
import { flushSends, queuedSends, sendSoon } from '../../src/dns/send-batch.js'

/** A socket that records its sends (and throws on the ones `throwOn` picks, as a closed dgram socket does). */
const recorder = (calls: unknown[][], throwOn = (_: Buffer) => false): Socket => ({
  send(...a: unknown[]) {
    if (throwOn(a[0] as Buffer)) throw Object.assign(new Error('Not running'), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' })
    calls.push(a)
  },
}) as unknown as Socket

t.test('the datagrams of a turn go out at its end, in order, on their sockets', async t => {
  const a: unknown[][] = []
  const b: unknown[][] = []
  const sa = recorder(a)
  const sb = recorder(b)
  sendSoon(sa, Buffer.from('1'), 5300, '127.0.0.2')
  sendSoon(sb, Buffer.from('2'))
  sendSoon(sa, Buffer.from('3'), 5301, '::1')
  t.equal(queuedSends(), 3)
  t.same([a.length, b.length], [0, 0], 'nothing sent within the turn')
  await turn()
  t.equal(queuedSends(), 0)
  t.same(a.map(c => [String(c[0]), ...c.slice(1)]), [['1', 5300, '127.0.0.2'], ['3', 5301, '::1']])
  t.same(b.map(c => c.map(String)), [['2']], 'port 0: the socket\'s connected peer (no address given)')
  // the next turn's datagrams are a batch of their own
  sendSoon(sb, Buffer.from('4'))
  t.equal(b.length, 1)
  await turn()
  t.same(b.map(c => String(c[0])), ['2', '4'])
})

t.test('a socket closed before the end of the turn loses its datagram only', async t => {
  const calls: unknown[][] = []
  const s = recorder(calls, buf => String(buf) === 'closed')
  sendSoon(s, Buffer.from('a'), 1, '127.0.0.1')
  sendSoon(s, Buffer.from('closed'), 1, '127.0.0.1')
  sendSoon(s, Buffer.from('b'), 1, '127.0.0.1')
  await turn()
  t.same(calls.map(c => String(c[0])), ['a', 'b'])
  t.equal(queuedSends(), 0)
})

t.test('flushSends sends what is queued at once; the turn\'s end then has nothing left to send', async t => {
  const calls: unknown[][] = []
  const s = recorder(calls)
  sendSoon(s, Buffer.from('x'), 9, '127.0.0.1')
  sendSoon(s, Buffer.from('y'), 9, '127.0.0.1')
  flushSends()
  t.same(calls.map(c => String(c[0])), ['x', 'y'])
  await turn()
  t.equal(calls.length, 2, 'not sent twice')
})

t.test('real sockets: to an address, and on a connected socket', async t => {
  const rx = createSocket('udp4')
  rx.bind(0, '127.0.0.1')
  await once(rx, 'listening')
  const tx = createSocket('udp4')
  const conn = createSocket('udp4')
  conn.connect(rx.address().port, '127.0.0.1')
  await once(conn, 'connect')
  t.teardown(() => { rx.close(); tx.close(); conn.close() })
  const got: string[] = []
  const all = new Promise<void>(resolve => rx.on('message', m => { got.push(String(m)); if (got.length === 3) resolve() }))
  sendSoon(tx, Buffer.from('one'), rx.address().port, '127.0.0.1')
  sendSoon(conn, Buffer.from('two'))
  sendSoon(tx, Buffer.from('three'), rx.address().port, '127.0.0.1')
  await Promise.race([all, new Promise((_, reject) => setTimeout(() => reject(new Error('not all arrived in 2 s')), 2000).unref())])
  t.same(got.sort(), ['one', 'three', 'two'])
})
