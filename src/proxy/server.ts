import { createServer as createHttpServer, type IncomingMessage } from 'node:http'
import type { Server, Socket } from 'node:net'
import { networkInterfaces } from 'node:os'
import { CATEGORY } from '../observe/ecs.js'
import type { FdBudget } from '../observe/fd-check.js'
import type { Evidence } from '../observe/types.js'
import { LiveSet } from '../live-set.js'
import type { Snapshot } from '../snapshot-types.js'
import { DestinationGuard, type SelfAddress } from './address.js'
import { Admission } from './admission.js'
import { MAX_HEADER_FIELDS } from './connect-head.js'
import { beginRequest, closeFigures, settleRequest } from './close-line.js'
import { handleConnect, type ConnectRequest } from './connect.js'
import type { Conn, ProxyCtx, Resolve } from './context.js'
import { frontDoor, type FrontDoor, type HttpConn } from './front-door.js'
import { handleRequest } from './http-forward.js'
import { boundAddresses, listenOn } from './listen.js'
import { IDLE_UPSTREAM_MS, MAX_IDLE_UPSTREAMS, PoolAgent } from './pool-agent.js'
import { lingerClose } from './linger.js'
import { acceptProxyHeader } from './proxy-header-reader.js'
import { socketField } from './socket-field.js'
import { rawResponse } from './responses.js'
import { Tunnels, type Redecided } from './tunnels.js'

export type { Resolve } from './context.js'
export { MAX_IDLE_UPSTREAMS } from './pool-agent.js'

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

/**
 * Pipelined requests waiting on one connection before reading from it stops. Node parses a whole
 * read (up to 64 KiB) at once, so a client can have more waiting, but only that much more.
 */
export const MAX_WAITING = 32

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
  const http = createHttpServer({
    maxHeaderSize: cfg.maxHeaderBytes,
    headersTimeout: cfg.headerTimeout,
    requestTimeout: 0,
    connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(cfg.headerTimeout / 4))),
  })
  http.timeout = cfg.idleTimeout                     // idle client sockets (node destroys them unless a request is in flight)
  // …and between requests (node's default: 5 s); node adds 1 s before it closes, and says the
  // value in each answer's Keep-Alive (timeout=N, in whole seconds)
  http.keepAliveTimeout = cfg.keepAliveTimeout
  http.maxHeadersCount = MAX_HEADER_FIELDS + 1       // one more than allowed, so that a head over the limit shows (see tooManyFields)
  // Sockets come from our own listeners (emit 'connection'); 'listening' starts node's header-timeout checks.
  http.emit('listening')
  let ctx: ProxyCtx
  /* c8 ignore start - defensive: the handlers catch their own errors */
  const fail = (conn: Conn, e: unknown) => {
    evidence.error('proxy.internal', { 'error.message': (e as Error).message, 'client.ip': conn.client.ip })
    conn.socket.destroy()
  }
  /* c8 ignore stop - end of the defensive handler */
  /** A head with more fields than allowed is refused (431) on whichever path it came, never cut short. */
  const tooManyFields = (conn: Conn, req: IncomingMessage): boolean => {
    if (req.rawHeaders.length <= 2 * MAX_HEADER_FIELDS) return false
    beginRequest(conn)
    // what of its body node parses before refuseHead takes the parser off is dropped: unread, it
    // would pause the socket (node's backpressure), and the rest could not be read and dropped
    req.resume()
    refuseHead(conn, 431, `more than ${MAX_HEADER_FIELDS} header fields`)
    return true
  }
  /**
   * Pipelined requests are served one at a time: the next is handled (resolved, dialled) once the
   * response before it is finished, so that a connection has at most one outbound request, and a
   * connection that goes away leaves none behind (node never closes the responses still queued).
   * While MAX_WAITING wait, reading from the client stops.
   */
  http.on('request', (req: IncomingMessage, res) => {
    const conn = conns.get(req.socket as Socket)!
    // read after this side was ended (parsed from the same read as a head refused before it, whose
    // connection is closing in stages: lingerClose): nobody is left to answer it, and it is neither
    // decided nor sent on; the connection closes as it was closing
    if (!conn.socket.writable) return
    const start = () => {
      if (tooManyFields(conn, req)) return
      handleRequest(ctx, conn, req, res).catch(e => fail(conn, e))
    }
    res.once('close', () => answered(conn))
    // answered before its body was all read (a refusal: node's server reads the rest and drops it)
    res.once('finish', () => { if (!req.complete) conn.unread = req })
    // An upgrade offer (no 'upgrade' listener: node serves it as a plain request, and
    // forwardHeaders drops Upgrade and the Connection tokens) is optional: it is forwarded
    // without it and never switched. Node's parser drops bytes read after such a head, so the
    // connection closes after the answer: a request pipelined behind it is the client's to resend.
    if (req.headers.upgrade !== undefined) res.shouldKeepAlive = false
    if (conn.answering++ === 0) return start()
    conn.waiting.push(start)
    if (conn.waiting.length >= MAX_WAITING && !conn.held) {
      conn.held = true
      conn.socket.pause()
    }
  })
  const answered = (conn: HttpConn) => {
    conn.answering--
    if (!conn.socket.writable) {                     // the client is gone, or its last response is sent: nothing waiting is served
      conn.waiting.length = 0
      return
    }
    const next = conn.waiting.shift()
    if (conn.held && conn.waiting.length < MAX_WAITING) {
      conn.held = false
      conn.socket.resume()
    }
    if (next) return next()
    if (conn.answering === 0 && conn.onAnswered) {
      const then = conn.onAnswered
      conn.onAnswered = undefined
      then()
    }
  }
  // Expect: 100-continue: node would answer 100 at once, and the client would send its body even
  // when the origin (or the proxy) refuses the request. Served as any request instead: the
  // origin's own 100 is forwarded (http-forward), and a final answer without one closes the
  // connection (node's server), so a body never sent is never read as the next request.
  http.on('checkContinue', (req: IncomingMessage, res) => http.emit('request', req, res))
  // An Expect other than 100-continue: node answers 417 without a 'request'; it still completes a head.
  http.on('checkExpectation', (req: IncomingMessage, res) => {
    const conn = conns.get(req.socket as Socket)!
    beginRequest(conn)
    conn.close['http.response.status_code'] = 417
    res.writeHead(417).end()
  })
  const connect = (conn: Conn, req: ConnectRequest, head: Buffer) => {
    const socket = conn.socket
    // node's own idle handling stops at CONNECT: an idle tunnel is closed here
    socket.on('timeout', () => {
      conn.close['error.message'] ??= 'idle timeout'
      socket.destroy()
    })
    socket.setTimeout(opts.getSnapshot().config.proxy.idleTimeout)
    handleConnect(ctx, conn, req, socket, head).catch(e => fail(conn, e))
  }
  http.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const conn = conns.get(socket)!
    if (conn.held) {                                // nothing is parsed after a CONNECT: the tunnel reads the socket
      conn.held = false
      // our pause stopped the handle while node's parser consumed it; the stream still counts
      // that read as pending, so no resume() would start it again (node's onSocketResume does this)
      const h = (socket as unknown as { _handle: { reading: boolean; readStart(): void } | null })._handle
      if (h) {
        h.reading = true
        h.readStart()
      }
    }
    if (tooManyFields(conn, req)) return
    // a CONNECT pipelined after requests still being answered: its 200 (or refusal) must follow their responses
    if (conn.answering > 0) conn.onAnswered = () => connect(conn, req, head)
    else connect(conn, req, head)
  })
  http.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const conn = conns.get(socket)!
    conn.poisoned = true
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent: boolean } })._httpMessage
    // a reset, an answer under way, or a body cut short after its answer (curl stops
    // sending at a refusal, and closes): nothing to answer, and the close line keeps the status sent
    if (err.code === 'ECONNRESET' || inFlight?.headersSent || conn.unread?.complete === false) return socket.destroy()
    // closing already, in stages (lingerClose took the parser off, in the middle of a read it still
    // finishes), or after an answer that ends it (node destroys it once that is sent): not answered
    if (!socket.writable) return
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
    refuseHead(conn, status, `${err.code}: ${err.message}`)
  })
  const refuseHead = (conn: Conn, status: number, why: string) => {
    evidence.counters.dropped('malformed')
    settleRequest(conn)                              // a request answered before it on the connection keeps its answer
    conn.close['error.message'] = why
    conn.close['http.response.status_code'] = status
    conn.close['event.outcome'] = undefined          // refused: nothing was forwarded
    conn.socket.write(rawResponse(status, status === 408 ? 'request headers not received in time' : status === 431 ? 'request headers too large' : 'malformed request'))
    // the rest of the head, and a body, may be on the way (a client that writes it all before it
    // reads): closed in stages, node's parser taken off first (it would fail on them), or the reset
    // that closing with bytes unread makes could take the answer with it
    lingerClose(conn.socket)
  }

  const door: FrontDoor = { settings: cfg, clock, http, connect, refuseHead }

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
    http.close()
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
          'tunnelguard.took_ms': Math.round(did.tookMs * 10) / 10,
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
      http.close()
      await Promise.all([closed, ...lines])
    },
  }
}
