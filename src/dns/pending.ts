import { randomFillSync } from 'node:crypto'
import { AppError, type ErrorCode } from '../errors.js'
import { Q_CASE, Q_OTHER, isErrorRcode, matchQuestion } from './wire.js'

export type ReplyCallback = (err: AppError | undefined, reply?: Buffer) => void

interface Pending {
  readonly query: Buffer
  readonly qEnd: number
  readonly cb: ReplyCallback
  readonly timer: NodeJS.Timeout
  readonly exactCase: boolean
  /** performance.now() at which the query times out. */
  readonly deadline: number
  /** Sent again after the connection it was sent on closed (see `takeAll`). */
  readonly resent: boolean
}

/** A query taken back unanswered (its timer stopped), to be sent again or failed. */
export interface Unanswered {
  readonly query: Buffer
  readonly qEnd: number
  readonly cb: ReplyCallback
  /** Milliseconds left of its budget (0 or less: none). */
  readonly remainingMs: number
  readonly resent: boolean
}

const MAX_TRIES = 64

/** Random bytes for IDs and socket choices, drawn from the CSPRNG a few KiB at a time. */
const RND = Buffer.alloc(4096)
let rndPos = RND.length

/** A random byte (0..255). */
export function randomByte(): number {
  if (rndPos >= RND.length) {
    randomFillSync(RND)
    rndPos = 0
  }
  return RND[rndPos++]!
}

/** A random 16-bit number. */
export function random16(): number {
  return (randomByte() << 8) | randomByte()
}

/**
 * Give each ASCII letter of the name at buf[start..end) a random case (DNS 0x20, draft-vixie-dnsext-dns0x20):
 * a spoofer has to guess it as well as the ID and port. Length octets (at most 63) are never letters.
 */
export function mixCase(buf: Buffer, start: number, end: number): void {
  let bits = 0
  let n = 0
  for (let i = start; i < end; i++) {
    const c = buf[i]! | 0x20
    if (c < 97 || c > 122) continue
    if (n === 0) {
      bits = randomByte()
      n = 8
    }
    buf[i] = (bits & 1) !== 0 ? c & 0xdf : c
    bits >>= 1
    n--
  }
}

/** The error a query sent with `exactCase` gets when its reply's question differs in letter case only. */
export const CASE_MISMATCH = new AppError('UPSTREAM_FAILED', "the reply's question differs from the query's in letter case")

/**
 * Queries sent on one upstream socket or connection, by a fresh random ID each. A reply is taken
 * only when it is a response (QR, opcode QUERY), its ID is pending and its question is the one
 * asked, or when it is an error response
 * that carries no question (QR set, QDCOUNT 0, an rcode of isErrorRcode); anything else is a
 * mismatch (dropped). `onEmpty` is called when the last query pending is answered or times out,
 * `onTimeout` when a query times out (after its callback), with its budget (ms).
 */
export class PendingTable {
  private readonly map = new Map<number, Pending>()

  constructor(private readonly onEmpty?: () => void, private readonly onTimeout?: (timeoutMs: number) => void) {}

  get size(): number {
    return this.map.size
  }

  /**
   * Give the query a fresh ID (written into `query`) and wait for its reply; false when no ID is
   * free. With `exactCase`, a reply whose question differs in letter case fails the query with
   * CASE_MISMATCH (without, it is taken: names are case-insensitive).
   */
  add(query: Buffer, qEnd: number, timeoutMs: number, cb: ReplyCallback, exactCase = false, resent = false): boolean {
    let id = -1
    for (let i = 0; i < MAX_TRIES; i++) {
      const c = random16()
      if (!this.map.has(c)) { id = c; break }
    }
    if (id < 0) return false
    query.writeUInt16BE(id, 0)
    const timer = setTimeout(() => {
      this.remove(id)
      cb(new AppError('UPSTREAM_TIMEOUT', `no answer within ${Math.round(timeoutMs)} ms`))
      this.onTimeout?.(timeoutMs)
    }, timeoutMs)
    this.map.set(id, { query, qEnd, cb, timer, exactCase, deadline: performance.now() + timeoutMs, resent })
    return true
  }

  private remove(id: number): void {
    this.map.delete(id)
    if (this.map.size === 0) this.onEmpty?.()
  }

  /**
   * Hand a reply to its query; false when it is not taken: wrong ID or question, or (the query
   * failed with CASE_MISMATCH) a question that differs in letter case from one sent with `exactCase`.
   */
  take(reply: Buffer): boolean {
    // a response to a standard query: QR set, opcode QUERY (RFC 1035 §4.1.1); a query or a NOTIFY
    // echoed back with a pending ID (a reflector, a spoof) is no answer, and would be cached as one
    if (reply.length < 12 || (reply[2]! & 0xf8) !== 0x80) return false
    const id = reply.readUInt16BE(0)
    const p = this.map.get(id)
    if (!p) return false
    const m = matchQuestion(p.query, p.qEnd, reply)
    if (m === Q_OTHER) {
      // an error with no question at all (unbound's `refuse`, a server that cannot parse the
      // query): the query's answer (its rcode says it is an error), not a wait for the timeout
      if (reply.readUInt16BE(4) !== 0 || (reply[2]! & 0x80) === 0 || !isErrorRcode(reply[3]! & 0xf)) return false
      clearTimeout(p.timer)
      this.remove(id)
      p.cb(undefined, reply)
      return true
    }
    clearTimeout(p.timer)
    this.remove(id)
    if (m === Q_CASE && p.exactCase) {
      p.cb(CASE_MISMATCH)
      return false
    }
    p.cb(undefined, reply)
    return true
  }

  /** Fail every pending query (socket or connection closed; `code` LOCAL_EXHAUSTED: by a failure of this host). */
  failAll(message: string, code: ErrorCode = 'UPSTREAM_FAILED'): void {
    for (const p of this.takeAll()) p.cb(new AppError(code, message))
  }

  /** Take every pending query back, unanswered, its timer stopped (a TCP connection closed under them). */
  takeAll(): Unanswered[] {
    const now = performance.now()
    const all: Unanswered[] = []
    for (const p of this.map.values()) {
      clearTimeout(p.timer)
      all.push({ query: p.query, qEnd: p.qEnd, cb: p.cb, remainingMs: p.deadline - now, resent: p.resent })
    }
    this.map.clear()
    return all
  }
}
