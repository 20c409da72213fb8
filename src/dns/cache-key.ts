/**
 * The answer cache's key of a query: the header bits it keys on besides the question (keyBits,
 * keyFlags; the exchanges in flight upstream key on them too), and the whole key written out with
 * its hash (KeyWriter).
 */
import { AD, CD, RD, TYPE_OPT, skipName, skipRecord, type Query } from './wire.js'

/**
 * The bits of a query that the answer cache keys on besides its question: DO (1), CD (2), an
 * OPT record present (4), RD clear (8: an upstream may refuse a query that asks for no
 * recursion), AD without DO (16: a validating resolver sets AD in its reply only when the query
 * had AD or DO, RFC 6840 §5.7-5.8; with DO the reply is the same either way, so AD is left out
 * of a DO query's key). `flags` is the header's second word.
 */
export function keyBits(flags: number, edns: boolean, dnssecOk: boolean): number {
  return (dnssecOk ? 1 : (flags & AD) !== 0 ? 16 : 0) | ((flags & CD) !== 0 ? 2 : 0) | (edns ? 4 : 0) | ((flags & RD) === 0 ? 8 : 0)
}

/** keyBits of a query's bytes (one parseQuery took), its OPT record found by walking its records. */
export function keyFlags(msg: Buffer, qEnd: number): number {
  const flags = msg.readUInt16BE(2)
  const records = msg.readUInt16BE(6) + msg.readUInt16BE(8)
  const all = records + msg.readUInt16BE(10)
  let pos = qEnd
  for (let i = 0; i < all; i++) {
    const end = skipRecord(msg, pos)
    if (end < 0) break
    if (i >= records) {
      const p = skipName(msg, pos)
      if (msg.readUInt16BE(p) === TYPE_OPT) return keyBits(flags, true, (msg.readUInt16BE(p + 6) & 0x8000) !== 0)
    }
    pos = end
  }
  return keyBits(flags, false, false)
}

/** A key: flag bits, type and class (5 bytes), then the name in wire form, lowercase (≤ 255). */
const KEY_MAX = 5 + 255

/**
 * The cache key of a query: DO, CD, EDNS presence, RD clear and AD without DO as bits (those of
 * keyFlags), type, class, then the question's name in wire form with A-Z folded (so that a label
 * holding a dot is not the two labels it reads as), and its 30-bit hash (a small integer for the
 * index), seeded per cache.
 */
export class KeyWriter {
  readonly buf = Buffer.alloc(KEY_MAX)
  /** The key written last: its length in `buf` and its hash. */
  length = 0
  hash = 0

  constructor(private readonly seed: number) {}

  /**
   * Write the key of `q` (parsed from `msg`). False when the name is not plain labels:
   * parseQuery accepts no compression pointer in a query's only question (there is no earlier
   * name for it to point to).
   */
  write(msg: Buffer, q: Query): boolean {
    const out = this.buf
    const b0 = keyBits(q.flags, q.edns, q.dnssecOk)
    out[0] = b0
    out[1] = q.qtype >>> 8
    out[2] = q.qtype & 0xff
    out[3] = q.qclass >>> 8
    out[4] = q.qclass & 0xff
    let h = Math.imul(this.seed ^ b0 ^ (q.qtype << 8) ^ (q.qclass << 16), 0x01000193)
    let n = 5
    let pos = 12
    for (;;) {
      if (pos >= msg.length) return false
      const len = msg[pos]!
      if (len === 0) break
      if (len > 63 || n + 1 + len >= KEY_MAX || pos + 1 + len > msg.length) return false
      out[n++] = len
      h = Math.imul(h ^ len, 0x01000193)
      for (let i = pos + 1; i <= pos + len; i++) {
        let c = msg[i]!
        if (c >= 65 && c <= 90) c |= 0x20
        out[n++] = c
        h = Math.imul(h ^ c, 0x01000193)
      }
      pos += len + 1
    }
    out[n++] = 0
    h ^= h >>> 15
    h = Math.imul(h, 0x2c1b3c6d)
    h ^= h >>> 12
    this.length = n
    this.hash = h & 0x3fffffff
    return true
  }
}
