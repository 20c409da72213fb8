import { LRUCache } from 'lru-cache'
import type { Scan } from './scan.js'
import { RCODE, type Query } from './wire.js'

const NS_PER_S = 1_000_000_000n

export interface CacheSettings {
  readonly maxEntries: number
  /** Milliseconds. */
  readonly minTtl: number
  readonly maxTtl: number
}

/** A cached raw answer: its bytes with TTLs already clamped, and what inspection needs. */
export interface CacheEntry {
  readonly buf: Buffer
  readonly qEnd: number
  readonly storedAt: bigint
  readonly expiresAt: bigint
  readonly ttlOffsets: readonly number[]
  readonly targets: readonly string[]
  readonly rcode: number
  readonly upstream: string
}

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

  constructor(settings: CacheSettings) {
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
    if (e.expiresAt <= now) {
      this.lru!.delete(key)
      return undefined
    }
    return e
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

  /** Store a copy of `reply` (its question ends at `qEnd`; TTL fields clamped) when it is cacheable; returns whether it was. */
  set(key: string, reply: Buffer, qEnd: number, scan: Scan, upstream: string, now: bigint): boolean {
    if (!this.lru) return false
    const ttl = this.ttlFor(scan)
    if (ttl <= 0) return false
    const buf = Buffer.from(reply)
    for (const off of scan.ttlOffsets) buf.writeUInt32BE(this.clamp(buf.readUInt32BE(off)), off)
    this.lru.set(key, {
      buf, qEnd, storedAt: now, expiresAt: now + BigInt(ttl) * NS_PER_S, ttlOffsets: scan.ttlOffsets,
      targets: scan.targets, rcode: scan.rcode, upstream,
    })
    return true
  }

  /**
   * The bytes to serve for a hit: the client's ID and question, TTLs counted down. Copied byte by
   * byte where `Buffer#copy` would make a view per call, and the age taken from one BigInt
   * subtraction in float seconds, with no BigInt division: this runs for every cache hit.
   */
  serve(e: CacheEntry, query: Buffer, qEnd: number, now: bigint): Buffer {
    const src = e.buf
    const out = Buffer.allocUnsafe(src.length)
    out.set(src)
    out[0] = query[0]!
    out[1] = query[1]!
    if (qEnd === e.qEnd) for (let i = 12; i < qEnd; i++) out[i] = query[i]!   // keeps the asker's letter case
    const elapsed = Math.floor(Number(now - e.storedAt) / 1e9)
    if (elapsed > 0) {
      const offs = e.ttlOffsets
      for (let k = 0; k < offs.length; k++) {
        const off = offs[k]!
        const t = out.readUInt32BE(off)
        out.writeUInt32BE(t > elapsed ? t - elapsed : 0, off)
      }
    }
    return out
  }
}
