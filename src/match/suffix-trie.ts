import { EntryStore, REC } from './entry-store.js'
import type { Entry, Matcher, MatchKind, SigmaRef } from './types.js'

const SEED = 0x811c9dc5 | 0           // FNV-1a offset basis
const PRIME = 0x01000193              // FNV-1a prime
const DOT = 46
const EMPTY: readonly Entry[] = Object.freeze([])

/** Spread the bits of a suffix hash before it picks a slot. */
function slotOf(h: number, mask: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  return (h ^ (h >>> 13)) & mask
}

/** The filter bit of a suffix hash: independent of its slot, 4 bits per table slot. */
function bitOf(h: number, bitMask: number): number {
  return (Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 7) & bitMask
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
 * to the top-level label and verifies each candidate byte by byte. No split, slice or regex: a
 * lookup allocates nothing beyond the first materialization of a matched entry.
 *
 * Index: a bit filter (4 bits per slot, a few hundred KB per 100k names, so it stays in cache)
 * turns most misses away before the table; the table is open addressing in one Int32Array (hash
 * and first entry + 1 side by side, one cache line per probe); entries with the same hash are
 * chained through the entry records (EntryStore).
 */
export class SuffixTrie implements Matcher {
  private readonly store: EntryStore
  private table = new Int32Array(2048)  // per slot: [hash, first entry + 1]; 0 = empty slot
  private mask = 1023
  private filter = new Int32Array(128)  // 4 bits per slot
  private bitMask = 4095
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
   * same list already has this name with the same kind and allow flag, or when the name is empty
   * or not ASCII (so not a normalized name).
   */
  insert(list: string, name: string, kind: MatchKind, allow: boolean, pattern: string,
    file: string, line: number, sigma?: SigmaRef, obj?: Entry): boolean {
    const h = hashAscii(name)
    if (h === undefined || name.length === 0) return false
    const listId = this.store.listId(list)
    if ((this.used + 1) * 2 > this.mask + 1) this.rehash((this.mask + 1) * 2)
    const t = this.table
    let s = slotOf(h, this.mask)
    while (t[2 * s + 1] !== 0 && t[2 * s] !== h) s = (s + 1) & this.mask
    let tail = -1
    for (let e = t[2 * s + 1]! - 1; e >= 0; e = this.store.rec[e * REC + 1]! - 1) {
      if (this.store.same(e, name, listId, kind, allow)) return false
      tail = e
    }
    const i = this.store.push(listId, name, kind, allow, pattern, file, line, sigma, obj)
    if (tail >= 0) { this.store.rec[tail * REC + 1] = i + 1; return true }
    t[2 * s] = h
    t[2 * s + 1] = i + 1
    this.used++
    const b = bitOf(h, this.bitMask)
    this.filter[b >>> 5]! |= 1 << (b & 31)
    return true
  }

  private rehash(cap: number): void {
    const old = this.table
    const t = new Int32Array(cap * 2)
    const mask = cap - 1
    const filter = new Int32Array(cap / 8)
    const bitMask = cap * 4 - 1
    for (let j = 0; j < old.length; j += 2) {
      if (old[j + 1] === 0) continue
      const h = old[j]!
      let s = slotOf(h, mask)
      while (t[2 * s + 1] !== 0) s = (s + 1) & mask
      t[2 * s] = h
      t[2 * s + 1] = old[j + 1]!
      const b = bitOf(h, bitMask)
      filter[b >>> 5]! |= 1 << (b & 31)
    }
    this.table = t
    this.mask = mask
    this.filter = filter
    this.bitMask = bitMask
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
    const { table, mask, filter, bitMask } = this
    for (let k = n - 1; k >= 0; k--) {
      const hk = hs[k]!
      const b = bitOf(hk, bitMask)
      if (((filter[b >>> 5]! >>> (b & 31)) & 1) === 0) continue
      let s = slotOf(hk, mask)
      for (;;) {
        const head = table[2 * s + 1]!
        if (head === 0) break
        if (table[2 * s] === hk) { found = this.collect(head - 1, name, st[k]!, found); break }
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

  /** Verify the chain of entries filed under one suffix hash; matches go to tmp. Returns the new count. */
  private collect(first: number, name: string, start: number, found: number): number {
    const { rec, blob } = this.store
    const want = name.length - start
    for (let e = first; e >= 0; e = rec[e * REC + 1]! - 1) {
      const r = e * REC
      if (rec[r + 3] !== want) continue
      const kind = rec[r]! & 3
      if (kind === 0 ? start !== 0 : kind === 2 && start === 0) continue
      const off = rec[r + 2]!
      let j = 0
      while (j < want && blob[off + j] === name.charCodeAt(start + j)) j++
      if (j !== want) continue
      if (found === this.tmp.length) this.tmp = this.tmp.concat(new Array<Entry>(found))
      this.tmp[found++] = this.store.entry(e)
    }
    return found
  }

  /** Names of more than 127 labels are not normalized, but a lookup still answers them. */
  private growScratch(): void {
    const hs = new Int32Array(this.hs.length * 2)
    const st = new Int32Array(this.st.length * 2)
    hs.set(this.hs); st.set(this.st)
    this.hs = hs; this.st = st
  }
}
