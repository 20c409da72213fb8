import { randomBytes } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import { AnswerSlab, MAX_RECORD } from './answer-slab.js'
import { KeyWriter } from './cache-key.js'
import { MAX_TTL, type Scan } from './scan.js'
import { AA, RA, RCODE, type Query } from './wire.js'

export interface CacheSettings {
  readonly maxEntries: number
  /** Milliseconds. */
  readonly minTtl: number
  readonly maxTtl: number
}

/**
 * A cached answer is a record in the answer slab (its slot number): a header, the key it was
 * stored under, the reply's bytes (as `set` made them: TTLs clamped, AA clear, RA set), the
 * offset of each TTL field (two bytes each) and the answer's CNAME/SVCB target names (each after
 * a one-byte length). The LRU index maps a 30-bit hash of the key to the slot; a hit compares the
 * whole key with the one stored.
 */
export type CacheEntry = number

// record header, little-endian: key length, reply length, question end, TTL count, upstream
// index, target count (u16 each), rcode (u8), TTL (u32, s), stored at (f64, ms of the clock)
const H_KEY = 0
const H_LEN = 2
const H_QEND = 4
const H_TTLS = 6
const H_UPSTREAM = 8
const H_TARGETS = 10
const H_RCODE = 12
const H_TTL = 16
const H_STORED = 24
const HDR = 32
/** The records' bytes the cache holds at most, per entry of maxEntries (and at least MIN_BYTES). */
const BYTES_PER_ENTRY = 1024
const MIN_BYTES = 1 << 20
/**
 * The slab's chunks take at most this many times the records' bound. Records of every size
 * class in use fill their chunks but for a last chunk and a kept empty one each, far below it;
 * only records that hold chunks nearly empty (a few kept in use by queries while the rest are
 * evicted) come near it, and then the cache evicts more rather than take memory (see `set`).
 */
const CHUNK_BOUND = 2
/** At most this many least recently used entries are evicted to make room for one answer. */
const EVICT_FOR_ROOM = 128
/** Upstream URLs are kept by index (two bytes) in an entry; past this many, the cache starts over. */
const MAX_UPSTREAMS = 0xffff
const NO_TARGETS: readonly string[] = Object.freeze([])

const u16 = (b: Buffer, i: number): number => b[i]! | (b[i + 1]! << 8)
const put16 = (b: Buffer, i: number, v: number): void => { b[i] = v & 0xff; b[i + 1] = v >>> 8 }
/** The clock (ns) in whole milliseconds. */
const msOf = (now: bigint): number => Math.floor(Number(now) / 1e6)

/**
 * How long (s) an answer may be kept, before the clamps, or -1 when it may not be: no longer than
 * the smallest TTL of the records it carries, and for a negative answer (NXDOMAIN, NODATA: an SOA
 * in the authority section, after a CNAME chain or not) no longer than its SOA's negative TTL,
 * min(SOA TTL, MINIMUM) (RFC 2308 §5). A CNAME that leads to NXDOMAIN goes no staler than its own
 * TTL. Not kept: other rcodes, truncated replies, negative answers without an SOA.
 */
export function answerTtl(scan: Scan): number {
  if (scan.truncated || (scan.rcode !== RCODE.NOERROR && scan.rcode !== RCODE.NXDOMAIN)) return -1
  const neg = scan.negativeTtl
  if (neg >= 0) return Math.min(scan.minTtl, neg)
  return scan.rcode === RCODE.NOERROR && scan.answers > 0 ? scan.minTtl : -1
}

/**
 * The answer cache (lru-cache for the bound and recency; expiry by our own clock). Answers live
 * for their smallest TTL, negative ones (NXDOMAIN, NODATA) no longer than their SOA's negative TTL
 * either (answerTtl); anything else (SERVFAIL, REFUSED, truncated, negative without SOA) is not stored.
 */
export class DnsCache {
  readonly settings: CacheSettings
  private readonly lru: LRUCache<number, number> | undefined
  private readonly slab: AnswerSlab
  private upstreams: string[] = []
  private upstreamIndex = new Map<string, number>()
  private readonly key: KeyWriter
  /** The clamps in whole seconds. */
  private readonly minTtl: number
  private readonly maxTtl: number

  /**
   * `seed` is the key hash's (random unless a test sets it: a client must not be able to pick
   * names that collide); `chunkBound` the slab's limit as a multiple of the records' bound (tests).
   */
  constructor(settings: CacheSettings, private readonly maxUpstreams = MAX_UPSTREAMS,
    seed = randomBytes(4).readUInt32LE(0), chunkBound = CHUNK_BOUND) {
    this.settings = settings
    this.key = new KeyWriter(seed)
    this.minTtl = Math.ceil(settings.minTtl / 1000)
    this.maxTtl = Math.floor(settings.maxTtl / 1000)
    // bounded by count and by bytes: records of a few hundred bytes fill the count first, and a
    // flood of large answers (up to 16 KiB each) stops at maxEntries KiB, the older ones evicted
    const maxSize = Math.max(settings.maxEntries * BYTES_PER_ENTRY, MIN_BYTES)
    this.slab = new AnswerSlab(chunkBound * maxSize)
    this.lru = settings.maxEntries > 0
      ? new LRUCache<number, number>({
        max: settings.maxEntries,
        maxSize,
        sizeCalculation: slot => this.slab.sizeOf(slot),
        dispose: slot => this.slab.release(slot),
      })
      : undefined
  }

  get size(): number {
    return this.lru?.size ?? 0
  }

  /** Bytes of the slab's chunks (records in use, released slots, and at most one empty chunk per size class). */
  get bytes(): number {
    return this.slab.bytes
  }

  /** Records held in the slab (equal to `size`: an entry's record is released when the index drops it). */
  get records(): number {
    return this.slab.size
  }

  /** The live entry for this query, or -1 (an expired one is removed). */
  get(msg: Buffer, q: Query, now: bigint): CacheEntry {
    if (!this.lru) return -1
    const key = this.key
    if (!key.write(msg, q)) return -1
    const h = key.hash
    const e = this.lru.get(h)
    if (e === undefined) return -1
    const b = this.slab.chunk(e)
    const o = this.slab.offset(e)
    const kl = key.length
    if (u16(b, o + H_KEY) !== kl) return -1            // another key with the same hash
    const k = key.buf
    for (let i = 0, p = o + HDR; i < kl; i++, p++) if (b[p] !== k[i]) return -1
    if (b.readDoubleLE(o + H_STORED) + b.readUInt32LE(o + H_TTL) * 1000 <= msOf(now)) {
      this.lru.delete(h)
      return -1
    }
    return e
  }

  /** The response code of an entry's answer. */
  rcode(e: CacheEntry): number {
    return this.slab.chunk(e)[this.slab.offset(e) + H_RCODE]!
  }

  /** The upstream that gave an entry's answer. */
  upstream(e: CacheEntry): string {
    return this.upstreams[u16(this.slab.chunk(e), this.slab.offset(e) + H_UPSTREAM)]!
  }

  /** The CNAME and HTTPS/SVCB target names of an entry's answer, in order (most answers have none). */
  targets(e: CacheEntry): readonly string[] {
    const b = this.slab.chunk(e)
    const o = this.slab.offset(e)
    const k = u16(b, o + H_TARGETS)
    if (k === 0) return NO_TARGETS
    const out: string[] = []
    let p = o + HDR + u16(b, o + H_KEY) + u16(b, o + H_LEN) + 2 * u16(b, o + H_TTLS)
    for (let i = 0; i < k; i++) {
      const n = u16(b, p)
      out.push(b.toString('latin1', p + 2, p + 2 + n))
      p += 2 + n
    }
    return out
  }

  /** The TTL (s) an answer may be cached for after the clamps, or -1 when it is not cacheable. */
  ttlFor(scan: Scan): number {
    const ttl = answerTtl(scan)
    return ttl < 0 ? -1 : this.clamp(ttl)
  }

  private clamp(ttl: number): number {
    return Math.min(Math.max(ttl, this.minTtl), this.maxTtl)
  }

  private upstreamId(url: string): number {
    let i = this.upstreamIndex.get(url)
    if (i === undefined) {
      if (this.upstreams.length === this.maxUpstreams) {   // every entry's index would be stale: start over
        this.lru!.clear()
        this.upstreams = []
        this.upstreamIndex = new Map()
      }
      i = this.upstreams.length
      this.upstreams.push(url)
      this.upstreamIndex.set(url, i)
    }
    return i
  }

  /**
   * Make `reply` (an upstream's answer to the query `msg`, whose question ends at `qEnd`) the
   * answer every client gets, in place: AA clear (tunnelguard is authoritative for nothing it
   * forwards), RA set (it offers recursion, whatever the upstream said), its TTL fields clamped to
   * minTtl/maxTtl, so that the client whose query fills the cache gets the TTLs the hits will (and
   * every client the same when it is not cached, or the cache is off). Then store a copy when it
   * is cacheable; returns whether it was.
   */
  set(msg: Buffer, q: Query, reply: Buffer, scan: Scan, upstream: string, now: bigint): boolean {
    reply.writeUInt16BE((reply.readUInt16BE(2) & ~AA) | RA, 2)
    const offs = scan.ttlOffsets
    const min = this.minTtl
    const max = this.maxTtl
    for (let k = 0; k < offs.length; k++) {
      const off = offs[k]!
      const t = reply.readUInt32BE(off)
      if (t > MAX_TTL) reply.writeUInt32BE(min, off)     // the top bit set: read as 0 (RFC 2181 §8), then clamped
      else if (t < min) reply.writeUInt32BE(min, off)
      else if (t > max) reply.writeUInt32BE(max, off)
    }
    if (!this.lru) return false
    const ttl = this.ttlFor(scan)
    if (ttl <= 0) return false
    const key = this.key
    if (!key.write(msg, q)) return false
    const kl = key.length
    const h = key.hash
    const len = reply.length
    const targets = scan.targets
    let size = HDR + kl + len + 2 * offs.length
    // a name read from a reply is at most 1003 characters (readName writes an octet no host name holds as \DDD): two length octets
    for (const t of targets) size += 2 + t.length
    if (size > MAX_RECORD) return false
    const up = this.upstreamId(upstream)
    let e = this.slab.alloc(size)
    // no room under the slab's limit: the least recently used entries make room, or the answer is not cached
    for (let i = 0; e < 0 && i < EVICT_FOR_ROOM && this.lru.size > 0; i++) {
      this.lru.pop()
      e = this.slab.alloc(size)
    }
    if (e < 0) return false
    const b = this.slab.chunk(e)
    const o = this.slab.offset(e)
    put16(b, o + H_KEY, kl)
    put16(b, o + H_LEN, len)
    put16(b, o + H_QEND, q.qEnd)
    put16(b, o + H_TTLS, offs.length)
    put16(b, o + H_UPSTREAM, up)
    put16(b, o + H_TARGETS, targets.length)
    b[o + H_RCODE] = scan.rcode
    b.writeUInt32LE(ttl, o + H_TTL)
    b.writeDoubleLE(msOf(now), o + H_STORED)
    key.buf.copy(b, o + HDR, 0, kl)
    const r = o + HDR + kl
    reply.copy(b, r)                                   // its TTLs clamped above
    let p = r + len
    for (let k = 0; k < offs.length; k++, p += 2) put16(b, p, offs[k]!)
    for (const t of targets) {
      put16(b, p, t.length)
      b.write(t, p + 2, 'latin1')
      p += 2 + t.length
    }
    this.lru.set(h, e)   // an entry under the same hash is released by dispose
    return true
  }

  /**
   * The bytes to serve for a hit: the client's ID and question, TTLs counted down (by whole
   * seconds since the answer was stored). The question is copied byte by byte (it is short).
   */
  serve(e: CacheEntry, query: Buffer, qEnd: number, now: bigint): Buffer {
    const b = this.slab.chunk(e)
    const o = this.slab.offset(e)
    const len = u16(b, o + H_LEN)
    const r = o + HDR + u16(b, o + H_KEY)
    const out = Buffer.allocUnsafe(len)
    b.copy(out, 0, r, r + len)
    out[0] = query[0]!
    out[1] = query[1]!
    if (qEnd === u16(b, o + H_QEND)) for (let i = 12; i < qEnd; i++) out[i] = query[i]!   // keeps the asker's letter case
    const elapsed = Math.floor((msOf(now) - b.readDoubleLE(o + H_STORED)) / 1000)
    if (elapsed > 0) {
      const n = u16(b, o + H_TTLS)
      for (let k = 0, p = r + len; k < n; k++, p += 2) {
        const off = u16(b, p)
        const t = out.readUInt32BE(off)
        out.writeUInt32BE(t > elapsed ? t - elapsed : 0, off)
      }
    }
    return out
  }
}
