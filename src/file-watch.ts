import { statSync, watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'

/** How often the files' signatures are compared, whatever the watches say. */
export const POLL_MS = 2_000
/** A change is read once the files have been still for the debounce, or after this many debounces at most. */
const MAX_SETTLE = 10

/**
 * A file's version from its stat: inode, size and mtime. A file replaced by a rename, written to,
 * or reached through a directory swapped in its place, has a new one.
 */
export function versionOf(s: { readonly ino: number; readonly size: number; readonly mtimeMs: number }): string {
  return `${s.ino}:${s.size}:${s.mtimeMs}`
}

/** versionOf the file as stat sees it through symlinks, or why it cannot be read. */
export function signature(file: string): string {
  try {
    return versionOf(statSync(file))
  } catch (e) {
    return `error:${(e as NodeJS.ErrnoException).code}`
  }
}

/** When the file last changed (ms since the epoch), or undefined when it cannot be read. */
function mtimeOf(file: string): number | undefined {
  try {
    return statSync(file).mtimeMs
  } catch {
    return undefined
  }
}

/**
 * Is a change event in a watched directory about one of our files? A platform that gives no file
 * name (Node allows a null) could mean any file, so that counts as ours.
 */
export function isWatched(names: ReadonlySet<string>, file: string | Buffer | null): boolean {
  return file === null || names.has(String(file))
}

export interface FileWatchOptions {
  /** The files to follow now (the config and its list files): read again after every change. */
  readonly files: () => readonly string[]
  /** The files changed and have settled: read them (a reload). */
  readonly onChange: (why: string) => void
  /** How long the files must be still before they are read (reload.debounce). */
  readonly debounceMs: () => number
  readonly warn: (msg: string, fields: Record<string, unknown>) => void
  readonly pollMs?: number
  readonly now?: () => number
}

/**
 * Follows the config and list files. A watch on each file's directory reports a change at once;
 * a poll of every file's signature catches what a watch cannot see: an event lost while the
 * files were being read, a directory swapped in by a rename, the target of a symlink edited
 * elsewhere. A change is read once the files have been still for the debounce (a file written
 * slowly is not read half-way, within a bound), and when a file changed again while it was being
 * read, it is read again.
 */
export class FileWatch {
  readonly #o: FileWatchOptions
  /** directory → its watcher and the names in it that are ours (updated in place: the watcher stays). */
  readonly #dirs = new Map<string, { readonly watcher: FSWatcher; readonly names: Set<string> }>()
  /** file → its signature when it was last read (or last seen, for a read that failed). */
  #seen = new Map<string, string>()
  #timer: NodeJS.Timeout | undefined
  #poll: NodeJS.Timeout | undefined
  /** When the first change not read yet was seen (bounds the settling). */
  #since = 0
  #why = ''
  #stopped = false

  constructor(o: FileWatchOptions) {
    this.#o = o
  }

  start(): void {
    this.#stopped = false
    this.#seen = this.#signatures()
    this.#follow()
    this.#poll = setInterval(() => this.#check(), this.#o.pollMs ?? POLL_MS)
    this.#poll.unref()
  }

  stop(): void {
    this.#stopped = true
    clearTimeout(this.#timer)
    clearInterval(this.#poll)
    for (const { watcher } of this.#dirs.values()) watcher.close()
    this.#dirs.clear()
  }

  /** The files were read by someone else (SIGHUP, a remote list, a reload ended): follow the ones the config names now. */
  refresh(): void {
    if (this.#stopped) return
    this.#follow()
    this.#seen = this.#signatures(this.#seen)
  }

  #now(): number {
    return (this.#o.now ?? Date.now)()
  }

  /** Each file named now and its signature; with `kept`, the one kept there for a file it has. */
  #signatures(kept?: ReadonlyMap<string, string>): Map<string, string> {
    return new Map(this.#o.files().map(f => [f, kept?.get(f) ?? signature(f)]))
  }

  /** Watch the directories of the files named now; watchers of directories still needed are kept (their queued events with them). */
  #follow(): void {
    const byDir = new Map<string, Set<string>>()
    for (const f of this.#o.files()) {
      const d = dirname(f)
      if (!byDir.has(d)) byDir.set(d, new Set())
      byDir.get(d)!.add(basename(f))
    }
    for (const [dir, w] of this.#dirs) {
      if (byDir.has(dir)) continue
      w.watcher.close()
      this.#dirs.delete(dir)
    }
    for (const [dir, names] of byDir) {
      const had = this.#dirs.get(dir)
      if (had) {
        had.names.clear()
        for (const n of names) had.names.add(n)
        continue
      }
      try {
        const watcher = watch(dir, (_ev, file) => {
          if (isWatched(names, file)) this.#changed(`file changed: ${dir}/${String(file)}`)
        })
        watcher.on('error', err => this.#o.warn('file watch failed', { dir, error: String(err), detail: `its files are still compared every ${(this.#o.pollMs ?? POLL_MS) / 1000} s` }))
        this.#dirs.set(dir, { watcher, names })
      } catch (err) {
        this.#o.warn('cannot watch directory; its files are compared every few seconds, and SIGHUP reloads', { dir, error: String(err) })
      }
    }
  }

  /**
   * The poll: a file whose signature differs from when it was read has changed. A file not
   * followed before is named by a config that a reload has just read, with its files: it is taken
   * as it is (the reload's end calls refresh, but a poll can come between the two), not as a change.
   */
  #check(): void {
    if (this.#timer !== undefined) return
    for (const [file, sig] of this.#signatures()) {
      const seen = this.#seen.get(file)
      if (seen === undefined) this.#seen.set(file, sig)
      else if (seen !== sig) return this.#changed(`file changed: ${file}`)
    }
  }

  /** A change: read the files a debounce from now, unless a read is due already (it waits for them to settle). */
  #changed(why: string): void {
    if (this.#timer !== undefined) return
    this.#why = why
    this.#since = this.#now()
    this.#timer = setTimeout(() => this.#settled(), this.#o.debounceMs())
  }

  /** Read the files once they have been still for the debounce (at most MAX_SETTLE debounces after the first change). */
  #settled(): void {
    this.#timer = undefined
    const debounce = this.#o.debounceMs()
    const now = this.#now()
    // a file dated in the future (a clock ahead: NFS, `cp -p` from another machine) counts as written now
    const newest = Math.min(now, Math.max(...this.#o.files().map(f => mtimeOf(f) ?? 0)))
    const deadline = this.#since + MAX_SETTLE * debounce
    if (now - newest < debounce && now < deadline) {
      this.#timer = setTimeout(() => this.#settled(), Math.min(debounce - (now - newest), deadline - now))
      return
    }
    const before = this.#signatures()
    this.#o.onChange(this.#why)
    if (this.#stopped) return
    this.#follow()
    const after = this.#signatures()
    // what was read is what `before` saw; a file the new config names was not read before: as it is now
    this.#seen = new Map([...after].map(([f, sig]) => [f, before.get(f) ?? sig]))
    for (const [f, sig] of after) {
      if (before.has(f) && before.get(f) !== sig) return this.#changed(`file changed while it was read: ${f}`)
    }
  }
}
