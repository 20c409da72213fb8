import { LRUCache } from 'lru-cache'
import type { Scan } from './scan.js'
import { RCODE, type Query } from './wire.js'

export interface CacheSettings {
  readonly maxEntries: number
  /** Milliseconds. */
  readonly minTtl: number
  readonly maxTtl: number
}

/**
 * A cached answer, all in one string of one-byte characters: the reply's bytes (TTLs already
 * clamped), the offset of each TTL field (two characters each), the answer's CNAME/SVCB target
 * names (each after a one-character length), then a trailer of META characters. Every answer of forwarded traffic is cached and lives until it is evicted, so an
 * entry's objects are what the old-generation collector marks and sweeps, per query: a flat
 * string is one object with no pointers in it. (An entry of eight objects, BigInt times and
 * arrays included, and then one of a Buffer, cost the forwarded mix several µs per query in the
 * collector's threads.)
 */
export type CacheEntry = string

// trailer: stored at (ms of the clock, 6 chars), TTL (s, 4), reply length, question end, TTL
// count, upstream index, target count (2 each), rcode (1)
const T_STORED = 0
const T_TTL = 6
const T_LEN = 10
const T_QEND = 12
const T_TTLS = 14
const T_UPSTREAM = 16
const T_TARGETS = 18
const T_RCODE = 20
const META = 21
/** Upstream URLs are kept by index (two characters) in an entry; past this many, the cache starts over. */
const MAX_UPSTREAMS = 0xffff
const NO_TARGETS: readonly string[] = Object.freeze([])

const u16 = (e: string, i: number): number => (e.charCodeAt(i) << 8) | e.charCodeAt(i + 1)
const u32 = (e: string, i: number): number => u16(e, i) * 0x10000 + u16(e, i + 2)
const u48 = (e: string, i: number): number => u16(e, i) * 0x100000000 + u32(e, i + 2)
/** The clock (ns) in whole milliseconds. */
const msOf = (now: bigint): number => Math.floor(Number(now) / 1e6)

/** name, type, class, DO, CD and EDNS presence: what changes the answer an upstream gives. */
export function cacheKey(q: Query): string {
  const bits = (q.dnssecOk ? 1 : 0) | ((q.flags & 0x0010) !== 0 ? 2 : 0) | (q.edns ? 4 : 0)
  return `${q.qtype}/${q.qclass}/${bits}/${q.name}`
}

/**
 * The answer cache (lru-cache for the bound and recency; expiry by our own clock). Positive
 * answers live for their smallest TTL, negative ones (NXDOMAIN, NODATA) by their SOA; anything
 * else (SERVFAIL, REFUSED, truncated, negative without SOA) is not stored.
 */
export class DnsCache {
  readonly settings: CacheSettings
  private readonly lru: LRUCache<string, CacheEntry> | undefined
  private upstreams: string[] = []
  private upstreamIndex = new Map<string, number>()
  private scratch = Buffer.allocUnsafe(1024)   // where an entry is assembled before it becomes one string

  constructor(settings: CacheSettings, private readonly maxUpstreams = MAX_UPSTREAMS) {
    this.settings = settings
    this.lru = settings.maxEntries > 0 ? new LRUCache({ max: settings.maxEntries }) : undefined
  }

  get size(): number {
    return this.lru?.size ?? 0
  }

  /** A live entry, or undefined (an expired one is removed). */
  get(key: string, now: bigint): CacheEntry | undefined {
    const e = this.lru?.get(key)
    if (e === undefined) return undefined
    const m = e.length - META
    if (u48(e, m + T_STORED) + u32(e, m + T_TTL) * 1000 <= msOf(now)) {
      this.lru!.delete(key)
      return undefined
    }
    return e
  }

  /** The response code of an entry's answer. */
  rcode(e: CacheEntry): number {
    return e.charCodeAt(e.length - META + T_RCODE)
  }

  /** The upstream that gave an entry's answer. */
  upstream(e: CacheEntry): string {
    return this.upstreams[u16(e, e.length - META + T_UPSTREAM)]!
  }

  /** The CNAME and HTTPS/SVCB target names of an entry's answer, in order (most answers have none). */
  targets(e: CacheEntry): readonly string[] {
    const m = e.length - META
    const k = u16(e, m + T_TARGETS)
    if (k === 0) return NO_TARGETS
    const out: string[] = []
    let p = u16(e, m + T_LEN) + 2 * u16(e, m + T_TTLS)
    for (let i = 0; i < k; i++) {
      const n = e.charCodeAt(p)
      out.push(e.slice(p + 1, p + 1 + n))
      p += 1 + n
    }
    return out
  }

  /** The TTL (s) an answer may be cached for after the clamps, or -1 when it is not cacheable. */
  ttlFor(scan: Scan): number {
    if (scan.truncated) return -1
    let ttl: number
    if (scan.rcode === RCODE.NOERROR && scan.answers > 0) ttl = scan.minTtl
    else if (scan.rcode === RCODE.NOERROR || scan.rcode === RCODE.NXDOMAIN) ttl = scan.negativeTtl
    else return -1
    if (ttl < 0) return -1
    return this.clamp(ttl)
  }

  private clamp(ttl: number): number {
    const min = Math.ceil(this.settings.minTtl / 1000)
    const max = Math.floor(this.settings.maxTtl / 1000)
    return Math.min(Math.max(ttl, min), max)
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

  /** Store a copy of `reply` (its question ends at `qEnd`; TTL fields clamped) when it is cacheable; returns whether it was. */
  set(key: string, reply: Buffer, qEnd: number, scan: Scan, upstream: string, now: bigint): boolean {
    if (!this.lru) return false
    const ttl = this.ttlFor(scan)
    if (ttl <= 0) return false
    const len = reply.length
    const offs = scan.ttlOffsets
    const targets = scan.targets
    let size = len + 2 * offs.length + META
    for (const t of targets) size += 1 + t.length       // a name read from a reply is at most 253 characters
    if (this.scratch.length < size) this.scratch = Buffer.allocUnsafe(Math.max(size, 2 * this.scratch.length))
    const b = this.scratch
    b.set(reply)
    for (let k = 0; k < offs.length; k++) {
      const off = offs[k]!
      b.writeUInt32BE(this.clamp(b.readUInt32BE(off)), off)
      b.writeUInt16BE(off, len + 2 * k)
    }
    let p = len + 2 * offs.length
    for (const t of targets) {
      b[p] = t.length
      b.write(t, p + 1, 'latin1')
      p += 1 + t.length
    }
    const m = size - META
    b.writeUIntBE(msOf(now), m + T_STORED, 6)
    b.writeUInt32BE(ttl, m + T_TTL)
    b.writeUInt16BE(len, m + T_LEN)
    b.writeUInt16BE(qEnd, m + T_QEND)
    b.writeUInt16BE(offs.length, m + T_TTLS)
    b.writeUInt16BE(this.upstreamId(upstream), m + T_UPSTREAM)
    b.writeUInt16BE(targets.length, m + T_TARGETS)
    b[m + T_RCODE] = scan.rcode
    this.lru.set(key, b.toString('latin1', 0, size))
    return true
  }

  /**
   * The bytes to serve for a hit: the client's ID and question, TTLs counted down (by whole
   * seconds since the answer was stored). The question is copied byte by byte, where
   * `Buffer#copy` would make a view per call: this runs for every cache hit.
   */
  serve(e: CacheEntry, query: Buffer, qEnd: number, now: bigint): Buffer {
    const m = e.length - META
    const len = u16(e, m + T_LEN)
    const out = Buffer.allocUnsafe(len)
    out.write(e, 0, len, 'latin1')
    out[0] = query[0]!
    out[1] = query[1]!
    if (qEnd === u16(e, m + T_QEND)) for (let i = 12; i < qEnd; i++) out[i] = query[i]!   // keeps the asker's letter case
    const elapsed = Math.floor((msOf(now) - u48(e, m + T_STORED)) / 1000)
    if (elapsed > 0) {
      const n = u16(e, m + T_TTLS)
      for (let k = 0; k < n; k++) {
        const off = u16(e, len + 2 * k)
        const t = out.readUInt32BE(off)
        out.writeUInt32BE(t > elapsed ? t - elapsed : 0, off)
      }
    }
    return out
  }
}
