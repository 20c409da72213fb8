/**
 * The last good copy of each remote list URL: kept in memory, read from the state dir and written
 * to it while the state dir can be trusted (a warning, once per directory, when it cannot).
 */
import { mkdirSync } from 'node:fs'
import { redactUrl } from './url-secrets.js'
import type { Evidence } from './observe/types.js'
import type { Config } from './snapshot-types.js'
import { checkStateDir, readCopy, stateDir, writeCopy, type Copy } from './state-dir.js'

export interface CopyStoreOptions {
  readonly config: () => Config
  readonly evidence: Evidence
}

export interface CopyStore {
  /** The state dir the copies are kept in (state.dir, or the default one). */
  dir(): string
  /** The copy in use for `url`: the one in memory, else the one on disk (read once). */
  load(url: string): Copy | undefined
  /** Keep `c` as the copy in use, and on disk. */
  save(url: string, c: Copy): void
}

/** A remote lists' copies (createRemoteLists has one). */
export function createCopyStore(o: CopyStoreOptions): CopyStore {
  const copies = new Map<string, Copy>()
  const dir = () => stateDir(o.config())
  /** The directories already said to be untrusted (one warning each). */
  const warned = new Set<string>()
  /** `dir()` when its copies can be used; else undefined (untrusted: a warning the first time). */
  function trusted(): string | undefined {
    const d = dir()
    const state = checkStateDir(d)
    if (state === 'trusted') return d
    if (state !== 'missing' && !warned.has(d)) {
      warned.add(d)
      o.evidence.warn('state dir not used: the last good copies of remote lists are neither read from it nor written to it', {
        dir: d, reason: state.untrusted, fix: 'set state.dir to a directory only this user can write (mode 0700)',
      })
    }
    return undefined
  }

  function load(url: string): Copy | undefined {
    if (!copies.has(url)) {
      const d = trusted()
      const c = d === undefined ? undefined : readCopy(d, url)
      if (c) {
        const { unredacted, ...copy } = c
        // an older version's .json with the password in it is written again, redacted
        if (unredacted) save(url, copy)
        else copies.set(url, copy)
      }
    }
    return copies.get(url)
  }

  function save(url: string, c: Copy): void {
    copies.set(url, c)
    try {
      mkdirSync(dir(), { recursive: true, mode: 0o700 })
      const d = trusted()
      if (d === undefined) return
      writeCopy(d, url, c)
    } catch (e) {
      o.evidence.warn('cannot keep the last good copy of a remote list on disk', { url: redactUrl(url), error: String(e) })
    }
  }

  return { dir, load, save }
}
