import { createHash } from 'node:crypto'
import { existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { redactUrl } from './url-secrets.js'
import type { ExtraTexts } from './snapshot.js'
import type { Config } from './snapshot-types.js'

/** A remote list's last good copy: its text and what a conditional request sends back. */
export interface Copy { text: string; etag?: string; lastModified?: string; fetchedAt: number }

/** A copy's file name in the state dir: a hash of its URL as configured. */
const key = (url: string) => createHash('sha256').update(url).digest('hex').slice(0, 32)

/**
 * Where the last good copies are kept: `state.dir`, or a directory of this user's own in the temp
 * dir (`tunnelguard-state-UID`, made with mode 0700).
 */
export const stateDir = (config: Config): string => config.state.dir ?? join(tmpdir(), USER_DIR)
/* c8 ignore next 3 - process.getuid and getgid are there on every system but Windows */
const UID = process.getuid?.()
const GID = process.getgid?.()
const USER_DIR = `tunnelguard-state-${UID ?? 'user'}`

/**
 * Whether the copies in `dir` can be trusted: 'trusted'; 'missing' (not there: no copy to read,
 * and the first save makes it, private); or why not. A copy can allow what the lists block (an
 * `@@` entry), so a directory that another user made, or can write to, is not read: in a shared
 * temp dir anyone could have put one there, even between a look that finds none and a read.
 */
export function checkStateDir(dir: string): 'trusted' | 'missing' | { readonly untrusted: string } {
  let st
  try {
    st = statSync(dir)
  } catch {
    return 'missing'
  }
  const no = (untrusted: string) => ({ untrusted })
  if (!st.isDirectory()) return no('not a directory')
  if (UID !== undefined && st.uid !== UID && st.uid !== 0) return no(`owned by uid ${st.uid}, not by this process's (${UID})`)
  const mode = (st.mode & 0o777).toString(8)
  if ((st.mode & 0o002) !== 0) return no(`writable by other users (mode ${mode})`)
  // writable by a group: trusted only when it is this process's primary group (Kubernetes: runAsGroup = fsGroup)
  if ((st.mode & 0o020) !== 0 && st.gid !== GID) return no(`writable by group ${st.gid}, not this process's own (mode ${mode})`)
  return 'trusted'
}

/**
 * The copy of `url` kept in `dir`, if there is one. `unredacted`: its `.json` holds the URL as
 * configured (written by a version before URLs were redacted), password and all.
 */
export function readCopy(dir: string, url: string): (Copy & { unredacted: boolean }) | undefined {
  try {
    const base = join(dir, key(url))
    const { url: stored, ...meta } = JSON.parse(readFileSync(base + '.json', 'utf8')) as Omit<Copy, 'text'> & { url?: string }
    return { ...meta, text: readFileSync(base + '.txt', 'utf8'), unredacted: stored !== redactUrl(url) }
  } catch {
    return undefined   // no copy on disk yet
  }
}

/** Whether `dir` holds both files of the copy of `url` (a tmp cleaner, or a person, may have removed them). */
export function hasCopy(dir: string, url: string): boolean {
  const base = join(dir, key(url))
  return existsSync(base + '.txt') && existsSync(base + '.json')
}

/**
 * Write the copy of `url` into `dir` (a trusted one): its text first, then what a conditional
 * request needs, each whole or not at all (see replaceFile).
 */
export function writeCopy(dir: string, url: string, c: Copy): void {
  const base = join(dir, key(url))
  replaceFile(base + '.txt', c.text)
  replaceFile(base + '.json', JSON.stringify({ url: redactUrl(url), etag: c.etag, lastModified: c.lastModified, fetchedAt: c.fetchedAt }))
}

/**
 * `path` replaced whole, through a temporary file renamed over it, or left as it was. A write
 * that fails (a full disk) removes its temporary file: a part-written one stayed, taking room the
 * next write needed; and a `.json` written in place was left empty or cut, which lost the copy
 * at the next start.
 */
function replaceFile(path: string, data: string): void {
  const tmp = path + '.tmp'
  try {
    writeFileSync(tmp, data)
    renameSync(tmp, path)
  } catch (e) {
    rmSync(tmp, { force: true })
    throw e
  }
}

/** One remote list URL (redacted) and when its copy in use was fetched (null: there is none). */
export interface RemoteCopy { readonly list: string; readonly url: string; readonly fetchedAt: number | null }

/** The copies the config's remote lists have (as `load` finds them): their texts, and each URL's state. */
export function gather(config: Config, load: (url: string) => Copy | undefined): { texts: ExtraTexts; copies: RemoteCopy[] } {
  const texts: Record<string, { source: string; text: string }[]> = {}
  const copies: RemoteCopy[] = []
  for (const [list, l] of Object.entries(config.lists)) {
    for (const url of l.urls) {
      const c = load(url)
      copies.push({ list, url: redactUrl(url), fetchedAt: c?.fetchedAt ?? null })
      if (c) (texts[list] ??= []).push({ source: redactUrl(url), text: c.text })
    }
  }
  return { texts, copies }
}

/** What `check` and `lists` use of the remote lists: the copies `serve` keeps in the state dir, read, never fetched. */
export interface StoredCopies {
  readonly dir: string
  /** Why the copies in `dir` are not used (see `checkStateDir`). */
  readonly untrusted?: string
  readonly texts: ExtraTexts
  readonly copies: readonly RemoteCopy[]
}

/** The last good copies `serve` wrote to the state dir, for the commands that do not fetch (`check`, `lists`). */
export function storedCopies(config: Config): StoredCopies {
  const dir = stateDir(config)
  const state = checkStateDir(dir)
  if (state === 'trusted') return { dir, ...gather(config, url => readCopy(dir, url)) }
  return { dir, ...state === 'missing' ? {} : state, ...gather(config, () => undefined) }
}
