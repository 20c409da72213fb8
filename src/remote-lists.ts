import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { errorText } from './observe/alert-output.js'
import { redactUrl, withoutCredentials } from './url-secrets.js'
import type { Evidence } from './observe/types.js'
import type { ExtraTexts } from './snapshot.js'
import type { Config } from './snapshot-types.js'

interface Copy { text: string; etag?: string; lastModified?: string; fetchedAt: number }

export interface RemoteListsOptions {
  readonly config: () => Config
  readonly evidence: Evidence
  /** Called after a fetch changed a list's content (the caller rebuilds the snapshot). */
  readonly onChange: () => void
  readonly fetch?: typeof globalThis.fetch
  readonly now?: () => number
  readonly timeoutMs?: number
}

export interface RemoteLists {
  /** Current texts for every list's urls: the last good copy (from disk until the first fetch returns). */
  texts(): ExtraTexts
  /** Every list URL (redacted) and when its copy in use was fetched; null: none yet (no copy on disk, no fetch succeeded). */
  copies(): RemoteCopy[]
  /** Fetch every url once now (conditional requests); resolves when all are done. */
  refreshAll(): Promise<void>
  /** Fetch at start and every list's `refresh` from now on. */
  start(): void
  /**
   * After a reload (started only): a list whose urls or refresh changed, or that is new, is
   * fetched now and on its own refresh from now on; a list gone is no longer fetched.
   */
  sync(): void
  stop(): void
}

/** `text` with the URL, as configured or as requested, replaced by the redacted one. */
const scrub = (text: string, url: string, requested: string, shown: string) => text.split(url).join(shown).split(requested).join(shown)

/** What a failed fetch leaves in use. */
const kept = (prev: Copy | undefined) => prev ? 'keeping the last good copy' : 'no copy yet: the list is empty until a fetch succeeds'

/**
 * A failed fetch's error with its cause: fetch says only "fetch failed" and puts what failed
 * (`connect ECONNREFUSED 127.0.0.1:18099`, a TLS or DNS error) and its code in `cause`.
 */
export function errorCause(e: unknown): { error: string; code?: string } {
  const err = e as Error
  if (err.cause === undefined || err.cause === null) return { error: err.message }
  // the innermost cause, or each address tried (an AggregateError), as alert lines say it
  const detail = errorText(err.cause)
  const code = (err.cause as { code?: unknown }).code
  return { error: detail ? `${err.message}: ${detail}` : err.message, code: typeof code === 'string' ? code : undefined }
}

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
function readCopy(dir: string, url: string): (Copy & { unredacted: boolean }) | undefined {
  try {
    const base = join(dir, key(url))
    const { url: stored, ...meta } = JSON.parse(readFileSync(base + '.json', 'utf8')) as Omit<Copy, 'text'> & { url?: string }
    return { ...meta, text: readFileSync(base + '.txt', 'utf8'), unredacted: stored !== redactUrl(url) }
  } catch {
    return undefined   // no copy on disk yet
  }
}

/** One remote list URL (redacted) and when its copy in use was fetched (null: there is none). */
export interface RemoteCopy { readonly list: string; readonly url: string; readonly fetchedAt: number | null }

/** The copies the config's remote lists have (as `load` finds them): their texts, and each URL's state. */
function gather(config: Config, load: (url: string) => Copy | undefined): { texts: ExtraTexts; copies: RemoteCopy[] } {
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

/** Remote lists: fetched with ETag/Last-Modified, size-limited, last good copy kept on disk. */
export function createRemoteLists(o: RemoteListsOptions): RemoteLists {
  const doFetch = o.fetch ?? globalThis.fetch
  const now = o.now ?? Date.now
  const copies = new Map<string, Copy>()
  /** The refresh timer of each list with urls, and the urls and refresh it was set for. */
  const timers = new Map<string, NodeJS.Timeout>()
  const scheduled = new Map<string, string>()
  let started = false
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
      const base = join(d, key(url))
      writeFileSync(base + '.txt.tmp', c.text)
      renameSync(base + '.txt.tmp', base + '.txt')
      writeFileSync(base + '.json', JSON.stringify({ url: redactUrl(url), etag: c.etag, lastModified: c.lastModified, fetchedAt: c.fetchedAt }))
    } catch (e) {
      o.evidence.warn('cannot keep the last good copy of a remote list on disk', { url: redactUrl(url), error: String(e) })
    }
  }

  async function readCapped(res: Response, max: number): Promise<string | undefined> {
    const declared = Number(res.headers.get('content-length') ?? 0)
    if (declared > max) return undefined
    const chunks: Uint8Array[] = []
    let n = 0
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      n += chunk.byteLength
      if (n > max) return undefined
      chunks.push(chunk)
    }
    return Buffer.concat(chunks).toString('utf8')
  }

  /** true when the content changed. */
  async function fetchOne(list: string, url: string, maxBytes: number): Promise<boolean> {
    const prev = load(url)
    // user info goes as Basic auth (fetch refuses a URL that has it); only the redacted URL is logged
    const req = withoutCredentials(url)
    const shown = redactUrl(url)
    const headers: Record<string, string> = { 'user-agent': 'tunnelguard' }
    if (req.authorization) headers.authorization = req.authorization
    if (prev?.etag) headers['if-none-match'] = prev.etag
    if (prev?.lastModified) headers['if-modified-since'] = prev.lastModified
    try {
      const res = await doFetch(req.url, { headers, signal: AbortSignal.timeout(o.timeoutMs ?? 30_000), redirect: 'follow' })
      if (res.status === 304) { await res.arrayBuffer(); return false }
      if (res.status !== 200) {
        await res.body?.cancel()
        o.evidence.warn(`remote list fetch failed; ${kept(prev)}`, { list, url: shown, status: res.status, have_copy: prev !== undefined })
        return false
      }
      const text = await readCapped(res, maxBytes)
      if (text === undefined) {
        o.evidence.warn(`remote list larger than maxBytes; ${kept(prev)}`, { list, url: shown, maxBytes, have_copy: prev !== undefined })
        return false
      }
      const changed = text !== prev?.text
      save(url, { text, etag: res.headers.get('etag') ?? undefined, lastModified: res.headers.get('last-modified') ?? undefined, fetchedAt: now() })
      o.evidence.info('remote list fetched', { list, url: shown, bytes: Buffer.byteLength(text), changed })
      return changed
    } catch (e) {
      const { error, code } = errorCause(e)
      o.evidence.warn(`remote list fetch failed; ${kept(prev)}`, {
        list, url: shown, error: scrub(error, url, req.url, shown), ...code === undefined ? {} : { code }, have_copy: prev !== undefined,
      })
      return false
    }
  }

  const refresh = (list: string) => refreshList(list).then(c => { if (c) o.onChange() })

  /**
   * One timer per list with urls, at its refresh; the lists whose urls or refresh are not what
   * their timer was set for (or that had none) get a new one, and are returned.
   */
  function schedule(): string[] {
    const changed: string[] = []
    const want = new Map<string, string>()
    for (const [list, l] of Object.entries(o.config().lists)) {
      if (l.urls.length > 0) want.set(list, JSON.stringify([l.urls, l.refresh]))
    }
    for (const [list, t] of timers) {
      if (want.get(list) === scheduled.get(list)) continue
      clearInterval(t)
      timers.delete(list)
      scheduled.delete(list)
    }
    for (const [list, sig] of want) {
      if (timers.has(list)) continue
      const t = setInterval(() => { void refresh(list) }, o.config().lists[list]!.refresh)
      t.unref()
      timers.set(list, t)
      scheduled.set(list, sig)
      changed.push(list)
    }
    return changed
  }

  async function refreshList(list: string): Promise<boolean> {
    const l = o.config().lists[list]
    if (!l) return false
    const changed = await Promise.all(l.urls.map(u => fetchOne(list, u, l.maxBytes)))
    return changed.includes(true)
  }

  return {
    texts() {
      return gather(o.config(), load).texts
    },
    copies() {
      return gather(o.config(), load).copies
    },
    async refreshAll() {
      const changed = await Promise.all(Object.keys(o.config().lists).map(refreshList))
      if (changed.includes(true)) o.onChange()
    },
    start() {
      void this.refreshAll()
      schedule()
      started = true
    },
    sync() {
      if (!started) return
      for (const list of schedule()) void refresh(list)
    },
    stop() {
      started = false
      for (const t of timers.values()) clearInterval(t)
      timers.clear()
      scheduled.clear()
    },
  }
}
