import { createServer, type Server, type Socket } from 'node:net'
import { fdCode, fdExhausted, type FdBudget } from '../observe/fd-check.js'
import type { Evidence } from '../observe/types.js'
import { canonicalIp } from '../policy/cidr.js'
import { KeyCounts } from '../key-counts.js'
import { keysFor, prefixField, type LimitKeys } from '../policy/limit-key.js'
import type { Snapshot } from '../snapshot-types.js'
import { FrameReader, frame } from './framing.js'
import type { QueryHandler } from './handler.js'
import { WindowedNotice } from './rate-limit.js'

/** Queries one connection may have in flight: past them, no frame is taken from it until one is answered. */
const MAX_PIPELINE = 128
/** The connection warnings name a client at most once per this window (and at most 100 clients per window). */
const NOTICE_WINDOW_MS = 10_000

/**
 * The open DNS-over-TCP connections of each client (its key: the address, or its prefix, as
 * limits.ipv4Prefix and ipv6Prefix say), across all the listeners, and the warnings about
 * connections refused for a limit.
 */
export class TcpClients {
  private readonly open = new KeyCounts()
  private keys: LimitKeys | undefined
  /** A connection refused: its client had dns.tcp.maxConnectionsPerClient open. */
  readonly overLimit: WindowedNotice
  /** A connection refused: the listener had dns.tcp.maxConnections open, none of them idle. */
  readonly atCap: WindowedNotice
  /** A connection refused: the process's open files were within the reserve of its limit, none idle. */
  readonly fdLow: WindowedNotice
  /** An idle connection closed to make room for a new one (the client named: the one closed). */
  readonly shed: WindowedNotice

  /** `fds`: the process's descriptors; none, no reserve is kept (a test's listener). */
  constructor(evidence: Evidence, private readonly getSnapshot: () => Snapshot, readonly fds?: FdBudget) {
    const tcp = (): Snapshot['config']['dns']['tcp'] => getSnapshot().config.dns.tcp
    const warn = (msg: string, setting: string, value: () => number) => new WindowedNotice(NOTICE_WINDOW_MS,
      (key, n, ip) => evidence.warn(msg, { 'client.ip': ip, ...prefixField('clientPrefix', key), refused: n, [setting]: value() }),
      (clients, n) => evidence.warn(msg, { clients, refused: n, [setting]: value() }))
    this.overLimit = warn('dns tcp connection refused: too many from this client',
      'maxConnectionsPerClient', () => tcp().maxConnectionsPerClient)
    this.atCap = warn('dns tcp connection refused: too many open', 'maxConnections', () => tcp().maxConnections)
    this.fdLow = warn('dns tcp connection refused: open files near the limit', 'fdLimit', () => fds!.limit!)
    this.shed = new WindowedNotice(NOTICE_WINDOW_MS,
      (key, n, ip) => evidence.warn('dns tcp connection closed: idle, to make room for a new one', { 'client.ip': ip, ...prefixField('clientPrefix', key), closed: n }),
      (clients, n) => evidence.warn('dns tcp connection closed: idle, to make room for a new one', { clients, closed: n }))
  }

  /** The key the connections of the address `ip` are counted under, by the config in force. */
  keyOf(ip: string): string {
    this.keys = keysFor(this.keys, this.getSnapshot().config.limits)
    return this.keys.key(ip)
  }

  /** Count a connection of the client `key`, unless it has `max` open already. */
  add(key: string, max: number): boolean {
    return this.open.add(key, max)
  }

  /** A connection `add` counted has closed: `key` is the one it was counted under, whatever a reload changed since. */
  remove(key: string): void {
    this.open.remove(key)
  }
}

/**
 * DNS over TCP (RFC 7766): frames reassembled across reads, several queries per connection
 * answered as each completes (at most MAX_PIPELINE at once, and none taken while the client
 * does not read its answers), an idle timeout (never while queries are in flight), a deadline
 * for each message (the idle timeout again, from its first octet: a message dripped in is cut
 * off, however often octets come) and caps on connections, overall and per client. A client
 * outside dns.allowClients is refused at accept (reset), as is one over its connection cap. A
 * new connection past the listener's cap, or while the process's open files are within the
 * reserve of its limit (FdBudget), closes the connection idle longest (no query in flight, no
 * part of a message received: RFC 7766 §6.2.3) and takes its place; with none idle it is
 * refused. A client that closes its side first still gets the answers to the queries it sent:
 * the connection is ended after the last one.
 */
export class TcpListener {
  readonly server: Server
  /** The open connections, each with when it was last busy (a count of events, not a time) and whether it is idle now. */
  private readonly sockets = new Map<Socket, { last: number, readonly ip: string, idle: () => boolean }>()
  private ticks = 0

  constructor(
    private readonly handler: QueryHandler,
    private readonly getSnapshot: () => Snapshot,
    private readonly evidence: Evidence,
    private readonly clients: TcpClients,
  ) {
    // half-open: a client may send its queries and then close its side (FIN); its answers still go
    // out, and the connection is ended once the last is written
    this.server = createServer({ allowHalfOpen: true }, s => this.accept(s))
    this.server.on('error', e => {
      // an accept without a descriptor (libuv closes what it could not hand over): counted and said once per 10 s
      if (fdExhausted(e)) evidence.counters.fdExhausted('listener', fdCode(e))
      else evidence.warn('dns tcp listener error', { error: e.message })
    })
  }

  /**
   * Make room for a connection past the cap or the descriptors' reserve: close the one idle
   * longest (counted, `shed`, and said) and return true; false when none is idle.
   */
  private shedIdle(): boolean {
    let oldest: Socket | undefined
    let last = Infinity
    let ip = ''
    for (const [s, c] of this.sockets) {
      if (c.last < last && c.idle()) {
        oldest = s
        last = c.last
        ip = c.ip
      }
    }
    if (!oldest) return false
    this.sockets.delete(oldest)                      // its place is taken now; its 'close' comes later
    oldest.destroy()
    this.evidence.counters.dropped('shed')
    this.clients.shed.note(this.clients.keyOf(ip), performance.now(), ip)
    return true
  }

  private accept(socket: Socket): void {
    socket.on('error', () => { /* resets are normal; 'close' follows */ })
    const raw = socket.remoteAddress
    /* c8 ignore next 4 - a race (a reset between the accept and here): no client to name */
    if (raw === undefined) {
      socket.destroy()
      return
    }
    const ip = canonicalIp(raw)                          // a link-local client without its zone, as the proxy and UDP name it
    const tcp = this.getSnapshot().config.dns.tcp
    const counters = this.evidence.counters
    if (!this.handler.admit(ip)) {
      socket.resetAndDestroy()
      return
    }
    // a resolver in front (dns.trustEdnsFrom) speaks for many machines: not held to one client's cap
    const key = this.handler.trusts(ip) ? undefined : this.clients.keyOf(ip)
    if (key !== undefined && !this.clients.add(key, tcp.maxConnectionsPerClient)) {
      counters.dropped('overload')
      this.clients.overLimit.note(key, performance.now(), ip)
      socket.resetAndDestroy()
      return
    }
    // past the cap, or near the descriptors' limit: an idle connection makes room, or this one is refused
    const fds = this.clients.fds
    const full = this.sockets.size >= tcp.maxConnections
    if ((full || fds?.low()) && !this.shedIdle()) {
      if (key !== undefined) this.clients.remove(key)
      counters.dropped('overload')
      ;(full ? this.clients.atCap : this.clients.fdLow).note(ip, performance.now())
      socket.destroy()
      return
    }
    fds?.opened()
    counters.connections('dns-tcp', 1)
    socket.setNoDelay(true)
    const client = { ip, port: socket.remotePort!, transport: 'tcp' as const }
    const reader = new FrameReader()
    let inFlight = 0
    const conn = { last: ++this.ticks, ip, idle: () => inFlight === 0 && reader.buffered === 0 }
    this.sockets.set(socket, conn)
    // the deadline of the message being received, and which one it is (the frame count when it began)
    let deadline: NodeJS.Timeout | undefined
    let deadlineOf = -1
    const watchMessage = (): void => {
      if (reader.buffered === 0) {
        clearTimeout(deadline)
        deadline = undefined
      } else if (!deadline || deadlineOf !== reader.frames) {
        clearTimeout(deadline)
        deadlineOf = reader.frames
        deadline = setTimeout(() => socket.destroy(), tcp.idleTimeout)
      }
    }
    socket.setTimeout(tcp.idleTimeout, () => { if (inFlight === 0) socket.destroy() })
    socket.on('close', () => {
      clearTimeout(deadline)
      this.sockets.delete(socket)
      fds?.closed()
      if (key !== undefined) this.clients.remove(key)
      counters.connections('dns-tcp', -1)
    })
    // Frames are taken one query at a time while fewer than MAX_PIPELINE are in flight and the
    // answers are being read; past that, the rest of the read waits in the reader, and the socket
    // is paused, until an answer goes out or the client reads what was written ('drain').
    let paused = false
    let taking = false
    let ended = false                                // the client sent its FIN: no query will follow
    const finishIfDone = (): void => {
      if (ended && inFlight === 0 && !paused && !socket.destroyed) socket.end()
    }
    const canTake = (): boolean => inFlight < MAX_PIPELINE && !socket.writableNeedDrain
    const take = (): void => {
      if (taking) return                             // an answer given at once, from within the loop below
      taking = true
      while (canTake()) {
        const msg = reader.next()
        if (!msg) break
        inFlight++
        this.handler.handle(msg, client, answer)
      }
      taking = false
      const stop = !canTake()
      if (stop !== paused) {
        paused = stop
        if (stop) socket.pause()
        else socket.resume()
      }
      watchMessage()
      finishIfDone()
    }
    const answer = (reply: Buffer | undefined): void => {
      inFlight--
      conn.last = ++this.ticks
      if (socket.destroyed) return
      if (reply) socket.write(frame(reply))
      if (paused) take()
      else finishIfDone()
    }
    socket.on('drain', () => { if (paused) take() })
    socket.on('end', () => {
      ended = true
      finishIfDone()
    })
    socket.on('data', chunk => {
      conn.last = ++this.ticks
      reader.feed(chunk)
      take()
    })
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(e)
      this.server.once('error', onError)
      this.server.listen({ host, port, ipv6Only: host.includes(':'), exclusive: true }, () => {
        this.server.off('error', onError)
        resolve((this.server.address() as { port: number }).port)
      })
    })
  }

  /** Stop accepting connections (those open stay until `destroyAll`). */
  stopAccepting(): Promise<void> {
    return new Promise(resolve => this.server.close(() => resolve()))
  }

  destroyAll(): void {
    for (const s of this.sockets.keys()) s.destroy()
  }
}
