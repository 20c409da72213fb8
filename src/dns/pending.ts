import { randomFillSync } from 'node:crypto'
import { AppError } from '../errors.js'
import { sameQuestion } from './wire.js'

export type ReplyCallback = (err: AppError | undefined, reply?: Buffer) => void

interface Pending {
  readonly query: Buffer
  readonly qEnd: number
  readonly cb: ReplyCallback
  readonly timer: NodeJS.Timeout
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
 * Queries sent on one upstream socket or connection, by a fresh random ID each. A reply is taken
 * only when its ID is pending and its question is the one asked; anything else is a mismatch
 * (dropped). `onEmpty` is called when the last query pending is answered or times out.
 */
export class PendingTable {
  private readonly map = new Map<number, Pending>()

  constructor(private readonly onEmpty?: () => void) {}

  get size(): number {
    return this.map.size
  }

  /** Give the query a fresh ID (written into `query`) and wait for its reply; false when no ID is free. */
  add(query: Buffer, qEnd: number, timeoutMs: number, cb: ReplyCallback): boolean {
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
    }, timeoutMs)
    this.map.set(id, { query, qEnd, cb, timer })
    return true
  }

  private remove(id: number): void {
    this.map.delete(id)
    if (this.map.size === 0) this.onEmpty?.()
  }

  /** Hand a reply to its query; false when it matches none (wrong ID or question). */
  take(reply: Buffer): boolean {
    if (reply.length < 12) return false
    const id = reply.readUInt16BE(0)
    const p = this.map.get(id)
    if (!p || !sameQuestion(p.query, p.qEnd, reply)) return false
    clearTimeout(p.timer)
    this.remove(id)
    p.cb(undefined, reply)
    return true
  }

  /** Fail every pending query (socket or connection closed). */
  failAll(message: string): void {
    const all = [...this.map.values()]
    this.map.clear()
    for (const p of all) {
      clearTimeout(p.timer)
      p.cb(new AppError('UPSTREAM_FAILED', message))
    }
  }
}
