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
const ALLOW_BIT = 4
/** Ints per entry in `rec`: meta (bits 0-1 kind, 2 allow, 3-5 pattern style, 8+ list), next + 1, name offset, name length. */
export const REC = 4
/**
 * Bytes in front of each name in the blob: name length; kind (bits 0-1) and HAS_NEXT (bit 7);
 * entry index (uint32 LE). A reader holding only a name's offset finds what it needs to check the
 * name in the same cache line, and whether a chain follows, without reading `rec`.
 */
export const HDR = 6
export const HAS_NEXT = 0x80
/** The most padding one name takes: the word before its header filled out (up to 3), then 2, so that the name after its 6-byte header starts on a word. */
const PAD = 5

function styleOf(pattern: string, name: string): number {
  if (pattern === name) return 0
  for (let s = 0; s < STYLES.length; s++) {
    const [pre, suf] = STYLES[s]!
    if (pattern.length === pre.length + name.length + suf.length && pattern.startsWith(pre)
      && pattern.endsWith(suf) && pattern.startsWith(name, pre.length)) return s
  }
  return OTHER
}

/** n rounded up to whole 32-bit words. */
const words = (n: number): number => (n + 3) & ~3
/** A buffer of whole words as an Int32Array (Buffer.alloc's buffers start at offset 0, so aligned). */
const wordView = (b: Buffer): Int32Array => new Int32Array(b.buffer, b.byteOffset, b.length >>> 2)

function growInts(a: Int32Array<ArrayBuffer>, size: number): Int32Array<ArrayBuffer> {
  const b = new Int32Array(size)
  b.set(a)
  return b
}

/**
 * Entries stored column-wise, so a million cost tens of megabytes instead of an object and three
 * strings each: names side by side in one byte blob (normalized names are ASCII), four ints per
 * entry in `rec`, the source line and file index in cold arrays. The Entry object of an index is
 * built on its first match and kept, so later matches reuse it.
 */
export class EntryStore {
  /** [meta, next entry + 1 (0 = end of chain), name offset in blob, name length] per entry. */
  rec: Int32Array<ArrayBuffer>
  /**
   * All names, ASCII bytes, each after its HDR-byte header. Every name starts at a multiple of 4
   * and is followed by zeros up to the next multiple of 4, so `blob32` can compare it a word at a time.
   */
  blob: Buffer
  /** The blob as 32-bit words (platform byte order). */
  blob32: Int32Array
  private blobUsed = 0
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

  /** Sized for `entries` entries and `bytes` bytes of names; it grows past that by doubling. */
  constructor(entries = 256, bytes = entries * 24) {
    this.cap = Math.max(16, entries)
    this.rec = new Int32Array(this.cap * REC)
    this.files = new Int32Array(this.cap)
    this.lines = new Int32Array(this.cap)
    this.blob = Buffer.alloc(words(Math.max(256, bytes + entries * (HDR + PAD))))
    this.blob32 = wordView(this.blob)
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

  /** Does entry i have this name, list, kind and allow flag? */
  same(i: number, name: string, listId: number, kind: MatchKind, allow: boolean): boolean {
    const r = i * REC
    const m = this.rec[r]!
    if ((m >>> 8) !== listId || (m & 3) !== KIND_CODE[kind] || ((m & ALLOW_BIT) !== 0) !== allow) return false
    const off = this.rec[r + 2]!
    if (this.rec[r + 3] !== name.length) return false
    for (let j = 0; j < name.length; j++) if (this.blob[off + j] !== name.charCodeAt(j)) return false
    return true
  }

  /** Chain entry i after entry tail (the last of its chain). */
  link(tail: number, i: number): void {
    this.rec[tail * REC + 1] = i + 1
    this.blob[this.rec[tail * REC + 2]! - HDR + 1]! |= HAS_NEXT
  }

  /** Append an entry (chained to nothing yet); returns its index. `line` < 0: `file` is the whole source. */
  push(listId: number, name: string, kind: MatchKind, allow: boolean, pattern: string,
    file: string, line: number, sigma: SigmaRef | undefined, obj: Entry | undefined): number {
    const i = this.count++
    if (i === this.cap) {
      this.cap *= 2
      this.rec = growInts(this.rec, this.cap * REC)
      this.files = growInts(this.files, this.cap)
      this.lines = growInts(this.lines, this.cap)
    }
    const at = ((this.blobUsed + 3) & ~3) + 2       // past the last name's word, 2 more: the name starts on a word
    const off = at + HDR
    if (off + name.length + 3 > this.blob.length) {
      const b = Buffer.alloc(words(Math.max(off + name.length + 3, this.blob.length * 2)))
      this.blob.copy(b)
      this.blob = b
      this.blob32 = wordView(b)
    }
    this.blob[at] = name.length
    this.blob[at + 1] = KIND_CODE[kind]
    this.blob.writeUInt32LE(i, at + 2)
    this.blob.write(name, off, 'latin1')
    this.blobUsed = off + name.length
    const style = styleOf(pattern, name)
    if (style === OTHER) this.patterns.set(i, pattern)
    const r = i * REC
    this.rec[r] = KIND_CODE[kind] | (allow ? ALLOW_BIT : 0) | (style << 3) | (listId << 8)
    this.rec[r + 1] = 0
    this.rec[r + 2] = off
    this.rec[r + 3] = name.length
    this.files[i] = this.fileId(file)
    this.lines[i] = line
    if (sigma) this.sigmas.set(i, sigma)
    this.objs.push(obj)
    return i
  }

  /** The Entry object of index i (built once, then reused). */
  entry(i: number): Entry {
    return this.objs[i] ?? this.build(i)
  }

  private build(i: number): Entry {
    const r = i * REC
    const m = this.rec[r]!
    const name = this.blob.toString('latin1', this.rec[r + 2]!, this.rec[r + 2]! + this.rec[r + 3]!)
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
