import { EntryStore, KIND_CODE, REC } from './entry-store.js'
import type { Entry, Matcher, MatchKind, SigmaRef } from './types.js'

const SEED = 0x811c9dc5 | 0           // FNV-1a offset basis
const PRIME = 0x01000193              // FNV-1a prime
const DOT = 46
export const MAX_NAME = 253            // RFC 1035: a normalized name is at most 253 characters
/** The table (its length in words of 4 characters) a name of `len` characters is filed in. */
export const wordsOf = (len: number): number => (len + 3) >>> 2
export const MAX_WORDS = wordsOf(MAX_NAME)
const EMPTY: readonly Entry[] = Object.freeze([])
/** Word 0 of a record: bits 0-1 the first entry's kind, bit 2 HAS_NEXT, bits 3-4 the name's length mod 4, bits 5-31 the key. */
const HAS_NEXT = 4
const KEY = ~31
const NOT_KIND = ~7

/** Spread the bits of a key and scale it to a slot in [0, cap) (cap need not be a power of 2). */
function slotOf(h: number, cap: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  return Math.floor((h >>> 0) / 4294967296 * cap)
}

/**
 * The filter of a key is blocked: one 32-bit word, chosen by the top bits of one mix
 * (`shift` = 32 - log2(words)), and two bits in it from another mix, both independent of the
 * slot. A name may be in a table only if both its bits are set.
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

/**
 * The names of one length in words (4 characters): open addressing with linear probing over
 * fixed-size records of `rw` ints, [word 0, first entry + 1 (0 = empty slot), the name's
 * characters four to an int, zero-filled]. A probe finds the key and the whole name in one place,
 * so a hit waits for one memory read, not one for the slot and another for the name.
 */
class NameTable {
  readonly rw: number
  cap = 16
  used = 0
  t: Int32Array
  /** The Entry of each slot's first entry, once built (fetched alongside the record). */
  heads: (Entry | undefined)[]

  /** `names`: room for this many names before the first growth. */
  constructor(words: number, names = 0) {
    this.rw = words + 2
    this.cap = Math.max(16, Math.ceil((names + 1) * 4 / 3))
    this.t = new Int32Array(this.cap * this.rw)
    this.heads = new Array<Entry | undefined>(this.cap).fill(undefined)
  }
}

/**
 * hashName of a name of at most 253 characters, in the same pass as an ASCII check (undefined for
 * a name with a character past ASCII) and as its packing into `out`: four characters to an int,
 * from the end. Int k holds the characters 4k to 4k+3 places from the end, the last character in
 * the low byte, zeros past the name's start. Every suffix of a name packs as the first ints of
 * the name's packing (its last int masked), so a lookup packs its name once, while it hashes it,
 * and compares any suffix without reading the string again.
 */
function hashPack(name: string, out: Int32Array): number | undefined {
  const len = name.length
  let h = SEED
  let or = 0
  let acc = 0
  for (let d = 0; d < len; d++) {
    const c = name.charCodeAt(len - 1 - d)
    or |= c
    h = Math.imul(h ^ c, PRIME)
    acc |= c << ((d & 3) << 3)
    if ((d & 3) === 3) { out[d >>> 2] = acc; acc = 0 }
  }
  if ((len & 3) !== 0) out[len >>> 2] = acc
  return or > 127 ? undefined : h
}

/**
 * The name matcher: every entry is filed under its name, read right to left. A lookup reads the
 * name once from the right, keeps the hash at each label boundary (so only whole-label suffixes
 * are ever candidates), then probes those suffixes from the full name down to the top-level label
 * and verifies each candidate in full (a word at a time). No split, slice or regex: a lookup
 * allocates nothing beyond the first materialization of a matched entry.
 *
 * Index: one table per name length in words (NameTable), each record holding its name, so a hit
 * costs one read of the record from memory (a table of offsets into a separate name store cost
 * two, one after the other: about 250 ns more per hit with a million entries). A suffix whose
 * length has no table costs nothing. Before the table, a blocked bit filter (at least 8 bits per
 * name, 2 set per name in one word; 1 MiB for 1M names) turns most misses away; it is kept small
 * to stay in cache, because a hit also probes the name's other suffixes.
 */
export class SuffixTrie implements Matcher {
  private readonly store: EntryStore
  /** NameTable per length in words (1 to 64), or undefined while no name has that length. */
  private readonly tables: (NameTable | undefined)[] = new Array<NameTable | undefined>(MAX_WORDS + 1).fill(undefined)
  private filter: Int32Array
  private shift: number                 // 32 - log2(filter words)
  private names = 0                     // distinct names in the tables
  private readonly expected: number
  private hs = new Int32Array(128)     // per lookup: suffix hash at each label boundary
  private st = new Int32Array(128)     // per lookup: where that suffix starts
  private qw = new Int32Array(64)      // per lookup (and insert): the name packed from its end (hashPack)
  private tmp: Entry[] = new Array<Entry>(16)   // per lookup: matches found so far
  private readonly results: Entry[][] = []      // the array returned for n matches, reused

  /** `expected`: about how many entries will be added (sizes the first filter and entry columns; both grow past it). */
  constructor(expected = 256) {
    this.store = new EntryStore(expected)
    this.expected = expected
    let words = 128
    while (words * 4 < expected) words *= 2
    this.filter = new Int32Array(words)
    this.shift = 32 - Math.log2(words)
  }

  /**
   * Make room ahead: `names` names of `words` words (4 characters) each are about to be added. A
   * table grown while a big list loads moves every record it has, in one go (a quarter of a second
   * for a million): a loader that knows the sizes ahead asks for them here, and a table made now
   * never moves unless the count was short. A table that exists already is left as it is.
   */
  reserve(words: number, names: number): void {
    if (words >= 1 && words <= MAX_WORDS && names > 0) this.tables[words] ??= new NameTable(words, names)
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
   * not ASCII or over 253 characters (so not a normalized name).
   */
  insert(list: string, name: string, kind: MatchKind, allow: boolean, pattern: string,
    file: string, line: number, sigma?: SigmaRef, obj?: Entry): boolean {
    const len = name.length
    if (len === 0 || len > MAX_NAME) return false
    const h = hashPack(name, this.qw)
    if (h === undefined) return false
    const listId = this.store.listId(list)
    const words = wordsOf(len)
    const tbl = this.tables[words] ??= new NameTable(words)
    if ((tbl.used + 1) * 4 > tbl.cap * 3) this.grow(tbl)
    const key = h & KEY
    const probe = key | (len & 3) << 3
    const { t, rw, cap } = tbl
    let s = slotOf(key, cap)
    for (;;) {
      const b = s * rw
      const head = t[b + 1]!
      if (head === 0) break
      if ((t[b]! & NOT_KIND) === probe && this.verify(t, b + 2, len)) {
        let tail = -1
        for (let e = head - 1; e >= 0; e = this.store.rec[e * REC + 1]! - 1) {
          if (this.store.same(e, listId, kind, allow)) return false
          tail = e
        }
        this.store.link(tail, this.store.push(listId, name, kind, allow, pattern, file, line, sigma, obj))
        t[b]! |= HAS_NEXT
        return true
      }
      if (++s === cap) s = 0
    }
    const i = this.store.push(listId, name, kind, allow, pattern, file, line, sigma, obj)
    const b = s * rw
    t[b] = probe | KIND_CODE[kind]
    t[b + 1] = i + 1
    for (let k = 0; k < words; k++) t[b + 2 + k] = this.qw[k]!
    tbl.used++
    this.filter[wordOf(key, this.shift)]! |= bitsOf(key)
    if (++this.names > this.filter.length * 4) this.growFilter()
    return true
  }

  /**
   * Half as many slots again (the load stays between 1/2 and 3/4), or, if more and once a
   * thousand names tell how lengths are spread, room at a load of 2/3 for this table's share so
   * far of the entries expected, up to four times the slots it has: a big load then moves each
   * record a few times, not twenty, and a count that was far too high (the loader counts lines,
   * and a Sigma rule has a dozen per value) costs at most that factor. The Entries built move
   * with their records.
   */
  private grow(tbl: NameTable): void {
    const { t: old, heads: oldHeads, rw, cap: oldCap } = tbl
    const share = this.names < 1024 ? 0 : Math.min(4 * oldCap, Math.ceil(tbl.used / this.names * this.expected * 1.5))
    const cap = Math.max(oldCap + (oldCap >>> 1), share)
    const t = new Int32Array(cap * rw)
    const heads = new Array<Entry | undefined>(cap).fill(undefined)
    for (let o = 0; o < oldCap; o++) {
      const ob = o * rw
      if (old[ob + 1] === 0) continue
      let s = slotOf(old[ob]! & KEY, cap)
      while (t[s * rw + 1] !== 0) if (++s === cap) s = 0
      const b = s * rw
      for (let k = 0; k < rw; k++) t[b + k] = old[ob + k]!
      heads[s] = oldHeads[o]
    }
    tbl.t = t
    tbl.heads = heads
    tbl.cap = cap
  }

  /** Twice the filter's words, refilled from every table's keys. */
  private growFilter(): void {
    const filter = new Int32Array(this.filter.length * 2)
    const shift = this.shift - 1
    for (const tbl of this.tables) {
      if (tbl === undefined) continue
      const { t, rw } = tbl
      for (let b = 0; b < t.length; b += rw) {
        if (t[b + 1] === 0) continue
        const key = t[b]! & KEY
        filter[wordOf(key, shift)]! |= bitsOf(key)
      }
    }
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
    if (len === 0 || this.names === 0) return EMPTY
    let hs = this.hs
    let st = this.st
    let n = 0
    let h = SEED
    let or = 0
    let acc = 0
    if (len > this.qw.length * 4) this.qw = new Int32Array((len + 3) >>> 2)
    const qw = this.qw
    for (let i = len - 1, d = 0; i >= 0; i--, d++) {
      const c = name.charCodeAt(i)
      or |= c
      if (c === DOT) {
        if (n === hs.length - 1) { this.growScratch(); hs = this.hs; st = this.st }
        hs[n] = h; st[n] = i + 1; n++
      }
      h = Math.imul(h ^ c, PRIME)
      acc |= c << ((d & 3) << 3)
      if ((d & 3) === 3) { qw[d >>> 2] = acc; acc = 0 }
    }
    if ((len & 3) !== 0) qw[len >>> 2] = acc
    hs[n] = h; st[n] = 0; n++
    // A suffix holding a character past ASCII cannot be an entry's name (and a character past
    // 255 spills into the next byte of its int, further from the end than the suffix reaches):
    // only the suffixes right of the last one are probed.
    const wide = or > 127 ? lastWide(name) : -1
    let found = 0
    const { tables, filter, shift } = this
    for (let k = n - 1; k >= 0; k--) {
      const start = st[k]!
      const sl = len - start
      if (start <= wide || sl > MAX_NAME) continue
      const tbl = tables[(sl + 3) >>> 2]
      if (tbl === undefined) continue
      const key = hs[k]! & KEY
      const bits = bitsOf(key)
      if ((filter[wordOf(key, shift)]! & bits) !== bits) continue
      const probe = key | (sl & 3) << 3
      const { t, rw, cap } = tbl
      let s = slotOf(key, cap)
      for (;;) {
        const b = s * rw
        if (t[b + 1] === 0) break
        if ((t[b]! & NOT_KIND) === probe) {
          const obj = tbl.heads[s]          // loaded now, so it arrives with the record
          if (this.verify(t, b + 2, sl)) { found = this.collect(tbl, s, obj, name, start, found); break }
        }
        if (++s === cap) s = 0
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
   * The entries of the record in slot s, whose name equals `name` from `start` on, that match a
   * name starting there (their kind allows it); they go to tmp. Returns the new count. The first
   * entry's kind is in the record; the rest of the chain (if the record says there is one) is
   * read from the entry records.
   */
  private collect(tbl: NameTable, s: number, obj: Entry | undefined, name: string, start: number, found: number): number {
    const t = tbl.t
    const b = s * tbl.rw
    const w0 = t[b]!
    const first = t[b + 1]! - 1
    if (kindFits(w0 & 3, start)) {
      found = this.push(found, obj ?? (tbl.heads[s] = this.store.entry(first, suffix(name, start))))
    }
    if ((w0 & HAS_NEXT) === 0) return found
    const rec = this.store.rec
    for (let e = rec[first * REC + 1]! - 1; e >= 0; e = rec[e * REC + 1]! - 1) {
      if (kindFits(rec[e * REC]! & 3, start)) found = this.push(found, this.store.entry(e, suffix(name, start)))
    }
    return found
  }

  /**
   * Does the name stored from int w of t equal the last `len` characters of the name in `qw`
   * (hashPack)? Compared an int at a time (the record's length in ints and the length mod 4 were
   * checked by the caller), the last int masked to the suffix's characters, with no branch on what
   * was read: a branch per character stalled the lookup on the record's read.
   */
  private verify(t: Int32Array, w: number, len: number): boolean {
    const qw = this.qw
    const whole = len >>> 2
    let diff = 0
    for (let k = 0; k < whole; k++) diff |= t[w + k]! ^ qw[k]!
    if ((len & 3) !== 0) diff |= t[w + whole]! ^ (qw[whole]! & ((1 << ((len & 3) << 3)) - 1))
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

/** May an entry of this kind code (0 exact, 1 domain, 2 subdomains) match a name whose suffix from `start` is its name? */
function kindFits(kind: number, start: number): boolean {
  return kind === 0 ? start === 0 : kind === 1 || start !== 0
}

function suffix(name: string, start: number): string {
  return start === 0 ? name : name.slice(start)
}

/** Index of the last character of `name` past ASCII (the caller knows there is one). */
function lastWide(name: string): number {
  let i = name.length - 1
  while (name.charCodeAt(i) <= 127) i--
  return i
}
