import type { Entry, MatchKind, SigmaRef } from './types.js'

const KINDS: readonly MatchKind[] = ['exact', 'domain', 'subdomains']
const KIND_CODE: Readonly<Record<MatchKind, number>> = { exact: 0, domain: 1, subdomains: 2 }

/**
 * How a pattern is rebuilt from the name: prefix + name + suffix. Entries whose pattern fits one
 * of these store no pattern string; the others keep theirs in a side map (style OTHER).
 */
const STYLES: readonly (readonly [string, string])[] = [
  ['', ''], ['*.', ''], ['||', '^'], ['@@||', '^'], ['0.0.0.0 ', ''], ['127.0.0.1 ', ''],
]
const OTHER = 7

// meta bits: 0-1 kind, 2 allow, 3-5 pattern style, 8+ list index
const ALLOW_BIT = 4

function styleOf(pattern: string, name: string): number {
  for (let s = 0; s < STYLES.length; s++) {
    const [pre, suf] = STYLES[s]!
    if (pattern.length === pre.length + name.length + suf.length && pattern.startsWith(pre)
      && pattern.endsWith(suf) && pattern.startsWith(name, pre.length)) return s
  }
  return OTHER
}

function grow(a: Int32Array<ArrayBuffer>, need: number): Int32Array<ArrayBuffer> {
  if (need <= a.length) return a
  const b = new Int32Array(Math.max(need, a.length * 2))
  b.set(a)
  return b
}

/**
 * Entries stored column-wise (a name string plus a few integers each), so a million entries cost
 * tens of megabytes instead of an object and three strings each. The Entry object of an index is
 * built on first use and kept: the first match of an entry allocates it once, later ones reuse it.
 */
export class EntryStore {
  /** Normalized names, by entry index. */
  readonly names: string[] = []
  private meta = new Int32Array(1024)
  private files = new Int32Array(1024)
  private lines = new Int32Array(1024)
  private readonly objs: (Entry | undefined)[] = []
  private readonly lists: string[] = []
  private readonly listIndex = new Map<string, number>()
  private readonly fileNames: string[] = []
  private readonly fileIndex = new Map<string, number>()
  private readonly patterns = new Map<number, string>()
  private readonly sigmas = new Map<number, SigmaRef>()

  get length(): number { return this.names.length }

  /** Index of a list name (interned). */
  listId(list: string): number {
    let id = this.listIndex.get(list)
    if (id === undefined) { id = this.lists.length; this.lists.push(list); this.listIndex.set(list, id) }
    return id
  }

  private fileId(file: string): number {
    let id = this.fileIndex.get(file)
    if (id === undefined) { id = this.fileNames.length; this.fileNames.push(file); this.fileIndex.set(file, id) }
    return id
  }

  /** Append an entry from its parts; returns its index. `line` < 0: `file` is the whole source. */
  push(listId: number, name: string, kind: MatchKind, allow: boolean, pattern: string,
    file: string, line: number, sigma: SigmaRef | undefined, obj?: Entry): number {
    const i = this.names.length
    const need = i + 1
    this.meta = grow(this.meta, need); this.files = grow(this.files, need); this.lines = grow(this.lines, need)
    const style = styleOf(pattern, name)
    if (style === OTHER) this.patterns.set(i, pattern)
    this.meta[i] = KIND_CODE[kind] | (allow ? ALLOW_BIT : 0) | (style << 3) | (listId << 8)
    this.files[i] = this.fileId(file)
    this.lines[i] = line
    if (sigma) this.sigmas.set(i, sigma)
    this.names.push(name)
    this.objs.push(obj)
    return i
  }

  /** Kind code of entry i: 0 exact, 1 domain, 2 subdomains. */
  kindCode(i: number): number { return this.meta[i]! & 3 }

  /** Same list, kind and allow flag (the name is compared by the caller). */
  sameKey(i: number, listId: number, kind: MatchKind, allow: boolean): boolean {
    const m = this.meta[i]!
    return (m >>> 8) === listId && (m & 3) === KIND_CODE[kind] && ((m & ALLOW_BIT) !== 0) === allow
  }

  /** The Entry object of index i (built once, then reused). */
  entry(i: number): Entry {
    return this.objs[i] ?? this.build(i)
  }

  private build(i: number): Entry {
    const m = this.meta[i]!
    const name = this.names[i]!
    const style = (m >>> 3) & 7
    const st = STYLES[style]
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
