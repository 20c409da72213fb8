import { randomFillSync } from 'node:crypto'
import { AppError, type ErrorCode } from '../errors.js'
import { SlotTable } from './slot-table.js'
import { Q_CASE, Q_OTHER, isErrorRcode, matchQuestion } from './wire.js'

export type ReplyCallback = (err: AppError | undefined, reply?: Buffer) => void

interface Pending {
  readonly query: Buffer
  readonly qEnd: number
  readonly cb: ReplyCallback
  timer: NodeJS.Timeout
  readonly exactCase: boolean
  /** performance.now() at which the query times out. */
  readonly deadline: number
  /** Sent again after the connection it was sent on closed (see `takeAll`). */
  readonly resent: boolean
  /** Sent again on the same socket, unanswered for a while (RESEND_MIN_MS). */
  sentAgain: boolean
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
/** Slots a table starts with (it doubles past half full, up to one per ID). */
const FIRST_SLOTS = 64

/**
 * A query over UDP unanswered this long is sent again, as it was (same ID, same letter case), so
 * that either copy's answer is taken: at a third and two thirds of its time (a half, when a third is
 * shorter than this; never, when a half is). A datagram lost on the way up or back otherwise cost
 * the client a SERVFAIL at the timeout (one for one with the loss), and a stub takes a SERVFAIL
 * for an answer, where it would have asked again after silence. BIND starts at 800 ms, unbound at 376.
 */
export const RESEND_MIN_MS = 300

/** The gap between sends of a query given `timeoutMs` (0: it is not sent again), and how many times it is sent again. */
export function resendPlan(timeoutMs: number): { gapMs: number; resends: number } {
  if (timeoutMs / 3 >= RESEND_MIN_MS) return { gapMs: timeoutMs / 3, resends: 2 }
  if (timeoutMs / 2 >= RESEND_MIN_MS) return { gapMs: timeoutMs / 2, resends: 1 }
  return { gapMs: 0, resends: 0 }
}

/** IDs remembered after a query sent again was answered: the other copy's answer is no mismatch. */
const LATE_IDS = 64

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
  private readonly map = new SlotTable<Pending>(FIRST_SLOTS, 65_536)
  /** IDs of queries sent again and answered (a ring): a second answer to one is expected, not a mismatch. */
  private readonly late = new Int32Array(LATE_IDS).fill(-1)
  private lateAt = 0

  /** `resend`: send a query again as it is (UDP; see RESEND_MIN_MS); without it, a query is sent once. */
  constructor(private readonly onEmpty?: () => void, private readonly onTimeout?: (timeoutMs: number) => void,
    private readonly resend?: (query: Buffer) => void) {}

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
    this.map.reserve()
    // an ID whose slot is free: while the table is smaller than one slot per ID, IDs sharing a
    // slot with one pending are passed over too (at most half of the slots are taken)
    for (let i = 0; i < MAX_TRIES; i++) {
      const c = random16()
      if (this.map.isFree(c)) { id = c; break }
    }
    if (id < 0) return false
    query.writeUInt16BE(id, 0)
    const deadline = performance.now() + timeoutMs
    let { gapMs, resends } = this.resend !== undefined ? resendPlan(timeoutMs) : { gapMs: 0, resends: 0 }
    const fire = (): void => {
      if (resends > 0) {
        resends--
        const p = this.map.get(id)!                       // (there while its timer runs: take and takeAll stop it)
        p.sentAgain = true
        this.resend!(p.query)
        p.timer = setTimeout(fire, resends > 0 ? gapMs : Math.max(0, deadline - performance.now()))
        return
      }
      this.remove(id)
      cb(new AppError('UPSTREAM_TIMEOUT', `no answer within ${Math.round(timeoutMs)} ms`))
      this.onTimeout?.(timeoutMs)
    }
    const timer = setTimeout(fire, resends > 0 ? gapMs : timeoutMs)
    this.map.set(id, { query, qEnd, cb, timer, exactCase, deadline, resent, sentAgain: false })
    return true
  }

  /** A reply that take() refused whose ID is that of a query sent again and answered already: the other copy's answer. */
  isLate(reply: Buffer): boolean {
    return reply.length >= 2 && this.late.includes(reply.readUInt16BE(0))
  }

  private answered(id: number, p: Pending): void {
    clearTimeout(p.timer)
    this.remove(id)
    if (p.sentAgain) {
      this.late[this.lateAt] = id
      this.lateAt = (this.lateAt + 1) % LATE_IDS
    }
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
      this.answered(id, p)
      p.cb(undefined, reply)
      return true
    }
    this.answered(id, p)
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
    for (const p of this.map.takeAll()) {
      clearTimeout(p.timer)
      all.push({ query: p.query, qEnd: p.qEnd, cb: p.cb, remainingMs: p.deadline - now, resent: p.resent })
    }
    return all
  }
}
