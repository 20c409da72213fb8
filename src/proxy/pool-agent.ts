import { Agent, type AgentOptions, type ClientRequest, type ClientRequestArgs } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { connected, dialAny } from './upstream.js'

/** Idle keep-alive connections to origins (or a parent) kept for reuse, all hosts together; the least recently used goes first. */
export const MAX_IDLE_UPSTREAMS = 256

/**
 * How long an idle pooled connection is kept (ms): under the shortest keep-alive timeout common
 * origins have (Node's and Apache's 5 s; nginx 75 s), so that the proxy closes it before the
 * origin does, and a request is seldom sent on a connection the origin is closing. An origin's
 * `Keep-Alive: timeout=N` shortens it to N - 1 s (node's agent).
 */
export const IDLE_UPSTREAM_MS = 4000

/**
 * A pooled connection's origin sent bytes while no request was on it: they answer nothing asked
 * (a late answer to a request it misread, bytes smuggled into a body), and node's parser would
 * drop them unread; the connection is closed, so that they can never be read as the answer to
 * the next request on it, which may be another client's.
 */
function closeOnIdleData(this: Socket): void {
  this.destroy()
}

/** The request options the proxy gives: `addresses`, every address of the name (all checked), tried in turn. */
export interface PoolRequestArgs extends ClientRequestArgs {
  readonly addresses?: readonly string[]
}

/**
 * node's keep-alive agent, with its idle sockets capped in total: node caps them per host only
 * (maxFreeSockets), so that an origin that never closes them, on many ports, could take every
 * descriptor the process has. A request naming several `addresses` dials them side by side, each
 * ATTEMPT_DELAY_MS after the one before, until one connects, within `connectTimeout` (dialAny); its pooled connections are kept under all of them (sorted),
 * so one is reused only for a name whose addresses, all checked again, are the same.
 */
export class PoolAgent extends Agent {
  readonly #idle = new Set<Socket>()
  readonly #seen = new WeakSet<Socket>()
  readonly #connectTimeout: number

  constructor(options: AgentOptions, connectTimeout: number) {
    super(options)
    this.#connectTimeout = connectTimeout
  }

  override getName(options?: PoolRequestArgs): string {
    const ips = options?.addresses
    return ips === undefined || ips.length < 2 ? super.getName(options) : `${[...ips].sort().join(',')}:${options!.port}`
  }

  /**
   * The agent's `timeout` (the idle time of a pooled socket, set by keepSocketAlive) is kept off
   * a socket while it connects: node would copy it onto the new socket, and its request would take
   * a connect slower than that for an origin that did not answer. A direct request's addresses
   * are dialled within `connectTimeout` (dialAny); a parent's connect is bounded by the request's
   * own timeout.
   */
  override createConnection(options: PoolRequestArgs, cb: (err: Error | null, s?: Duplex) => void): Duplex | null | undefined {
    const ips = options.addresses
    const opts = { ...options, timeout: undefined }
    if (ips === undefined) return super.createConnection(opts, cb)
    dialAny(ips, this.#connectTimeout, (ip, ms, signal) => connected(super.createConnection({ ...opts, host: ip }) as Socket, `${ip.includes(':') ? `[${ip}]` : ip}:${options.port}`, ms, signal))
      .then(s => cb(null, s), (e: Error) => cb(e))
    return undefined
  }

  /** Close the idle connections kept for these request options (one of them was found closed by the origin: the others are older). */
  dropIdle(options: PoolRequestArgs): void {
    for (const s of this.freeSockets[this.getName(options)] ?? []) s.destroy()
  }

  override keepSocketAlive(socket: Socket): boolean {
    if (!(super.keepSocketAlive(socket) as unknown as boolean)) return false   // typed void; node returns whether to keep it
    if (!this.#seen.has(socket)) {
      this.#seen.add(socket)
      socket.once('close', () => this.#idle.delete(socket))
    }
    this.#idle.add(socket)
    socket.on('data', closeOnIdleData)
    if (this.#idle.size > MAX_IDLE_UPSTREAMS) {       // the oldest: this one is the newest
      const old = this.#idle.values().next().value!
      this.#idle.delete(old)
      old.destroy()
    }
    return true
  }

  override reuseSocket(socket: Socket, req: ClientRequest): void {
    this.#idle.delete(socket)
    socket.off('data', closeOnIdleData)
    super.reuseSocket(socket, req)
  }
}
