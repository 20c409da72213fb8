import t, { type Test } from 'tap'
import { createServer, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { IDLE_UPSTREAM_MS, PoolAgent } from '../../src/proxy/pool-agent.js'

/** A listener on loopback that accepts and holds connections; its port. */
async function listener(t: Test): Promise<number> {
  const held = new Set<Socket>()
  const srv = createServer(s => { held.add(s); s.on('error', () => {}) })
  await new Promise<void>(r => srv.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => { for (const s of held) s.destroy(); return new Promise<void>(r => srv.close(() => r())) })
  return (srv.address() as { port: number }).port
}

/** The connected socket: handed to the callback (a direct request's), or returned and connected (node's own, for a parent). */
const connect = (agent: PoolAgent, options: Record<string, unknown>): Promise<Socket> => new Promise((resolve, reject) => {
  let r: Duplex | null | undefined
  r = agent.createConnection(options, (err: Error | null, s?: Duplex) => err ? reject(err) : resolve((s ?? r) as Socket))
})

t.test('a socket being connected does not carry the pool\'s idle timeout (a slow connect is not cut at 4 s)', async t => {
  const port = await listener(t)
  const agent = new PoolAgent({ keepAlive: true, timeout: IDLE_UPSTREAM_MS }, 10_000)
  t.teardown(() => agent.destroy())
  // node gives createConnection the agent's options merged in, timeout included
  for (const options of [
    { host: '127.0.0.1', port, addresses: ['127.0.0.1'], timeout: IDLE_UPSTREAM_MS },
    { host: '127.0.0.2', port, addresses: ['127.0.0.2', '127.0.0.1'], timeout: IDLE_UPSTREAM_MS },
    { host: '127.0.0.1', port, timeout: IDLE_UPSTREAM_MS },           // a parent proxy's connection
  ]) {
    const s = await connect(agent, options)
    t.equal(s.timeout, undefined, `no socket timeout while connecting (${options.addresses?.length ?? 'parent'})`)
    t.equal(s.remotePort, port)
    s.destroy()
  }
})

t.test('dropIdle: the idle sockets kept for a destination are closed; none kept is nothing to do', async t => {
  const agent = new PoolAgent({ keepAlive: true }, 10_000)
  t.teardown(() => agent.destroy())
  const options = { host: '127.0.0.1', port: 9, addresses: ['127.0.0.1'] }
  t.doesNotThrow(() => agent.dropIdle(options), 'no socket kept for it')
  const destroyed: string[] = []
  const fake = (id: string) => ({ destroy: () => { destroyed.push(id) } }) as unknown as Socket
  const free = agent.freeSockets as Record<string, Socket[]>   // node's own list of the idle sockets kept
  free[agent.getName(options)] = [fake('a'), fake('b')]
  agent.dropIdle(options)
  t.same(destroyed, ['a', 'b'], 'each kept socket closed')
})
