import { createSocket, type Socket } from 'node:dgram'
import { isIP } from 'node:net'
import { localExhausted } from '../observe/fd-check.js'
import type { Counters } from '../observe/types.js'
import { PendingTable, random16, type ReplyCallback } from './pending.js'
import { sendSoon } from './send-batch.js'

/**
 * The socket buffers of every UDP socket of the DNS side, listeners and upstreams. An upstream's
 * answers wait in its receive buffer while the process is busy (a burst, a collection): with the
 * system's default (208 KiB here, a few hundred answers) the kernel dropped answers under a
 * closed-loop load, and each drop left a client without an answer until the timeout.
 */
export const UDP_SOCKET_BUFFER = 4 * 1024 * 1024

/** How an upstream's UDP source ports are drawn and renewed. */
export interface UdpPorts {
  /** Sockets open at a time, each on its own port; each query goes out on one of them at random. */
  readonly sockets: number
  /** A socket takes no more queries after this many ... */
  readonly queriesPerSocket: number
  /** ... or once it is this old (ms): a new socket, on a new port, takes its place. */
  readonly socketLifeMs: number
}

export const UDP_PORTS: UdpPorts = { sockets: 16, queriesPerSocket: 1024, socketLifeMs: 60_000 }

/** One socket of an upstream: connected, on a port the kernel picked, with the queries sent on it. */
interface Outlet {
  readonly socket: Socket
  readonly table: PendingTable
  readonly born: number
  sent: number
  /** Datagrams waiting for the socket's connect() to complete. */
  queue: Buffer[] | undefined
  /** Takes no more queries; closed once those pending are answered or time out. */
  retired: boolean
}

/**
 * One upstream over UDP, with source port randomisation (RFC 5452 §9.2): a few connected sockets
 * (the kernel drops datagrams from anyone but the upstream), each bound by the kernel to a random
 * ephemeral port; each query goes out on one chosen at random, with a fresh random ID, and its
 * reply is taken only on that socket. A socket is replaced by a new one (a new port) after
 * `queriesPerSocket` queries or `socketLifeMs`, so that the set of ports in use keeps changing.
 * An off-path spoofer has to guess the port as well as the ID.
 */
export class UdpTransport {
  private readonly slots: (Outlet | undefined)[]
  private readonly retiring = new Set<Outlet>()
  private closed = false

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly counters: Counters,
    private readonly onError: (e: Error) => void,
    private readonly now: () => number = () => performance.now(),
    private readonly ports: UdpPorts = UDP_PORTS,
    /** What its resends are counted under (Counters.resent): the upstream's URL as the config writes it. */
    private readonly url = `udp://${host}:${port}`,
  ) {
    this.slots = new Array<Outlet | undefined>(ports.sockets).fill(undefined)
  }

  private open(): Outlet {
    const socket = createSocket({
      type: isIP(this.host) === 6 ? 'udp6' : 'udp4', recvBufferSize: UDP_SOCKET_BUFFER, sendBufferSize: UDP_SOCKET_BUFFER,
    })
    const o: Outlet = {
      socket, born: this.now(), sent: 0, queue: [], retired: false,
      // a query unanswered for a while is sent again (RESEND_MIN_MS), and counted; one still
      // waiting for the connect goes out with the queue, once
      table: new PendingTable(() => { if (o.retired) this.shut(o) }, undefined, q => this.resend(o, q)),
    }
    socket.on('error', e => this.broke(o, e))
    socket.on('message', msg => {
      if (!o.table.take(msg) && !o.table.isLate(msg)) this.counters.dropped('mismatch')
    })
    // node hands a failed connect (no route, a broadcast address) to this callback, not to
    // 'error' (its types say it takes nothing): taken for a success, the queued sends went out
    // on an unconnected socket and threw, out of any handler, ending the process
    socket.connect(this.port, this.host, ((err?: Error) => {
      if (err) return this.broke(o, err)
      const q = o.queue!
      o.queue = undefined
      for (const b of q) socket.send(b)
    }) as () => void)
    return o
  }

  private resend(o: Outlet, query: Buffer): void {
    /* c8 ignore next - defensive: a UDP connect() to an address completes on the next tick, a resend comes RESEND_MIN_MS later */
    if (o.queue) return
    o.socket.send(query)
    this.counters.resent(this.url)
  }

  /**
   * A socket error, reported, and the queries pending on the socket failed at once (the next
   * upstream is asked, or SERVFAIL) rather than left to time out. A socket that never connected
   * (no file descriptor for it: EMFILE; no route; a bind or connect that failed) is closed and
   * leaves its slot, so the next query opens another (a broken one kept for its life took its
   * share of queries into timeouts after the cause had gone). On a connected socket the error is
   * the upstream's answer to a datagram (ECONNREFUSED: ICMP port unreachable, nothing listens
   * there) or a send that failed: its queries went the same way; the socket stays. A failure of
   * this host (no descriptor, no buffer: localExhausted) fails them as LOCAL_EXHAUSTED, which is
   * not held against the upstream.
   */
  private broke(o: Outlet, e: Error): void {
    this.onError(e)
    if (o.queue !== undefined) {
      o.queue = undefined
      o.retired = true
      const i = this.slots.indexOf(o)
      if (i >= 0) this.slots[i] = undefined
      this.retiring.delete(o)
      o.socket.close()
    } else if (this.retiring.has(o)) {
      this.shut(o)                                   // retired, and its last queries fail below
    }
    o.table.failAll(`${this.host}:${this.port}: ${e.message}`, localExhausted(e) ? 'LOCAL_EXHAUSTED' : 'UPSTREAM_FAILED')
  }

  private shut(o: Outlet): void {
    this.retiring.delete(o)
    o.socket.close()
  }

  /** Queries waiting for a reply, on every socket. */
  get pending(): number {
    let n = 0
    for (const o of this.slots) n += o?.table.size ?? 0
    for (const o of this.retiring) n += o.table.size
    return n
  }

  /** The local ports of the sockets taking queries (those connected). */
  get localPorts(): number[] {
    const out: number[] = []
    for (const o of this.slots) if (o && !o.queue) out.push(o.socket.address().port)
    return out
  }

  /** Sockets open: those taking queries and those retired with queries still pending. */
  get sockets(): number {
    let n = this.retiring.size
    for (const o of this.slots) if (o) n++
    return n
  }

  /** The receive buffer of a socket taking queries as the kernel reports it (once connected; -1 before). */
  get recvBufferSize(): number {
    for (const o of this.slots) if (o && !o.queue) return o.socket.getRecvBufferSize()
    return -1
  }

  /** Send on a socket chosen at random; `exactCase`: see PendingTable.add. False when it cannot be sent. */
  send(query: Buffer, qEnd: number, timeoutMs: number, cb: ReplyCallback, exactCase = false): boolean {
    if (this.closed) return false
    const i = (random16() * this.slots.length) >>> 16
    let o = this.slots[i]
    if (!o || o.sent >= this.ports.queriesPerSocket || this.now() - o.born >= this.ports.socketLifeMs) {
      if (o) this.retire(o)
      o = this.slots[i] = this.open()
    }
    /* c8 ignore next - all 65,536 IDs pending on one socket; PendingTable's own test covers the refusal */
    if (!o.table.add(query, qEnd, timeoutMs, cb, exactCase)) return false
    o.sent++
    if (o.queue) o.queue.push(query)
    else sendSoon(o.socket, query)                  // with the turn's other datagrams (send-batch.ts)
    return true
  }

  private retire(o: Outlet): void {
    o.retired = true
    if (o.table.size === 0) o.socket.close()
    else this.retiring.add(o)
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    const all = [...this.retiring]
    for (const o of this.slots) if (o) all.push(o)
    this.slots.fill(undefined)
    this.retiring.clear()
    for (const o of all) {
      o.table.failAll('upstream closed')
      o.socket.close()
    }
  }
}
