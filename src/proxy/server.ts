import type { Server, Socket } from 'node:net'
import { networkInterfaces } from 'node:os'
import { CATEGORY } from '../observe/ecs.js'
import type { FdBudget } from '../observe/fd-check.js'
import type { Evidence } from '../observe/types.js'
import { LiveSet } from '../live-set.js'
import type { Snapshot } from '../snapshot-types.js'
import { DestinationGuard, type SelfAddress } from './address.js'
import { Admission } from './admission.js'
import { closeFigures } from './close-line.js'
import type { ProxyCtx, Resolve } from './context.js'
import { frontDoor, type HttpConn } from './front-door.js'
import { httpDoor } from './http-server.js'
import { boundAddresses, listenOn } from './listen.js'
import { IDLE_UPSTREAM_MS, MAX_IDLE_UPSTREAMS, PoolAgent } from './pool-agent.js'
import { acceptProxyHeader } from './proxy-header-reader.js'
import { socketField } from './socket-field.js'
import { Tunnels, type Redecided } from './tunnels.js'

export type { Resolve } from './context.js'

export interface ProxyService {
  readonly addresses: readonly { address: string; port: number }[]
  /** Client connections (those answered 503 at the accept and still closing too) plus outbound sockets in use (idle keep-alive sockets to origins excluded). */
  readonly openConnections: number
  /**
   * Decide every open CONNECT tunnel again with the snapshot getSnapshot now returns (call it
   * after a reload swapped one in): one that now blocks (its names listed, or its client, port or
   * destination no longer allowed) is closed, one that now alerts gets an alert line. Resolves
   * once done (undefined when a later call took over).
   */
  redecide(): Promise<Redecided | undefined>
  close(): Promise<void>
}

export interface ProxyOptions {
  readonly listen: readonly string[]
  readonly getSnapshot: () => Snapshot
  readonly evidence: Evidence
  readonly resolve: Resolve
  readonly clock?: () => bigint
  /** The process's descriptors: a client connection past their reserve gets 503 (none: no reserve kept). */
  readonly fds?: FdBudget
  /** Time allowed to connect to an origin or get a parent's answer to CONNECT (ms, default 10 s). */
  readonly connectTimeout?: number
  /**
   * The other listeners of this process (DNS, sinkhole capture, admin), never dialled, as the
   * proxy's own are not; read at each check, so that listeners started after the proxy count.
   */
  readonly listeners?: () => readonly SelfAddress[]
}

/** The close line's ECS `event.type`: the end of a network connection (its category: CATEGORY). */
const CLOSE_TYPE: readonly string[] = ['connection', 'end']

/** The HTTP forward proxy: one raw listener per proxy.listen address feeding one http.Server. */
export async function startProxy(opts: ProxyOptions): Promise<ProxyService> {
  const cfg = opts.getSnapshot().config.proxy
  const { evidence } = opts
  const clock = opts.clock ?? process.hrtime.bigint
  const clients = new LiveSet<Socket>()
  const outbound = new LiveSet<Socket>()
  const conns = socketField<HttpConn>('tunnelguard.conn')
  const connectTimeout = opts.connectTimeout ?? 10_000
  const agent = new PoolAgent({ keepAlive: true, maxFreeSockets: MAX_IDLE_UPSTREAMS, scheduling: 'lifo', timeout: IDLE_UPSTREAM_MS }, connectTimeout)
  const nowMs = () => Number(clock()) / 1e6
  const admission = new Admission(evidence, opts.getSnapshot, nowMs, opts.fds)
  let seq = 0
  let ctx: ProxyCtx
  const door = httpDoor(cfg, clock, conns, evidence, opts.getSnapshot, () => ctx)

  const onSocket = (socket: Socket) => {
    socket.on('error', () => { /* resets are normal; 'close' follows */ })
    /* c8 ignore next 4 - a race (a reset between the accept and here): proxy-limits.test.ts makes it, but not every time */
    if (socket.remoteAddress === undefined) {        // no client to name: nothing to serve or log
      socket.destroy()
      return
    }
    const admitted = admission.admit(socket, clients.size)
    if (!admitted) return
    const { peer, trusted, key } = admitted
    const conn: HttpConn = { id: ++seq, socket, peer, client: peer, start: clock(), requests: 0, poisoned: false, answering: 0, upstreams: new Set(), close: {}, waiting: [], held: false }
    conns.set(socket, conn)
    const slot = clients.add(socket)
    opts.fds?.opened()
    evidence.counters.connections('proxy', 1)
    socket.on('close', () => {
      for (const up of conn.upstreams) up.destroy()  // requests still waiting for a response nobody will read
      clients.remove(slot, socket)
      opts.fds?.closed()
      admission.release(key)
      evidence.counters.connections('proxy', -1)
      evidence.counters.proxyBytes('up', socket.bytesRead)
      evidence.counters.proxyBytes('down', socket.bytesWritten)
      evidence.info('proxy.close', {
        'client.ip': conn.client.ip, 'client.port': conn.client.port, 'source.ip': peer.ip, 'source.port': peer.port,
        'source.bytes': socket.bytesRead, 'destination.bytes': socket.bytesWritten,
        'event.category': CATEGORY, 'event.type': CLOSE_TYPE,
        'event.duration': Number(clock() - conn.start), 'tunnelguard.requests': conn.requests, ...conn.close, ...closeFigures(conn),
      })
    })
    if (!trusted) {
      frontDoor(conn, door)
      return
    }
    acceptProxyHeader(socket, cfg.headerTimeout).then(r => {
      if (!r.ok) {
        conn.close['error.message'] = r.reason
        evidence.counters.dropped('malformed')
        socket.destroy()
        return
      }
      if (r.source) conn.client = r.source
      frontDoor(conn, door)                           // the unshifted bytes come first
    })
  }

  const servers: Server[] = []
  try {
    for (const l of opts.listen) servers.push(await listenOn(l, onSocket, evidence, 'proxy'))
  } catch (e) {
    for (const s of servers) s.close()
    door.http.close()
    throw e
  }
  const addresses = boundAddresses(servers)
  const local = Object.values(networkInterfaces()).flat().map(i => i!.address)
  const guard = new DestinationGuard(addresses, local, opts.listeners)
  const tunnels = new Tunnels(opts.getSnapshot, { check: (ip, port, allow, name) => guard.check(ip, port, allow, name) })
  ctx = {
    getSnapshot: opts.getSnapshot, evidence, resolve: opts.resolve, clock, agent, tunnels, guard,
    connectTimeout,
    track: s => {
      const slot = outbound.add(s)
      s.once('close', () => outbound.remove(slot, s))
    },
  }
  evidence.info('proxy.listening', { addresses })
  return {
    addresses,
    get openConnections() {
      return clients.size + admission.refused.size + outbound.size + Object.values(agent.sockets).reduce((n, l) => n + l!.length, 0)
    },
    async redecide() {
      const did = await tunnels.redecide()
      // one line per reload that found tunnels open: what it did to them
      if (did && did.tunnels > 0) {
        evidence.info('proxy.redecided', {
          'tunnelguard.tunnels': did.tunnels, 'tunnelguard.closed': did.closed, 'tunnelguard.alerted': did.alerted,
          'tunnelguard.took_ms': Math.round(did.tookMs),     // whole ms, as the reloaded line's: one type in an index
        })
      }
      return did
    },
    async close() {
      const closed = Promise.all(servers.map(s => new Promise<void>(r => {
        s.close(() => r())
      })))
      // each client connection's close line is written before close() returns (and `stopped` is logged)
      const open = clients.values()
      const lines = open.map(s => new Promise<void>(r => { s.once('close', () => r()) }))
      for (const s of open) s.destroy()
      for (const s of admission.refused.values()) s.destroy()   // answered 503, closing in stages
      for (const s of outbound.values()) s.destroy()
      agent.destroy()
      door.http.close()
      await Promise.all([closed, ...lines])
    },
  }
}
