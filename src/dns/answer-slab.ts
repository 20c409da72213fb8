/**
 * Fixed-size records in large Buffers, outside the JavaScript heap, for the answer cache. A
 * record is named by one small integer (its slot): class × 2^24 + index. Classes grow by 1.5 and
 * 4/3 in turn from 64 bytes to 16 KiB; each class takes chunks of 64 KiB as it needs them, and
 * reuses released slots before it takes new ones. Chunks are kept once taken: what the slab holds
 * is the most each class has held at once (the cache bounds the records' bytes, see cache.ts).
 *
 * Why: every forwarded answer is cached and lives until it is evicted. As JavaScript strings, the
 * young-generation collector copied each one twice before it reached the old generation, where
 * it was marked and swept in turn: several µs per forwarded query. Records here are never seen by
 * the collector; the cache's index holds numbers only.
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
/** Records per class at most (the index's bits). */
const MAX_PER_CLASS = 1 << INDEX_BITS

class SizeClass {
  readonly chunks: Buffer[] = []
  /** Records per chunk, as a shift: 2^shift records of `size` bytes make a chunk. */
  readonly shift: number
  readonly free: number[] = []
  next = 0

  constructor(readonly size: number) {
    this.shift = Math.max(0, Math.floor(Math.log2(CHUNK_BYTES / size)))
  }
}

export class AnswerSlab {
  private readonly classes = RECORD_SIZES.map(s => new SizeClass(s))
  private used = 0

  /** `perClass`: records per class at most (MAX_PER_CLASS, the index's bits; less in tests). */
  constructor(private readonly perClass = MAX_PER_CLASS) {}

  /** A slot for a record of `bytes`, or -1 when it is larger than MAX_RECORD or its class is full. */
  alloc(bytes: number): number {
    let c = 0
    while (c < RECORD_SIZES.length && RECORD_SIZES[c]! < bytes) c++
    if (c === RECORD_SIZES.length) return -1
    const k = this.classes[c]!
    let i = k.free.pop()
    if (i === undefined) {
      if (k.next >= this.perClass) return -1
      i = k.next++
      if (i >>> k.shift === k.chunks.length) k.chunks.push(Buffer.allocUnsafeSlow(k.size << k.shift))
    }
    this.used++
    return (c << INDEX_BITS) | i
  }

  /** The bytes a slot holds (its class's record size). */
  sizeOf(slot: number): number {
    return this.classes[slot >>> INDEX_BITS]!.size
  }

  /** Give a slot back; its bytes stay until it is taken again. */
  release(slot: number): void {
    this.classes[slot >>> INDEX_BITS]!.free.push(slot & INDEX_MASK)
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
    return (slot & ((1 << k.shift) - 1)) * k.size
  }

  /** Slots in use. */
  get size(): number {
    return this.used
  }

  /** Bytes held in chunks (in use or free). */
  get bytes(): number {
    let n = 0
    for (const k of this.classes) n += k.chunks.length * (k.size << k.shift)
    return n
  }
}
