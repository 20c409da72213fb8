import { connect, type Socket } from 'node:net'
import { connect as tlsConnect, type PeerCertificate, type SecureContext } from 'node:tls'
import { AppError } from '../errors.js'
import { fdCode, fdExhausted, localExhausted } from '../observe/fd-check.js'
import type { Counters } from '../observe/types.js'
import { FrameReader, frame } from './framing.js'
import { PendingTable, type ReplyCallback } from './pending.js'

interface Conn { readonly socket: Socket; readonly table: PendingTable }

/** DNS over TLS (RFC 7858): how the connection is made secure. */
export interface TlsDial {
  /** The name the certificate must carry, sent as SNI; none: the certificate must carry the IP. */
  readonly servername?: string
  /** The CAs trusted (Node's and a private one); none: Node's default CAs. */
  readonly secureContext?: SecureContext
  /** In place of Node's check of `servername` (or the IP): a server name that is an IP, sent as no SNI. */
  readonly checkServerIdentity?: (host: string, cert: PeerCertificate) => Error | undefined
  /** An error of a connection (a handshake or certificate error, a reset): its queries fail over. */
  readonly onError: (e: Error) => void
}

/** An error of a connection given up for time (code ETIMEDOUT, as the line that logs it says). */
function timedOut(message: string): Error {
  return Object.assign(new Error(message), { code: 'ETIMEDOUT' })
}

/**
 * One upstream over TCP, or over TLS when `tls` is given: a persistent connection opened on
 * demand, queries pipelined on it (RFC 7766), answers taken in whatever order they come. Closed
 * after `idleMs` without queries. When the upstream closes a connection that was open (its own
 * idle timeout, a limit on queries per connection), the queries left unanswered on it are sent
 * again on a new one, within what is left of their budget (RFC 7766 §6.2.1): once each, or for
 * as long as each connection answers something before it closes. A connection that never opened
 * (refused, a TLS handshake or certificate that failed, or not open within the budget of the
 * query that opened it) fails its queries at once. Over TLS, the session ticket of the last
 * connection resumes the next one.
 */
export class TcpTransport {
  private conn: Conn | undefined
  private closed = false
  private session: Buffer | undefined

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly counters: Counters,
    private readonly idleMs = 10_000,
    private readonly tls?: TlsDial,
    /** An error of a plain TCP connection (refused, reset, stuck): its queries fail over. */
    private readonly onError?: (e: Error) => void,
  ) {}

  get pending(): number {
    return this.conn?.table.size ?? 0
  }

  private dial(): Socket {
    const tls = this.tls
    if (tls === undefined) return connect({ host: this.host, port: this.port, noDelay: true })
    // rejectUnauthorized is never passed: Node's default (true) verifies the certificate; an
    // option given as undefined would replace Node's default, so only those set are passed
    const socket = tlsConnect({
      host: this.host, port: this.port, session: this.session,
      ...tls.servername !== undefined && { servername: tls.servername },
      ...tls.secureContext !== undefined && { secureContext: tls.secureContext },
      ...tls.checkServerIdentity !== undefined && { checkServerIdentity: tls.checkServerIdentity },
    })
    socket.setNoDelay(true)
    socket.on('session', (s: Buffer) => { this.session = s })
    return socket
  }

  private open(openMs: number): Conn {
    const reader = new FrameReader()
    let takenAt = performance.now()
    const kind = this.tls ? 'TLS' : 'TCP'
    // a query timed out on a connection that answered nothing in all that time, or that is stuck
    // inside a frame (a length sent and the rest not, which would swallow every later answer):
    // closed, its other queries sent again on a new one, not left to fail one by one
    const table = new PendingTable(undefined, ms => {
      if (reader.buffered > 0) socket.destroy(timedOut(`${kind} connection stuck in a frame: ${reader.buffered} octets of one not finished within ${Math.round(ms)} ms`))
      else if (performance.now() - takenAt >= ms) socket.destroy(timedOut(`${kind} connection answered nothing within ${Math.round(ms)} ms`))
    })
    const socket = this.dial()
    const conn = { socket, table }
    let opened = false
    let answered = false
    let error: Error | undefined
    // a connection not open (TLS: its handshake done) when the query that opened it times out is
    // given up: the queries waiting on it fail over, the next query opens a new one
    const opening = setTimeout(() => {
      socket.destroy(timedOut(`${kind} connection not open within ${Math.round(openMs)} ms`))
    }, openMs)
    socket.once(this.tls ? 'secureConnect' : 'connect', () => {
      opened = true
      clearTimeout(opening)
    })
    socket.setTimeout(this.idleMs, () => { if (table.size === 0) socket.destroy() })
    socket.on('data', chunk => reader.push(chunk, msg => {
      if (table.take(msg)) {
        answered = true
        takenAt = performance.now()
      } else this.counters.dropped('mismatch')
    }))
    // reported as the close that follows; no descriptor for the connection is counted too, and a
    // failure of this host (no descriptor, no buffer) fails the queries as its own, not sent again
    let local = false
    socket.on('error', e => {
      error = e
      if (fdExhausted(e)) this.counters.fdExhausted('dns-upstream', fdCode(e))
      if (localExhausted(e)) local = true
      if (this.tls) this.tls.onError(e)
      else this.onError?.(e)
    })
    socket.on('close', () => {
      clearTimeout(opening)
      if (this.conn === conn) this.conn = undefined
      if (!opened) this.session = undefined          // resumed or not, that handshake failed: the next one is a full one
      const why = `${kind} connection to ${this.host}:${this.port} closed${error ? `: ${error.message}` : ''}`
      for (const p of table.takeAll()) {
        // its budget spent (the close was seen late): it has timed out, and is not sent again
        if (local) p.cb(new AppError('LOCAL_EXHAUSTED', why))
        else if (p.remainingMs < 1) p.cb(new AppError('UPSTREAM_TIMEOUT', `no answer within its budget; ${why}`))
        else if (!opened || (!answered && p.resent) || !this.sendOn(p.query, p.qEnd, p.remainingMs, p.cb, true)) p.cb(new AppError('UPSTREAM_FAILED', why))
      }
    })
    return conn
  }

  send(query: Buffer, qEnd: number, timeoutMs: number, cb: ReplyCallback): boolean {
    return this.sendOn(query, qEnd, timeoutMs, cb, false)
  }

  private sendOn(query: Buffer, qEnd: number, timeoutMs: number, cb: ReplyCallback, resent: boolean): boolean {
    if (this.closed) return false
    const conn = this.conn ?? (this.conn = this.open(timeoutMs))   // unset by 'close'; a query racing a dying socket fails over
    /* c8 ignore next - all 65,536 IDs pending on one connection; PendingTable's own test covers the refusal */
    if (!conn.table.add(query, qEnd, timeoutMs, cb, false, resent)) return false
    conn.socket.write(frame(query))
    return true
  }

  close(): void {
    this.closed = true
    this.conn?.socket.destroy()
    this.conn = undefined
  }
}
