import { Agent, createServer as createHttpServer, type ClientRequest, type IncomingMessage } from 'node:http'
import { createServer, type Server, type Socket } from 'node:net'
import { networkInterfaces } from 'node:os'
import { splitHostPort } from '../config/schema.js'
import type { Evidence } from '../observe/types.js'
import { WindowedNotice } from '../dns/rate-limit.js'
import { canonicalIp } from '../policy/cidr.js'
import type { Snapshot } from '../snapshot-types.js'
import { DestinationGuard, type SelfAddress } from './address.js'
import { MAX_HEADER_FIELDS, parseConnectHead } from './connect-head.js'
import { handleConnect, type ConnectRequest } from './connect.js'
import { setsOf, type Conn, type ProxyCtx, type Resolve } from './context.js'
import { handleRequest } from './http-forward.js'
import { acceptProxyHeader } from './proxy-header-reader.js'
import { rawResponse } from './responses.js'

export type { Resolve } from './context.js'

export interface ProxyService {
  readonly addresses: readonly { address: string; port: number }[]
  /** Client connections plus outbound sockets in use (idle keep-alive sockets to origins excluded). */
  readonly openConnections: number
  close(): Promise<void>
}

export interface ProxyOptions {
  readonly listen: readonly string[]
  readonly getSnapshot: () => Snapshot
  readonly evidence: Evidence
  readonly resolve: Resolve
  readonly clock?: () => bigint
  /** Time allowed to connect to an origin or get a parent's answer to CONNECT (ms, default 10 s). */
  readonly connectTimeout?: number
  /**
   * The other listeners of this process (DNS, sinkhole capture, admin), never dialled, as the
   * proxy's own are not; read at each check, so that listeners started after the proxy count.
   */
  readonly listeners?: () => readonly SelfAddress[]
}

/** A plain-HTTP client connection's pipeline: requests waiting for the response before them. */
interface HttpConn extends Conn {
  readonly waiting: (() => void)[]
  /** Reading from the client is stopped while MAX_WAITING requests wait. */
  held: boolean
}

/**
 * Pipelined requests waiting on one connection before reading from it stops. Node parses a whole
 * read (up to 64 KiB) at once, so a client can have more waiting, but only that much more.
 */
export const MAX_WAITING = 32
/** Idle keep-alive connections to origins (or a parent) kept for reuse, all hosts together; the least recently used goes first. */
export const MAX_IDLE_UPSTREAMS = 256
/** One line per window (with the count) for connections refused at the accept. */
const NOTICE_WINDOW_MS = 10_000

/**
 * node's keep-alive agent, with its idle sockets capped in total: node caps them per host only
 * (maxFreeSockets), so that an origin that never closes them, on many ports, could take every
 * descriptor the process has.
 */
class PoolAgent extends Agent {
  readonly #idle = new Set<Socket>()
  readonly #seen = new WeakSet<Socket>()

  override keepSocketAlive(socket: Socket): boolean {
    if (!(super.keepSocketAlive(socket) as unknown as boolean)) return false   // typed void; node returns whether to keep it
    if (!this.#seen.has(socket)) {
      this.#seen.add(socket)
      socket.once('close', () => this.#idle.delete(socket))
    }
    this.#idle.add(socket)
    if (this.#idle.size > MAX_IDLE_UPSTREAMS) {       // the oldest: this one is the newest
      const old = this.#idle.values().next().value!
      this.#idle.delete(old)
      old.destroy()
    }
    return true
  }

  override reuseSocket(socket: Socket, req: ClientRequest): void {
    this.#idle.delete(socket)
    super.reuseSocket(socket, req)
  }
}

/**
 * Listen on `addr` ("host:port", port 0 for any) with a raw TCP server. Accepted sockets have
 * TCP_NODELAY: a relayed small write goes out at once instead of waiting, under Nagle's
 * algorithm, for the client's delayed ACK of the one before (about 40 ms on Linux).
 */
export function listenOn(addr: string, onSocket: (s: Socket) => void, evidence: Evidence, what: string): Promise<Server> {
  const hp = splitHostPort(addr)
  if (!hp) return Promise.reject(new Error(`${what}: bad listen address ${addr}`))
  const srv = createServer({ allowHalfOpen: true, noDelay: true }, onSocket)
  return new Promise((resolve, reject) => {
    srv.once('error', reject)
    srv.listen(hp.port, hp.host, () => {
      srv.off('error', reject)
      srv.on('error', e => evidence.error(`${what}.listener`, { 'error.message': e.message }))
      resolve(srv)
    })
  })
}

export function boundAddresses(servers: readonly Server[]): SelfAddress[] {
  return servers.map(s => {
    const a = s.address() as { address: string; port: number }
    return { address: a.address, port: a.port }
  })
}

/** The HTTP forward proxy: one raw listener per proxy.listen address feeding one http.Server. */
export async function startProxy(opts: ProxyOptions): Promise<ProxyService> {
  const cfg = opts.getSnapshot().config.proxy
  const { evidence } = opts
  const clock = opts.clock ?? process.hrtime.bigint
  const clients = new Set<Socket>()
  const outbound = new Set<Socket>()
  const conns = new WeakMap<Socket, HttpConn>()
  const perAddress = new Map<string, number>()
  const agent = new PoolAgent({ keepAlive: true, maxFreeSockets: MAX_IDLE_UPSTREAMS, scheduling: 'lifo' })
  const nowMs = () => Number(clock()) / 1e6
  // over proxy.maxConnections: one line per window for all clients, naming the last one
  let overloaded = { ip: '', limit: 0 }
  /* c8 ignore next - never called: this notice has one key (''), so it never has others to sum */
  const none = (): void => {}
  const overload = new WindowedNotice(NOTICE_WINDOW_MS, (_all, n) => {
    evidence.warn('proxy.overload', { 'client.ip': overloaded.ip, 'tunnelguard.max_connections': overloaded.limit, 'tunnelguard.refused': n })
  }, none)
  // past the addresses one window names (a flood from many sources): one line sums the rest
  const others = (message: string) => (clients: number, n: number): void => {
    evidence.warn(message, { 'tunnelguard.other_clients': clients, 'tunnelguard.refused': n })
  }
  const overloadByAddress = new WindowedNotice(NOTICE_WINDOW_MS, (ip, n) => {
    evidence.warn('proxy.overload', { 'client.ip': ip, 'tunnelguard.max_connections_per_address': opts.getSnapshot().config.proxy.maxConnectionsPerAddress, 'tunnelguard.refused': n })
  }, others('proxy.overload'))
  const denied = new WindowedNotice(NOTICE_WINDOW_MS, (ip, n) => {
    evidence.warn('proxy.client_denied', { 'client.ip': ip, 'tunnelguard.refused': n, 'error.message': 'not in proxy.allowClients or proxy.trustForwardedFrom: closed at the accept' })
  }, others('proxy.client_denied'))
  let seq = 0
  const http = createHttpServer({
    maxHeaderSize: cfg.maxHeaderBytes,
    headersTimeout: cfg.headerTimeout,
    requestTimeout: 0,
    connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(cfg.headerTimeout / 4))),
  })
  http.timeout = cfg.idleTimeout                     // idle client sockets (node destroys them unless a request is in flight)
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
    conn.requests++
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
    const start = () => {
      if (tooManyFields(conn, req)) return
      handleRequest(ctx, conn, req, res).catch(e => fail(conn, e))
    }
    res.once('close', () => answered(conn))
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
  // An Expect other than 100-continue: node answers 417 without a 'request'; it still completes a head.
  http.on('checkExpectation', (req: IncomingMessage, res) => {
    conns.get(req.socket as Socket)!.requests++
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
  http.on('upgrade', (_req: IncomingMessage, socket: Socket) => {
    conns.get(socket)!.requests++                   // a request head, answered: the header deadline is met
    socket.end(rawResponse(501, 'protocol upgrades are not proxied'))
  })
  http.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const conn = conns.get(socket)!
    conn.poisoned = true
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent: boolean } })._httpMessage
    if (!socket.writable || err.code === 'ECONNRESET' || inFlight?.headersSent) return socket.destroy()
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
    refuseHead(conn, status, `${err.code}: ${err.message}`)
  })
  const refuseHead = (conn: Conn, status: number, why: string) => {
    evidence.counters.dropped('malformed')
    conn.close['error.message'] = why
    conn.close['http.response.status_code'] = status
    conn.socket.write(rawResponse(status, status === 408 ? 'request headers not received in time' : status === 431 ? 'request headers too large' : 'malformed request'))
    conn.socket.destroySoon()
  }

  /**
   * The front door of a client connection. The first bytes are read here: the plainest CONNECT
   * head (parseConnectHead) goes straight to the CONNECT handler, which saves node's http
   * machinery per tunnel; anything else is given back and handed to the http server, which
   * parses and answers it as before. The header deadline runs from the accept until a first
   * request head is complete, whichever path parses it (for a trusted peer, the time spent on
   * its PROXY header counts too). Until the first byte the connection is idle: when
   * proxy.idleTimeout is the shorter, it is closed then without an answer, as node's server
   * closes an idle connection. Header size and time are the values at start, as node's server
   * has them.
   */
  const front = (conn: HttpConn) => {
    const { headerTimeout, idleTimeout, maxHeaderBytes } = cfg
    const socket = conn.socket
    const left = Math.max(0, headerTimeout - Number(clock() - conn.start) / 1e6)
    const idleFirst = idleTimeout > 0 && idleTimeout < left
    const onEnd = () => {                            // a client gone before its first byte, as node's server does
      socket.off('data', onData)
      socket.end()
    }
    const onData = (b: Buffer) => {
      socket.off('data', onData)
      socket.off('end', onEnd)
      socket.pause()
      const h = parseConnectHead(b, maxHeaderBytes)
      if (h) {
        clearTimeout(timer)
        connect(conn, h, b.subarray(h.length))
        return
      }
      if (idleFirst) {                               // no longer idle: the header deadline is what remains
        clearTimeout(timer)
        timer = setTimeout(late, Math.max(0, headerTimeout - Number(clock() - conn.start) / 1e6))
      }
      socket.unshift(b)
      http.emit('connection', socket)
      // node resumes a socket whenever a request body is read or a response ends: while the
      // pipeline is held, every resume is undone (after node's own listener, which starts reading)
      socket.on('resume', () => { if (conn.held) socket.pause() })
      socket.resume()
    }
    const late = () => {
      if (conn.requests === 0 && !socket.destroyed) refuseHead(conn, 408, `no complete request head within proxy.headerTimeout (${headerTimeout} ms)`)
    }
    const idle = () => {
      conn.close['error.message'] = `idle timeout (proxy.idleTimeout ${idleTimeout} ms) before a first byte`
      socket.destroy()
    }
    let timer = setTimeout(idleFirst ? idle : late, idleFirst ? idleTimeout : left)
    socket.once('close', () => clearTimeout(timer))
    socket.once('end', onEnd)
    socket.on('data', onData)
    socket.resume()                                  // paused after a PROXY protocol header
  }

  const refuseOverload = (socket: Socket, why: string) => {
    evidence.counters.dropped('overload')
    socket.write(rawResponse(503, why))
    socket.destroySoon()
  }

  const onSocket = (socket: Socket) => {
    socket.on('error', () => { /* resets are normal; 'close' follows */ })
    /* c8 ignore next 4 - a race (a reset between the accept and here): proxy-limits.test.ts makes it, but not every time */
    if (socket.remoteAddress === undefined) {        // no client to name: nothing to serve or log
      socket.destroy()
      return
    }
    const snap = opts.getSnapshot()
    const { maxConnections, maxConnectionsPerAddress } = snap.config.proxy
    const sets = setsOf(snap)
    const peer = { ip: canonicalIp(socket.remoteAddress!), port: socket.remotePort! }   // a dual-stack listener's IPv4 client as IPv4
    const trusted = sets.trust.has(peer.ip)
    // a peer that is not a client, nor a proxy that may speak for clients, is closed before it costs a slot
    if (!trusted && !sets.allowClients.has(peer.ip)) {
      evidence.counters.dropped('refused')
      denied.note(peer.ip, nowMs())
      socket.destroy()
      return
    }
    if (clients.size >= maxConnections) {
      overloaded = { ip: peer.ip, limit: maxConnections }
      overload.note('', nowMs())
      return refuseOverload(socket, `too many connections (proxy.maxConnections ${maxConnections})`)
    }
    const mine = perAddress.get(peer.ip) ?? 0
    if (!trusted && mine >= maxConnectionsPerAddress) {     // one address cannot take every slot; a trusted proxy speaks for many clients
      overloadByAddress.note(peer.ip, nowMs())
      return refuseOverload(socket, `too many connections from ${peer.ip} (proxy.maxConnectionsPerAddress ${maxConnectionsPerAddress})`)
    }
    const conn: HttpConn = { id: ++seq, socket, peer, client: peer, start: clock(), requests: 0, poisoned: false, answering: 0, upstreams: new Set(), close: {}, waiting: [], held: false }
    conns.set(socket, conn)
    clients.add(socket)
    perAddress.set(peer.ip, mine + 1)
    evidence.counters.connections('proxy', 1)
    socket.on('close', () => {
      for (const up of conn.upstreams) up.destroy()  // requests still waiting for a response nobody will read
      clients.delete(socket)
      const left = perAddress.get(peer.ip)! - 1
      if (left === 0) perAddress.delete(peer.ip)
      else perAddress.set(peer.ip, left)
      evidence.counters.connections('proxy', -1)
      evidence.counters.proxyBytes('up', socket.bytesRead)
      evidence.counters.proxyBytes('down', socket.bytesWritten)
      evidence.info('proxy.close', {
        'client.ip': conn.client.ip, 'client.port': conn.client.port, 'source.ip': peer.ip, 'source.port': peer.port,
        'source.bytes': socket.bytesRead, 'destination.bytes': socket.bytesWritten,
        'event.duration': Number(clock() - conn.start), 'tunnelguard.requests': conn.requests, ...conn.close,
      })
    })
    if (!trusted) {
      front(conn)
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
      front(conn)                                     // the unshifted bytes come first
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
  ctx = {
    getSnapshot: opts.getSnapshot, evidence, resolve: opts.resolve, clock, agent,
    guard: new DestinationGuard(addresses, local, opts.listeners),
    connectTimeout: opts.connectTimeout ?? 10_000,
    track: s => {
      outbound.add(s)
      s.once('close', () => outbound.delete(s))
    },
  }
  evidence.info('proxy.listening', { addresses })
  return {
    addresses,
    get openConnections() {
      return clients.size + outbound.size + Object.values(agent.sockets).reduce((n, l) => n + l!.length, 0)
    },
    async close() {
      const closed = Promise.all(servers.map(s => new Promise<void>(r => {
        s.close(() => r())
      })))
      // each client connection's close line is written before close() returns (and `stopped` is logged)
      const lines = [...clients].map(s => new Promise<void>(r => { s.once('close', () => r()) }))
      for (const s of clients) s.destroy()
      for (const s of outbound) s.destroy()
      agent.destroy()
      http.close()
      await Promise.all([closed, ...lines])
    },
  }
}
