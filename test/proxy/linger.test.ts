// lingerClose on a socket already destroyed (a CONNECT's client gone while its name resolved):
// nothing to wait for, and no timer left behind to hold the process up to LINGER_MS.
import { connect, createServer, type Socket } from 'node:net'
import t from 'tap'
import { lingerClose } from '../../src/proxy/linger.js'

const timers = () => process.getActiveResourcesInfo().filter(r => r === 'Timeout').length

t.test('a destroyed socket: returned from at once, no timer; a live one: its linger timer', async t => {
  const accepted: Socket[] = []
  const srv = createServer(s => { accepted.push(s) })
  await new Promise<void>(r => srv.listen(0, '127.0.0.1', r))
  t.teardown(() => srv.close())
  const port = (srv.address() as { port: number }).port
  const pair = async () => {
    const c = connect(port, '127.0.0.1')
    c.on('error', () => {})
    await new Promise(r => c.once('connect', r))
    await new Promise(r => setImmediate(r))
    const s = accepted.at(-1)!
    s.on('error', () => {})
    return { c, s }
  }

  const gone = await pair()
  gone.s.destroy()
  await new Promise(r => gone.s.once('close', r))
  const before = timers()
  const ends = gone.s.listenerCount('end')
  lingerClose(gone.s)
  t.equal(timers(), before, 'no timer for a socket already gone')
  t.equal(gone.s.listenerCount('end'), ends, 'nothing waits for its end')
  gone.c.destroy()

  const live = await pair()
  const was = timers()
  lingerClose(live.s)
  t.equal(timers(), was + 1, 'a live socket: the LINGER_MS timer')
  t.ok(live.s.writableEnded, 'its FIN is on the way')
  await new Promise(r => live.c.once('end', r))
  live.c.end()                                     // its FIN: the linger ends, the timer with it
  await new Promise(r => live.s.once('close', r))
  await new Promise(r => setImmediate(r))
  t.equal(timers(), was, 'the timer cleared at the close')
})
