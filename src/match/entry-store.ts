import type { Entry, MatchKind, SigmaRef } from './types.js'

const KINDS: readonly MatchKind[] = ['exact', 'domain', 'subdomains']
export const KIND_CODE: Readonly<Record<MatchKind, number>> = { exact: 0, domain: 1, subdomains: 2 }

/**
 * How a pattern is rebuilt from the name: prefix + name + suffix. Entries whose pattern fits one
 * of these store no pattern string; the others keep theirs in a side map (style OTHER).
 */
const STYLES: readonly (readonly [string, string])[] = [
  ['', ''], ['*.', ''], ['||', '^'], ['@@||', '^'], ['0.0.0.0 ', ''], ['127.0.0.1 ', ''],
]
const OTHER = 7
const ALLOW_BIT = 4
/** Ints per entry in `rec`: meta (bits 0-1 kind, 2 allow, 3-5 pattern style, 8+ list), next + 1. */
export const REC = 2

function styleOf(pattern: string, name: string): number {
  if (pattern === name) return 0
  for (let s = 0; s < STYLES.length; s++) {
    const [pre, suf] = STYLES[s]!
    if (pattern.length === pre.length + name.length + suf.length && pattern.startsWith(pre)
      && pattern.endsWith(suf) && pattern.startsWith(name, pre.length)) return s
  }
  return OTHER
}

function growInts(a: Int32Array<ArrayBuffer>, size: number): Int32Array<ArrayBuffer> {
  const b = new Int32Array(size)
  b.set(a)
  return b
}

/**
 * Entries stored column-wise, so a million cost megabytes instead of an object and three strings
 * each: two ints per entry in `rec`, the source line and file index in cold arrays. Names are
 * not kept here: the matcher keeps each name once, in its table, and entries of the same name
 * are chained. The Entry object of an index is built on its first match (from the name the match
 * verified) and kept, so later matches reuse it.
 */
export class EntryStore {
  /** [meta, next entry of the same name + 1 (0 = end of chain)] per entry. */
  rec: Int32Array<ArrayBuffer>
  private count = 0
  private cap: number
  private files: Int32Array<ArrayBuffer>
  private lines: Int32Array<ArrayBuffer>
  private readonly objs: (Entry | undefined)[] = []
  private readonly lists: string[] = []
  private readonly listIndex = new Map<string, number>()
  private readonly fileNames: string[] = []
  private readonly fileIndex = new Map<string, number>()
  private readonly patterns = new Map<number, string>()
  private readonly sigmas = new Map<number, SigmaRef>()

  /** Sized for `entries` entries; it grows past that by doubling. */
  constructor(entries = 256) {
    this.cap = Math.max(16, entries)
    this.rec = new Int32Array(this.cap * REC)
    this.files = new Int32Array(this.cap)
    this.lines = new Int32Array(this.cap)
  }

  get length(): number { return this.count }

  /** Index of a list name (interned). */
  listId(list: string): number {
    let id = this.listIndex.get(list)
    if (id === undefined) { id = this.lists.length; this.lists.push(list); this.listIndex.set(list, id) }
    return id
  }

  private lastFile: string | undefined
  private lastFileId = 0

  private fileId(file: string): number {
    if (file === this.lastFile) return this.lastFileId
    this.lastFile = file
    this.lastFileId = this.internFile(file)
    return this.lastFileId
  }

  private internFile(file: string): number {
    let id = this.fileIndex.get(file)
    if (id === undefined) { id = this.fileNames.length; this.fileNames.push(file); this.fileIndex.set(file, id) }
    return id
  }

  /** Does entry i (of the same name) have this list, kind and allow flag? */
  same(i: number, listId: number, kind: MatchKind, allow: boolean): boolean {
    const m = this.rec[i * REC]!
    return (m >>> 8) === listId && (m & 3) === KIND_CODE[kind] && ((m & ALLOW_BIT) !== 0) === allow
  }

  /** Chain entry i after entry tail (the last of its chain). */
  link(tail: number, i: number): void {
    this.rec[tail * REC + 1] = i + 1
  }

  /**
   * Append an entry (chained to nothing yet); returns its index. `name` only tells how the
   * pattern is built from it. `line` < 0: `file` is the whole source.
   */
  push(listId: number, name: string, kind: MatchKind, allow: boolean, pattern: string,
    file: string, line: number, sigma: SigmaRef | undefined, obj: Entry | undefined): number {
    const i = this.count++
    if (i === this.cap) {
      this.cap *= 2
      this.rec = growInts(this.rec, this.cap * REC)
      this.files = growInts(this.files, this.cap)
      this.lines = growInts(this.lines, this.cap)
    }
    const style = styleOf(pattern, name)
    if (style === OTHER) this.patterns.set(i, pattern)
    const r = i * REC
    this.rec[r] = KIND_CODE[kind] | (allow ? ALLOW_BIT : 0) | (style << 3) | (listId << 8)
    this.rec[r + 1] = 0
    this.files[i] = this.fileId(file)
    this.lines[i] = line
    if (sigma) this.sigmas.set(i, sigma)
    this.objs.push(obj)
    return i
  }

  /** The Entry object of index i (built once, then reused); `name` is its name, as a match verified it. */
  entry(i: number, name: string): Entry {
    return this.objs[i] ?? this.build(i, name)
  }

  private build(i: number, name: string): Entry {
    const m = this.rec[i * REC]!
    const st = STYLES[(m >>> 3) & 7]
    const file = this.fileNames[this.files[i]!]!
    const line = this.lines[i]!
    const sigma = this.sigmas.get(i)
    const base = {
      list: this.lists[m >>> 8]!,
      name,
      kind: KINDS[m & 3]!,
      allow: (m & ALLOW_BIT) !== 0,
      pattern: st ? st[0] + name + st[1] : this.patterns.get(i)!,
      source: line < 0 ? file : `${file}:${line}`,
    }
    const e: Entry = sigma ? { ...base, sigma } : base
    this.objs[i] = e
    return e
  }
}
