import { mkdirSync } from 'node:fs'
import { lineCounts, notAList, type Reply } from './list-reply.js'
import { errorText } from './observe/alert-output.js'
import { redactUrl, withoutCredentials } from './url-secrets.js'
import type { Evidence } from './observe/types.js'
import type { ExtraTexts } from './snapshot.js'
import type { Config } from './snapshot-types.js'
import { checkStateDir, gather, hasCopy, readCopy, stateDir, writeCopy, type Copy, type RemoteCopy } from './state-dir.js'

export { storedCopies, type RemoteCopy, type StoredCopies } from './state-dir.js'

export interface RemoteListsOptions {
  readonly config: () => Config
  readonly evidence: Evidence
  /** Called after a fetch changed a list's content (the caller rebuilds the snapshot). */
  readonly onChange: () => void
  readonly fetch?: typeof globalThis.fetch
  readonly now?: () => number
  readonly timeoutMs?: number
  /** The first retry after a failed fetch, ms (30 s; doubled each failure in a row, at most 1 h or the list's refresh). */
  readonly retryMs?: number
}

export interface RemoteLists {
  /** Current texts for every list's urls: the last good copy (from disk until the first fetch returns). */
  texts(): ExtraTexts
  /** Every list URL (redacted) and when its copy in use was fetched; null: none yet (no copy on disk, no fetch succeeded). */
  copies(): RemoteCopy[]
  /**
   * Fetch every url once now (conditional requests); resolves when all are done. A URL whose
   * fetch is still running is not fetched again: its running fetch is waited for.
   */
  refreshAll(): Promise<void>
  /** Fetch at start and every list's `refresh` from now on. */
  start(): void
  /**
   * After a reload (started only): a list whose urls or refresh changed, or that is new, is
   * fetched now and on its own refresh from now on; a list gone is no longer fetched.
   */
  sync(): void
  /** End the timers and abort every fetch in flight: nothing is logged, kept or reloaded after it. */
  stop(): void
}

/** `text` with the URL, as configured or as requested, replaced by the redacted one. */
const scrub = (text: string, url: string, requested: string, shown: string) => text.split(url).join(shown).split(requested).join(shown)

/** A fetch's outcome: the list's content changed, it did not (or 304), or the fetch failed. */
type Fetched = 'changed' | 'same' | 'failed'

/** The longest wait before a failed list is fetched again (unless its refresh is shorter). */
const RETRY_MAX_MS = 3_600_000

/** What a failed fetch leaves in use. */
/** How long a fetch of a remote list, its body included, may take (README: "within 30 s"). */
const FETCH_TIMEOUT_MS = 30_000

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

/** Remote lists: fetched with ETag/Last-Modified, size-limited, last good copy kept on disk. */
export function createRemoteLists(o: RemoteListsOptions): RemoteLists {
  const doFetch = o.fetch ?? globalThis.fetch
  const now = o.now ?? Date.now
  const timeoutMs = o.timeoutMs ?? FETCH_TIMEOUT_MS
  const copies = new Map<string, Copy>()
  /** The refresh timer of each list with urls, and the urls and refresh it was set for. */
  const timers = new Map<string, NodeJS.Timeout>()
  const scheduled = new Map<string, string>()
  let started = false
  /** The fetch running for each URL: never two at once, so that an older response cannot land after a newer one. */
  const running = new Map<string, Promise<Fetched>>()
  /**
   * Lists whose last fetch failed: how many times in a row, and the timer that fetches them again
   * before their refresh (a list with no copy yet would otherwise stay empty for a whole refresh,
   * a day by default, after one failed fetch at start).
   */
  const failures = new Map<string, number>()
  const retries = new Map<string, NodeJS.Timeout>()
  const retryMs = o.retryMs ?? 30_000
  /** Aborted by stop(), then replaced: a fetch started before stop() ends silently. */
  let stopping = new AbortController()
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

  async function read(res: Response, maxBytes: number): Promise<Reply> {
    if (res.status === 304) { await res.arrayBuffer(); return { kind: 'unchanged' } }
    if (res.status !== 200) { await res.body?.cancel(); return { kind: 'status', status: res.status } }
    const text = await readCapped(res, maxBytes)
    if (text === undefined) return { kind: 'too big' }
    return { kind: 'text', text, etag: res.headers.get('etag') ?? undefined, lastModified: res.headers.get('last-modified') ?? undefined }
  }

  /**
   * Take a reply: log it, and keep a list text that reads as one. It is compared with, and saved
   * over, the copy in use now, not the one there when the fetch started. true when the content changed.
   */
  function take(list: string, url: string, shown: string, maxBytes: number, reply: Reply): Fetched {
    const cur = load(url)
    const have = { have_copy: cur !== undefined, ...retryField(list) }
    if (reply.kind === 'unchanged') {
      // the copy on disk is what a restart starts from: one removed meanwhile (a tmp cleaner in the
      // default state dir) is written again from the one in use, which the 304 says is current
      // (save writes only to a trusted state dir)
      if (cur !== undefined && !hasCopy(dir(), url)) save(url, cur)
      return 'same'
    }
    if (reply.kind === 'status') {
      o.evidence.warn(`remote list fetch failed; ${kept(cur)}`, { list, url: shown, status: reply.status, ...have })
      return 'failed'
    }
    if (reply.kind === 'too big') {
      o.evidence.warn(`remote list larger than maxBytes; ${kept(cur)}`, {
        list, url: shown, maxBytes, error: `the response is larger than lists.${list}.maxBytes (${maxBytes} bytes)`, code: 'TOO_LARGE', ...have,
      })
      return 'failed'
    }
    const { text, etag, lastModified } = reply
    const bytes = Buffer.byteLength(text)
    const lines = lineCounts(text, shown)
    const why = notAList(lines)
    if (why !== undefined) {
      o.evidence.warn(`remote list fetch failed: the response is not a list (${why}); ${kept(cur)}`, {
        list, url: shown, status: 200, bytes, entry_lines: lines.entries, invalid_lines: lines.invalid, ...have,
        fix: `make the URL serve the list (not an error or login page); an empty response never empties a list: to drop its entries, remove the URL from lists.${list}.urls`,
      })
      return 'failed'
    }
    const changed = text !== cur?.text
    save(url, { text, etag, lastModified, fetchedAt: now() })
    o.evidence.info('remote list fetched', { list, url: shown, bytes, changed })
    return changed ? 'changed' : 'same'
  }

  async function fetchOne(list: string, url: string, maxBytes: number, signal: AbortSignal): Promise<Fetched> {
    const prev = load(url)
    // user info goes as Basic auth (fetch refuses a URL that has it); only the redacted URL is logged
    const req = withoutCredentials(url)
    const shown = redactUrl(url)
    const headers: Record<string, string> = { 'user-agent': 'tunnelguard' }
    if (req.authorization) headers.authorization = req.authorization
    if (prev?.etag) headers['if-none-match'] = prev.etag
    if (prev?.lastModified) headers['if-modified-since'] = prev.lastModified
    try {
      const timeout = AbortSignal.timeout(timeoutMs)
      const res = await doFetch(req.url, { headers, signal: AbortSignal.any([signal, timeout]), redirect: 'follow' })
      const reply = await read(res, maxBytes)
      // stopped meanwhile (a fetch that does not heed its signal, a body already read): nothing more
      if (signal.aborted) return 'same'
      return take(list, url, shown, maxBytes, reply)
    } catch (e) {
      if (signal.aborted) return 'same'   // stop() aborted it: no failure, nothing to say
      // the whole fetch, body included, has timeoutMs: fetch says only "The operation was aborted due to timeout"
      const { error, code } = (e as Error).name === 'TimeoutError'
        ? { error: `no complete response within ${timeoutMs / 1000}s`, code: 'ETIMEDOUT' }
        : errorCause(e)
      const cur = load(url)
      o.evidence.warn(`remote list fetch failed; ${kept(cur)}`, {
        list, url: shown, error: scrub(error, url, req.url, shown), ...code === undefined ? {} : { code }, have_copy: cur !== undefined,
        ...retryField(list),
      })
      return 'failed'
    }
  }

  /**
   * How long after its failures in a row (`n`) a list is fetched again: 30 s, doubled each time,
   * at most 1 h; undefined when its refresh comes first (its timer fetches it then anyway), or a
   * reload removed the list while it was fetched.
   */
  function retryDelay(list: string, n: number): number | undefined {
    const refresh = o.config().lists[list]?.refresh ?? 0
    const delay = Math.min(retryMs * 2 ** Math.min(n - 1, 20), RETRY_MAX_MS)
    return delay < refresh ? delay : undefined
  }

  /** A failure line's `retry_in_ms`: when the list is fetched again, if before its refresh (serve only). */
  function retryField(list: string): { retry_in_ms?: number } {
    const delay = started ? retryDelay(list, (failures.get(list) ?? 0) + 1) : undefined
    return delay === undefined ? {} : { retry_in_ms: delay }
  }

  /** After a list's fetch: a failure is fetched again after retryDelay; a success ends the run of failures. */
  function afterFetch(list: string, failed: boolean): void {
    clearTimeout(retries.get(list))
    retries.delete(list)
    if (!failed) {
      failures.delete(list)
      return
    }
    const n = (failures.get(list) ?? 0) + 1
    failures.set(list, n)
    const delay = started ? retryDelay(list, n) : undefined
    if (delay === undefined) return
    const t = setTimeout(() => {
      retries.delete(list)
      void refresh([list])
    }, delay)
    t.unref()
    retries.set(list, t)
  }

  /**
   * One fetch per URL at a time: a refresh (or a reload's fetch) that finds one running waits for
   * it instead of opening another connection (one per refresh against a hung server), and leaves
   * reporting its change to the caller that started it.
   */
  function fetchOnce(list: string, url: string, maxBytes: number, signal: AbortSignal): Promise<Fetched> {
    const busy = running.get(url)
    if (busy) return busy.then(r => r === 'failed' ? r : 'same')
    const p = fetchOne(list, url, maxBytes, signal).finally(() => running.delete(url))
    running.set(url, p)
    return p
  }

  /**
   * Fetch these lists' urls; a change reloads, unless stop() came first (one fetch may have
   * changed a list before it, while another was still running).
   */
  async function refresh(lists: string[]): Promise<void> {
    const signal = stopping.signal
    const changed = await Promise.all(lists.map(list => refreshList(list, signal)))
    if (changed.includes(true) && !signal.aborted) o.onChange()
  }

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
      const t = setInterval(() => { void refresh([list]) }, o.config().lists[list]!.refresh)
      t.unref()
      timers.set(list, t)
      scheduled.set(list, sig)
      changed.push(list)
    }
    return changed
  }

  async function refreshList(list: string, signal: AbortSignal): Promise<boolean> {
    const l = o.config().lists[list]
    if (!l) return false
    const fetched = await Promise.all(l.urls.map(u => fetchOnce(list, u, l.maxBytes, signal)))
    if (!signal.aborted) afterFetch(list, fetched.includes('failed'))
    return fetched.includes('changed')
  }

  return {
    texts() {
      return gather(o.config(), load).texts
    },
    copies() {
      return gather(o.config(), load).copies
    },
    refreshAll() {
      return refresh(Object.keys(o.config().lists))
    },
    start() {
      void this.refreshAll()
      schedule()
      started = true
    },
    sync() {
      if (!started) return
      for (const list of schedule()) void refresh([list])
    },
    stop() {
      started = false
      for (const t of timers.values()) clearInterval(t)
      timers.clear()
      scheduled.clear()
      for (const t of retries.values()) clearTimeout(t)
      retries.clear()
      failures.clear()
      // a fetch in flight would run on to its timeout (30 s), past a stop's grace period
      stopping.abort()
      stopping = new AbortController()
    },
  }
}
