/**
 * Fixed-size records in large Buffers, outside the JavaScript heap, for the answer cache. A
 * record is named by one small integer (its slot): class × 2^24 + index. Classes grow by 1.5 and
 * 4/3 in turn from 64 bytes to 16 KiB; each class takes chunks of 64 KiB as it needs them. A new
 * record goes into a chunk that has room before a new chunk is taken, and a chunk whose records
 * are all released is given back (one empty chunk per class is kept, so that a class at the edge
 * of a chunk does not take and give one back for every record).
 *
 * Why: every forwarded answer is cached and lives until it is evicted. As JavaScript strings, the
 * young-generation collector copied each one twice before it reached the old generation, where
 * it was marked and swept in turn: several µs per forwarded query. Records here are never seen by
 * the collector; the cache's index holds numbers only.
 *
 * Why chunks are given back: the cache bounds its records' bytes (cache.ts), but a slab that kept
 * every chunk it took would hold, per class, the most that class ever held. Traffic that moved
 * from one size class to the next (a flood of answers of one size, then another) would leave up
 * to 17 times the bound in chunks. The cache evicts the least recently used records, which were
 * also the first written, so the chunks of a class that traffic left empty in turn. A few records
 * kept in use (asked for again and again) can still hold chunks that are otherwise empty, so the
 * slab also has a limit on its chunks' bytes: past it a record gets no slot, and the cache evicts
 * to make room (cache.ts).
 */

/**
 * Record sizes in bytes, smallest first, to 16 KiB: a DNS answer is rarely over 4 KiB, and one
 * that is larger is not cached (a flood of huge answers must not fill memory).
 */
export const RECORD_SIZES: readonly number[] = (() => {
  const out: number[] = []
  for (let s = 64; s <= 16_384; s = out.length % 2 === 1 ? (s * 3) / 2 : (s * 4) / 3) out.push(s)
  return out
})()
/** The largest record a slot holds. */
export const MAX_RECORD = RECORD_SIZES[RECORD_SIZES.length - 1]!
const CHUNK_BYTES = 65_536
const INDEX_BITS = 24
const INDEX_MASK = (1 << INDEX_BITS) - 1

class SizeClass {
  /** By chunk number; undefined once given back (the number is taken again before a new one). */
  readonly chunks: (Buffer | undefined)[] = []
  /** Records in use, per chunk. */
  readonly live: number[] = []
  /** Released slots, per chunk. */
  readonly free: number[][] = []
  /** Slots not yet used, per chunk: the next is chunk × perChunk + fresh. */
  readonly fresh: number[] = []
  /** Chunks that have room (a chunk given back or filled since stays until `alloc` comes to it). */
  readonly open: number[] = []
  /** Is the chunk in `open`? */
  readonly listed: boolean[] = []
  /** Numbers of chunks given back. */
  readonly gone: number[] = []
  /** The chunk kept empty, or -1. */
  spare = -1
  /** Chunks held. */
  held = 0
  /** Records in use. */
  used = 0
  /** Records per chunk, as a shift: 2^shift records of `size` bytes make a chunk. */
  readonly shift: number
  readonly perChunk: number

  constructor(readonly size: number) {
    this.shift = Math.max(0, Math.floor(Math.log2(CHUNK_BYTES / size)))
    this.perChunk = 1 << this.shift
  }

  /** A chunk with room, or -1 when every chunk is full. */
  roomy(): number {
    const open = this.open
    while (open.length > 0) {
      const c = open[open.length - 1]!
      if (this.chunks[c] && (this.free[c]!.length > 0 || this.fresh[c]! < this.perChunk)) return c
      open.pop()
      this.listed[c] = false
    }
    return -1
  }

  /**
   * A new chunk (its number). The numbers stay within the index's bits: one is taken only when
   * every chunk is full, and a class holds at most 2^24 records.
   */
  take(): number {
    const open = this.open
    const c = this.gone.length > 0 ? this.gone.pop()! : this.chunks.length
    this.held++
    this.chunks[c] = Buffer.allocUnsafeSlow(this.size << this.shift)
    this.live[c] = 0
    this.free[c] = []
    this.fresh[c] = 0
    open.push(c)
    this.listed[c] = true
    return c
  }

  /** A slot (its index in the class) in chunk `c`, which has room (`roomy` or `take`). */
  alloc(c: number): number {
    if (c === this.spare) this.spare = -1
    this.live[c]!++
    this.used++
    const f = this.free[c]!
    return f.length > 0 ? f.pop()! : (c << this.shift) | this.fresh[c]!++
  }

  release(i: number): void {
    const c = i >>> this.shift
    this.used--
    if (--this.live[c]! > 0) {
      this.free[c]!.push(i)
      if (!this.listed[c]) { this.open.push(c); this.listed[c] = true }
      return
    }
    // the chunk is empty: kept as the spare (its slots all fresh again), or given back. It is in
    // `open` already: its release before this one (a chunk holds 4 records or more) left it room
    if (this.spare < 0) {
      this.spare = c
      this.free[c] = []
      this.fresh[c] = 0
      return
    }
    this.chunks[c] = undefined
    this.free[c] = []
    this.gone.push(c)
    this.held--
  }
}

export class AnswerSlab {
  private readonly classes = RECORD_SIZES.map(s => new SizeClass(s))
  private used = 0

  private readonly perClass: number

  /**
   * `limit`: the most bytes the chunks may take; a record that would need a chunk past it gets no
   * slot (the cache then evicts, see cache.ts). `perClass`: records per class at most (the
   * index's bits, 2^24; less in tests).
   */
  constructor(readonly limit = Infinity, perClass = 1 << INDEX_BITS) {
    this.perClass = Math.min(perClass, 1 << INDEX_BITS)
  }

  /**
   * A slot for a record of `bytes`, or -1 when it is larger than MAX_RECORD, its class is full,
   * or it would need a new chunk past `limit`.
   */
  alloc(bytes: number): number {
    let c = 0
    while (c < RECORD_SIZES.length && RECORD_SIZES[c]! < bytes) c++
    if (c === RECORD_SIZES.length) return -1
    const k = this.classes[c]!
    if (k.used >= this.perClass) return -1
    let chunk = k.roomy()
    if (chunk < 0) {
      if (this.bytes + (k.size << k.shift) > this.limit) return -1
      chunk = k.take()
    }
    this.used++
    return (c << INDEX_BITS) | k.alloc(chunk)
  }

  /** The bytes a slot holds (its class's record size). */
  sizeOf(slot: number): number {
    return this.classes[slot >>> INDEX_BITS]!.size
  }

  /** Give a slot back; its bytes stay until it is taken again, or its chunk is given back. */
  release(slot: number): void {
    this.classes[slot >>> INDEX_BITS]!.release(slot & INDEX_MASK)
    this.used--
  }

  /** The Buffer that holds a slot's record (see `offset`). */
  chunk(slot: number): Buffer {
    const k = this.classes[slot >>> INDEX_BITS]!
    return k.chunks[(slot & INDEX_MASK) >>> k.shift]!
  }

  /** Where a slot's record starts in its chunk. */
  offset(slot: number): number {
    const k = this.classes[slot >>> INDEX_BITS]!
    return (slot & (k.perChunk - 1)) * k.size
  }

  /** Slots in use. */
  get size(): number {
    return this.used
  }

  /** Bytes held in chunks (in use or free). */
  get bytes(): number {
    let n = 0
    for (const k of this.classes) n += k.held * (k.size << k.shift)
    return n
  }
}
