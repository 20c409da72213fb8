import { EntryStore } from './entry-store.js'
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

/** FNV-1a of the whole name, read right to left: the same hash a lookup computes per suffix. */
function hashName(name: string): number {
  let h = SEED
  for (let i = name.length - 1; i >= 0; i--) h = Math.imul(h ^ name.charCodeAt(i), PRIME)
  return h
}

/**
 * The name matcher: every entry is filed under the hash of its name, read right to left. A
 * lookup reads the name once from the right, keeps the hash at each label boundary (so only
 * whole-label suffixes are ever candidates), then probes those suffixes from the full name down
 * to the top-level label, verifying each candidate with a string comparison. No split, slice or
 * regex: a lookup allocates nothing beyond the first materialization of a matched entry.
 *
 * The index is an open-addressing table in one Int32Array (hash and first entry + 1 side by side,
 * one cache line per probe); entries with the same hash are chained through `next`. Entries are
 * stored column-wise (EntryStore).
 */
export class SuffixTrie implements Matcher {
  private readonly store = new EntryStore()
  private table = new Int32Array(2048)  // per slot: [hash, first entry + 1]; 0 = empty slot
  private mask = 1023
  private used = 0
  private next = new Int32Array(1024)
  private hs = new Int32Array(128)     // per lookup: suffix hash at each label boundary
  private st = new Int32Array(128)     // per lookup: where that suffix starts
  private readonly out: Entry[] = []

  /** Number of entries (duplicates are not counted twice). */
  get size(): number { return this.store.length }

  /** Add an entry object as it is (it is returned by lookups). False if it duplicates one. */
  add(entry: Entry): boolean {
    return this.insert(entry.list, entry.name, entry.kind, entry.allow, entry.pattern, entry.source, -1, entry.sigma, entry)
  }

  /**
   * Add an entry from its parts without building an object (the loaders' path). `name` must be
   * normalized; the source reads `file:line` (`file` alone when line < 0). Returns false when the
   * same list already has this name with the same kind and allow flag, or when the name is empty.
   */
  insert(list: string, name: string, kind: MatchKind, allow: boolean, pattern: string,
    file: string, line: number, sigma?: SigmaRef, obj?: Entry): boolean {
    if (name.length === 0) return false
    const listId = this.store.listId(list)
    const h = hashName(name)
    if ((this.used + 1) * 2 > this.mask + 1) this.rehash((this.mask + 1) * 2)
    const t = this.table
    let s = slotOf(h, this.mask)
    while (t[2 * s + 1] !== 0 && t[2 * s] !== h) s = (s + 1) & this.mask
    let tail = -1
    for (let e = t[2 * s + 1]! - 1; e >= 0; e = this.next[e]! - 1) {
      if (this.store.names[e] === name && this.store.sameKey(e, listId, kind, allow)) return false
      tail = e
    }
    const i = this.store.push(listId, name, kind, allow, pattern, file, line, sigma, obj)
    if (i >= this.next.length) {
      const n = new Int32Array(this.next.length * 2)
      n.set(this.next)
      this.next = n
    }
    this.next[i] = 0
    if (tail < 0) { t[2 * s] = h; t[2 * s + 1] = i + 1; this.used++ } else this.next[tail] = i + 1
    return true
  }

  private rehash(cap: number): void {
    const old = this.table
    const t = new Int32Array(cap * 2)
    const mask = cap - 1
    for (let j = 0; j < old.length; j += 2) {
      if (old[j + 1] === 0) continue
      let s = slotOf(old[j]!, mask)
      while (t[2 * s + 1] !== 0) s = (s + 1) & mask
      t[2 * s] = old[j]!
      t[2 * s + 1] = old[j + 1]!
    }
    this.table = t
    this.mask = mask
  }

  /**
   * Every entry matching the normalized `name`, the most specific suffix first (entries of the
   * same name in the order added). The array is reused by the next call; a miss returns a
   * shared empty array.
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
    const out = this.out
    out.length = 0
    const { table, mask } = this
    for (let k = n - 1; k >= 0; k--) {
      const hk = hs[k]!
      let s = slotOf(hk, mask)
      for (;;) {
        const head = table[2 * s + 1]!
        if (head === 0) break
        if (table[2 * s] === hk) { this.collect(head - 1, name, st[k]!, out); break }
        s = (s + 1) & mask
      }
    }
    return out.length === 0 ? EMPTY : out
  }

  /** Verify the chain of entries filed under one suffix hash and keep those that match. */
  private collect(first: number, name: string, start: number, out: Entry[]): void {
    const store = this.store
    const names = store.names
    const want = name.length - start
    for (let e = first; e >= 0; e = this.next[e]! - 1) {
      const en = names[e]!
      if (en.length !== want || !name.endsWith(en)) continue
      const kind = store.kindCode(e)
      if (kind === 0 ? start === 0 : kind === 2 ? start > 0 : true) out.push(store.entry(e))
    }
  }

  /** Names of more than 127 labels are not normalized, but a lookup still answers them. */
  private growScratch(): void {
    const hs = new Int32Array(this.hs.length * 2)
    const st = new Int32Array(this.st.length * 2)
    hs.set(this.hs); st.set(this.st)
    this.hs = hs; this.st = st
  }
}
