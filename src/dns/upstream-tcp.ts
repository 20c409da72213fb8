import { connect, type Socket } from 'node:net'
import { AppError } from '../errors.js'
import { fdExhausted, localExhausted } from '../observe/fd-check.js'
import type { Counters } from '../observe/types.js'
import { FrameReader, frame } from './framing.js'
import { PendingTable, type ReplyCallback } from './pending.js'

interface Conn { readonly socket: Socket; readonly table: PendingTable }

/**
 * One upstream over TCP: a persistent connection opened on demand, queries pipelined on it
 * (RFC 7766), answers taken in whatever order they come. Closed after `idleMs` without queries.
 * When the upstream closes a connection that was open (its own idle timeout, a limit on queries
 * per connection), the queries left unanswered on it are sent again on a new one, within what is
 * left of their budget (RFC 7766 §6.2.1): once each, or for as long as each connection answers
 * something before it closes. A connection that never opened fails its queries at once.
 */
export class TcpTransport {
  private conn: Conn | undefined
  private closed = false

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly counters: Counters,
    private readonly idleMs = 10_000,
  ) {}

  get pending(): number {
    return this.conn?.table.size ?? 0
  }

  private open(): Conn {
    const reader = new FrameReader()
    const table = new PendingTable()
    const socket = connect({ host: this.host, port: this.port, noDelay: true })
    const conn = { socket, table }
    let opened = false
    let answered = false
    socket.once('connect', () => { opened = true })
    socket.setTimeout(this.idleMs, () => { if (table.size === 0) socket.destroy() })
    socket.on('data', chunk => reader.push(chunk, msg => {
      if (table.take(msg)) answered = true
      else this.counters.dropped('mismatch')
    }))
    // reported as the close that follows; no descriptor for the connection is counted too, and a
    // failure of this host (no descriptor, no buffer) fails the queries as its own, not sent again
    let local = false
    socket.on('error', e => {
      if (fdExhausted(e)) this.counters.fdExhausted('dns-upstream')
      if (localExhausted(e)) local = true
    })
    socket.on('close', () => {
      if (this.conn === conn) this.conn = undefined
      const why = `TCP connection to ${this.host}:${this.port} closed`
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
    const conn = this.conn ?? (this.conn = this.open())   // unset by 'close'; a query racing a dying socket fails over
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
