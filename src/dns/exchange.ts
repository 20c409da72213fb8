/**
 * One question asked upstream (Exchange): the first client query's copy sent to a pool's upstreams
 * in order, failed over and retried over TCP within its budget, and the answer handed to every
 * client query that waits for it, each with its own ID and question.
 */
import { AppError } from '../errors.js'
import type { Counters } from '../observe/types.js'
import { restoreCase } from './case.js'
import { rcodeName } from './names.js'
import { CASE_MISMATCH, mixCase, type ReplyCallback } from './pending.js'
import type { Upstream } from './upstream.js'
import { HEADER, Q_CASE, TC, isErrorRcode, matchQuestion, sameQuestion } from './wire.js'

/**
 * A query longer than this goes to a udp:// upstream over TCP: a client's TCP query can be far
 * longer than a UDP datagram, and an upstream that drops it would time out as if it were down.
 */
export const MAX_UDP_QUERY = 4096

export type ForwardCallback = (err: AppError | undefined, reply?: Buffer, upstream?: string) => void

/** What an exchange needs of its pool. */
export interface ExchangeContext {
  readonly nowMs: () => number
  readonly counters: Counters
  /** The exchange is over: it takes no more waiters. */
  done(x: Exchange): void
}

/** A client query waiting for an exchange that another one started. */
interface Waiter { readonly query: Buffer; readonly cb: ForwardCallback }

/** The reply as `query`'s answer: its ID and its question (the letter case it asked in) written over the reply's. */
function answerFor(query: Buffer, qEnd: number, reply: Buffer): Buffer {
  reply[0] = query[0]!
  reply[1] = query[1]!
  query.copy(reply, HEADER, HEADER, qEnd)
  return reply
}

/**
 * One question asked upstream, and every client query waiting for its answer (identical
 * questions in flight are asked once, RFC 5452 §5). It sends a copy of the first query, with an
 * ID of its own per send, to the upstreams in order within the first query's budget, and answers
 * each waiter with a reply of its own that carries the waiter's ID and question.
 */
export class Exchange {
  private readonly wire: Buffer
  private readonly deadline: number
  private readonly onReply: ReplyCallback
  private i = 0
  private u: Upstream | undefined
  private start = 0
  private viaTcp = false
  /** The name in `wire` has the random letter case of 0x20 (not the first query's). */
  private mixed = false
  private lastErr: AppError | undefined
  /** The last reply that said the server could not answer (isErrorRcode), and from which upstream. */
  private lastReply: Buffer | undefined
  private lastFrom = ''
  private more: Waiter[] | undefined

  constructor(private readonly ctx: ExchangeContext, private readonly order: readonly Upstream[],
    private readonly query: Buffer, readonly qEnd: number, readonly flags: number, readonly hash: number,
    private readonly timeoutMs: number, private readonly cb: ForwardCallback, now: number) {
    this.wire = Buffer.allocUnsafe(query.length)
    query.copy(this.wire)
    this.deadline = now + timeoutMs
    this.onReply = (err, reply) => this.replied(err, reply)
  }

  /** Does `query` ask what this exchange asks: the same key as the cache's (name without case, type, class, and the bits of keyFlags)? */
  asks(query: Buffer, qEnd: number, flags: number): boolean {
    return qEnd === this.qEnd && flags === this.flags && sameQuestion(this.wire, qEnd, query)
  }

  join(query: Buffer, cb: ForwardCallback): void {
    (this.more ??= []).push({ query, cb })
  }

  attempt(): void {
    const now = this.ctx.nowMs()
    const remaining = this.deadline - now
    if (this.i >= this.order.length || remaining <= 0) {
      if (this.lastReply !== undefined) return this.finish(undefined, this.lastReply, this.lastFrom)
      this.finish(this.lastErr ?? new AppError('UPSTREAM_TIMEOUT', `no upstream answered within ${this.timeoutMs} ms`))
      return
    }
    const u = this.u = this.order[this.i++]!
    this.start = now
    this.viaTcp = u.proto !== 'udp' || this.wire.length > MAX_UDP_QUERY
    const mix = !this.viaTcp && u.caseKept
    if (mix) mixCase(this.wire, HEADER, this.qEnd - 4)
    else if (this.mixed) this.query.copy(this.wire, HEADER, HEADER, this.qEnd)
    this.mixed = mix
    u.send(this.viaTcp, this.wire, this.qEnd, remaining / (this.order.length - this.i + 1), mix, this.onReply)
  }

  private replied(err: AppError | undefined, reply?: Buffer): void {
    const u = this.u!
    // truncated, or (0x20) its question came back in another letter case: an upstream that does
    // not keep it, or a spoof that guessed port and ID but not the case; or an error without the
    // question, which a spoof needs only port and ID for. Asked again over TCP, which an off-path
    // spoofer cannot answer, with what is left of the budget.
    if (!this.viaTcp && (err === CASE_MISMATCH || (!err && ((reply!.readUInt16BE(2) & TC) !== 0 || reply!.readUInt16BE(4) === 0)))) {
      this.viaTcp = true
      u.send(true, this.wire, this.qEnd, Math.max(1, this.deadline - this.ctx.nowMs()), false, this.onReply)
      return
    }
    // over TCP, the case the upstream answers in is its own
    if (!err && this.mixed && this.viaTcp && matchQuestion(this.wire, this.qEnd, reply!) === Q_CASE) u.caseLost()
    const now = this.ctx.nowMs()
    const secs = (now - this.start) / 1000
    // this host ran out of descriptors or buffers: not the upstream's failure (its health and
    // counts stay), and the next upstream would fare no better: SERVFAIL at once
    if (err?.code === 'LOCAL_EXHAUSTED') return this.finish(err)
    if (err) {
      this.ctx.counters.upstream(u.url, err.code === 'UPSTREAM_TIMEOUT' ? 'timeout' : 'error', secs)
      // an upstream that answered other queries meanwhile is up: this one query failed (a name
      // whose servers never answer, a query it drops), and that is no reason to pass it over
      if (u.lastOk <= this.start) u.failed(now)
      this.lastErr = err
      this.attempt()
      return
    }
    const rcode = reply!.readUInt8(3) & 0xf
    // the server could not answer: the next upstream is asked (RFC 1034 §5.3.3: "try another
    // server"); when none does better, the last such reply is the answer
    if (isErrorRcode(rcode)) {
      // an answer, so the upstream is up: it is not marked down for it (a name a validating
      // upstream finds bogus, or one it refuses, would otherwise take it out for everyone)
      this.ctx.counters.upstream(u.url, 'error', secs)
      if (reply!.readUInt16BE(4) === 0) {
        this.lastErr = new AppError('UPSTREAM_FAILED', `${u.url} answered ${rcodeName(rcode)} without the question`)
      } else {
        this.lastReply = Buffer.from(reply!)
        this.lastFrom = u.url
      }
      this.attempt()
      return
    }
    this.ctx.counters.upstream(u.url, 'ok', secs)
    u.succeeded(now)
    this.finish(undefined, reply, u.url)
  }

  private finish(err: AppError | undefined, reply?: Buffer, upstream?: string): void {
    this.ctx.done(this)
    // names the server wrote out from the question keep its 0x20 case: the client's put back
    if (reply !== undefined && this.mixed) restoreCase(reply, this.wire, this.query)
    const more = this.more
    if (more === undefined) {
      this.cb(err, reply && answerFor(this.query, this.qEnd, reply), upstream)
      return
    }
    // each waiter gets a copy, made before any callback can change the reply (the handler writes into it)
    const copies = more.map(w => reply && answerFor(w.query, this.qEnd, Buffer.from(reply)))
    this.cb(err, reply && answerFor(this.query, this.qEnd, reply), upstream)
    for (let k = 0; k < more.length; k++) more[k]!.cb(err, copies[k], upstream)
  }
}
