import { EntryStore, HAS_NEXT, HDR, REC } from './entry-store.js'
import type { Entry, Matcher, MatchKind, SigmaRef } from './types.js'

const SEED = 0x811c9dc5 | 0           // FNV-1a offset basis
const PRIME = 0x01000193              // FNV-1a prime
const DOT = 46
const MAX_NAME = 253                   // RFC 1035: a normalized name is at most 253 characters
const EMPTY: readonly Entry[] = Object.freeze([])
/** Shift of the 1st..4th byte of a word in the platform's byte order (verify packs names into words). */
const BE = new Uint8Array(new Uint32Array([1]).buffer)[3]!   // 1 on a big-endian platform, else 0
const B0 = 24 * BE
const B1 = 8 + 8 * BE
const B2 = 16 - 8 * BE
const B3 = 24 - 24 * BE

/** Spread the bits of a suffix hash before it picks a slot. */
function slotOf(h: number, mask: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  return (h ^ (h >>> 13)) & mask
}

/**
 * The filter of a suffix hash is blocked: one 32-bit word, chosen by the top bits of one mix
 * (`shift` = 32 - log2(words)), and two bits in it from another mix, both independent of the
 * slot. A suffix may be in the table only if both its bits are set.
 */
function wordOf(h: number, shift: number): number {
  return Math.imul(h ^ (h >>> 13), 0x9e3779b1) >>> shift
}
function bitsOf(h: number): number {
  const x = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d)
  return (1 << (x >>> 27)) | (1 << ((x >>> 22) & 31))
}

/** FNV-1a of the whole name, read right to left: the same hash a lookup computes per suffix. */
export function hashName(name: string): number {
  let h = SEED
  for (let i = name.length - 1; i >= 0; i--) h = Math.imul(h ^ name.charCodeAt(i), PRIME)
  return h
}

/** hashName in the same pass as an ASCII check: undefined for a name with a non-ASCII character. */
function hashAscii(name: string): number | undefined {
  let h = SEED
  let or = 0
  for (let i = name.length - 1; i >= 0; i--) {
    const c = name.charCodeAt(i)
    or |= c
    h = Math.imul(h ^ c, PRIME)
  }
  return or > 127 ? undefined : h
}

/**
 * The name matcher: every entry is filed under the hash of its name, read right to left. A
 * lookup reads the name once from the right, keeps the hash at each label boundary (so only
 * whole-label suffixes are ever candidates), then probes those suffixes from the full name down
 * to the top-level label and verifies each candidate in full (a word at a time). No split, slice or regex: a
 * lookup allocates nothing beyond the first materialization of a matched entry.
 *
 * Index: a blocked bit filter (4 bits per slot, 2 set per suffix in one word: about 5 % false
 * positives at the table's fullest, 1.5 % at its emptiest; 1 MiB for 1M names) turns most misses
 * away before the table. Its size is set by cache residency, not by false positives: a hit also
 * probes the name's other suffixes, and at 8 bits per slot (2 MiB for 1M names) each of those
 * probes went out of cache, which made a 50/50 hit/miss lookup about 12 % slower. The table is
 * open addressing in one Int32Array: per slot the suffix hash and the blob offset of the first entry's name, whose header (length, kind,
 * entry index) sits just before it, so a probe and the check of its first entry wait for two
 * memory reads (entries with the same hash are chained through the entry records, EntryStore).
 * The Entry object of a slot's first entry is kept in an array indexed by slot: its address is
 * known from the hash alone, so it is fetched alongside the probe instead of after it.
 */
export class SuffixTrie implements Matcher {
  private readonly store: EntryStore
  private table = new Int32Array(2048)  // per slot: [hash, blob offset of the first entry's name]; 0 = empty
  private heads: (Entry | undefined)[] = new Array<Entry | undefined>(1024).fill(undefined) // Entry of each slot's first entry, once built
  private mask = 1023
  private filter = new Int32Array(128)  // 4 bits per slot
  private shift = 25                    // 32 - log2(filter words)
  private used = 0
  private hs = new Int32Array(128)     // per lookup: suffix hash at each label boundary
  private st = new Int32Array(128)     // per lookup: where that suffix starts
  private tmp: Entry[] = new Array<Entry>(16)   // per lookup: matches found so far
  private readonly results: Entry[][] = []      // the array returned for n matches, reused

  /**
   * `expected`: about how many entries will be added, and `nameBytes` their total name length
   * (both only size the first allocation; it grows past them). Sizing up front keeps a big load
   * from leaving freed, doubled arrays behind in the process's memory.
   */
  constructor(expected = 256, nameBytes = expected * 24) {
    this.store = new EntryStore(expected, nameBytes)
    let cap = 1024
    while (cap < expected * 2) cap *= 2
    if (cap > 1024) this.rehash(cap)
  }

  /** Number of entries (duplicates are not counted twice). */
  get size(): number { return this.store.length }

  /** Add an entry object as it is (lookups return this object). False if it duplicates one. */
  add(entry: Entry): boolean {
    return this.insert(entry.list, entry.name, entry.kind, entry.allow, entry.pattern, entry.source, -1, entry.sigma, entry)
  }

  /**
   * Add an entry from its parts without building an object (the loaders' path). `name` must be
   * normalized; the source reads `file:line` (`file` alone when line < 0). Returns false when the
   * same list already has this name with the same kind and allow flag, or when the name is empty,
   * not ASCII or over 253 characters (so not a normalized name; the name's header keeps its
   * length in one byte).
   */
  insert(list: string, name: string, kind: MatchKind, allow: boolean, pattern: string,
    file: string, line: number, sigma?: SigmaRef, obj?: Entry): boolean {
    const h = hashAscii(name)
    if (h === undefined || name.length === 0 || name.length > MAX_NAME) return false
    const listId = this.store.listId(list)
    if ((this.used + 1) * 2 > this.mask + 1) this.rehash((this.mask + 1) * 2)
    const t = this.table
    let s = slotOf(h, this.mask)
    while (t[2 * s + 1] !== 0 && t[2 * s] !== h) s = (s + 1) & this.mask
    let tail = -1
    for (let e = this.headOf(s); e >= 0; e = this.store.rec[e * REC + 1]! - 1) {
      if (this.store.same(e, name, listId, kind, allow)) return false
      tail = e
    }
    const i = this.store.push(listId, name, kind, allow, pattern, file, line, sigma, obj)
    if (tail >= 0) { this.store.link(tail, i); return true }
    t[2 * s] = h
    t[2 * s + 1] = this.store.rec[i * REC + 2]!   // never 0: a header comes first
    this.used++
    this.filter[wordOf(h, this.shift)]! |= bitsOf(h)
    return true
  }

  private rehash(cap: number): void {
    const old = this.table
    const oldHeads = this.heads
    const t = new Int32Array(cap * 2)
    const heads = new Array<Entry | undefined>(cap).fill(undefined)
    const mask = cap - 1
    const filter = new Int32Array(cap / 8)
    const shift = 32 - Math.log2(cap / 8)
    for (let j = 0; j < old.length; j += 2) {
      if (old[j + 1] === 0) continue
      const h = old[j]!
      let s = slotOf(h, mask)
      while (t[2 * s + 1] !== 0) s = (s + 1) & mask
      t[2 * s] = h
      t[2 * s + 1] = old[j + 1]!
      heads[s] = oldHeads[j >>> 1]
      filter[wordOf(h, shift)]! |= bitsOf(h)
    }
    this.table = t
    this.heads = heads
    this.mask = mask
    this.filter = filter
    this.shift = shift
  }

  /**
   * Every entry matching the normalized `name`, the most specific suffix first (entries of the
   * same name in the order added). The array is reused by later calls (one array per result
   * count); a miss returns a shared frozen empty array.
   */
  lookup(name: string): readonly Entry[] {
    const len = name.length
    if (len === 0 || this.used === 0) return EMPTY
    let hs = this.hs
    let st = this.st
    let n = 0
    let h = SEED
    for (let i = len - 1; i >= 0; i--) {
      const c = name.charCodeAt(i)
      if (c === DOT) {
        if (n === hs.length - 1) { this.growScratch(); hs = this.hs; st = this.st }
        hs[n] = h; st[n] = i + 1; n++
      }
      h = Math.imul(h ^ c, PRIME)
    }
    hs[n] = h; st[n] = 0; n++
    let found = 0
    const { table, mask, filter, shift } = this
    for (let k = n - 1; k >= 0; k--) {
      const hk = hs[k]!
      const bits = bitsOf(hk)
      if ((filter[wordOf(hk, shift)]! & bits) !== bits) continue
      let s = slotOf(hk, mask)
      for (;;) {
        const off = table[2 * s + 1]!
        if (off === 0) break
        if (table[2 * s] === hk) { found = this.collectSlot(s, off, name, st[k]!, found); break }
        s = (s + 1) & mask
      }
    }
    return found === 0 ? EMPTY : this.result(found)
  }

  /** The n matches in the array kept for n results (setting an array's length costs a runtime call). */
  private result(n: number): readonly Entry[] {
    let res = this.results[n]
    if (res === undefined) {
      res = this.tmp.slice(0, n)
      this.results[n] = res
    }
    const tmp = this.tmp
    for (let i = 0; i < n; i++) res[i] = tmp[i]!
    return res
  }

  /**
   * Verify the entries filed under table slot s, whose first entry's name is at `off` (the suffix
   * of `name` from `start` has the slot's hash); matches go to tmp. Returns the new count. The
   * first entry is checked from its blob header, the rest of the chain (if its header says there
   * is one) from the entry records.
   */
  private collectSlot(s: number, off: number, name: string, start: number, found: number): number {
    const obj = this.heads[s]          // loaded now, so it arrives with the name bytes
    const blob = this.store.blob
    const kind = blob[off - HDR + 1]!
    if (this.verify(blob[off - HDR]!, kind & 3, off, name, start)) {
      found = this.push(found, obj ?? (this.heads[s] = this.store.entry(blob.readUInt32LE(off - 4))))
    }
    if ((kind & HAS_NEXT) === 0) return found
    const rec = this.store.rec
    for (let e = rec[blob.readUInt32LE(off - 4) * REC + 1]! - 1; e >= 0; e = rec[e * REC + 1]! - 1) {
      const r = e * REC
      if (this.verify(rec[r + 3]!, rec[r]! & 3, rec[r + 2]!, name, start)) found = this.push(found, this.store.entry(e))
    }
    return found
  }

  /** Index of the first entry filed under slot s, -1 for an empty slot. */
  private headOf(s: number): number {
    const off = this.table[2 * s + 1]!
    return off === 0 ? -1 : this.store.blob.readUInt32LE(off - 4)
  }

  /**
   * Does the entry of this length, kind and name offset match `name` from `start` on? The name is
   * compared a word at a time (EntryStore keeps names word-aligned and zero-filled to a whole
   * word), with no branch on what was read: a byte loop issued one load per character, all
   * waiting on the same cache miss, and its exit branch on the bytes stalled the lookup until
   * the miss was served.
   */
  private verify(len: number, kind: number, off: number, name: string, start: number): boolean {
    const end = name.length
    if (len !== end - start) return false
    if (kind === 0 ? start !== 0 : kind === 2 && start === 0) return false
    const b32 = this.store.blob32
    let w = off >>> 2
    let diff = 0
    let j = start
    for (; j + 4 <= end; j += 4) {
      diff |= b32[w++]! ^ (name.charCodeAt(j) << B0 | name.charCodeAt(j + 1) << B1 | name.charCodeAt(j + 2) << B2 | name.charCodeAt(j + 3) << B3)
    }
    if (j < end) {
      let last = name.charCodeAt(j) << B0
      if (j + 1 < end) last |= name.charCodeAt(j + 1) << B1
      if (j + 2 < end) last |= name.charCodeAt(j + 2) << B2
      diff |= b32[w]! ^ last
    }
    return diff === 0
  }

  private push(found: number, e: Entry): number {
    if (found === this.tmp.length) this.tmp = this.tmp.concat(new Array<Entry>(found))
    this.tmp[found] = e
    return found + 1
  }

  /** Names of more than 127 labels are not normalized, but a lookup still answers them. */
  private growScratch(): void {
    const hs = new Int32Array(this.hs.length * 2)
    const st = new Int32Array(this.st.length * 2)
    hs.set(this.hs); st.set(this.st)
    this.hs = hs; this.st = st
  }
}
