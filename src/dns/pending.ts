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

/**
 * Queries sent on one upstream connection, by a fresh random ID each. A reply is taken only when
 * its ID is pending and its question is the one asked; anything else is a mismatch (dropped).
 */
export class PendingTable {
  private readonly map = new Map<number, Pending>()
  private readonly rnd = Buffer.alloc(2048)
  private rndPos = this.rnd.length

  get size(): number {
    return this.map.size
  }

  private randomId(): number {
    if (this.rndPos >= this.rnd.length) {
      randomFillSync(this.rnd)
      this.rndPos = 0
    }
    const id = this.rnd.readUInt16BE(this.rndPos)
    this.rndPos += 2
    return id
  }

  /** Give the query a fresh ID (written into `query`) and wait for its reply; false when no ID is free. */
  add(query: Buffer, qEnd: number, timeoutMs: number, cb: ReplyCallback): boolean {
    let id = -1
    for (let i = 0; i < MAX_TRIES; i++) {
      const c = this.randomId()
      if (!this.map.has(c)) { id = c; break }
    }
    if (id < 0) return false
    query.writeUInt16BE(id, 0)
    const timer = setTimeout(() => {
      this.map.delete(id)
      cb(new AppError('UPSTREAM_TIMEOUT', `no answer within ${Math.round(timeoutMs)} ms`))
    }, timeoutMs)
    this.map.set(id, { query, qEnd, cb, timer })
    return true
  }

  /** Hand a reply to its query; false when it matches none (wrong ID or question). */
  take(reply: Buffer): boolean {
    if (reply.length < 12) return false
    const id = reply.readUInt16BE(0)
    const p = this.map.get(id)
    if (!p || !sameQuestion(p.query, p.qEnd, reply)) return false
    this.map.delete(id)
    clearTimeout(p.timer)
    p.cb(undefined, reply)
    return true
  }

  /** Fail every pending query (connection closed). */
  failAll(message: string): void {
    const all = [...this.map.values()]
    this.map.clear()
    for (const p of all) {
      clearTimeout(p.timer)
      p.cb(new AppError('UPSTREAM_FAILED', message))
    }
  }
}
