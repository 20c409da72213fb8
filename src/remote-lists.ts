import { lineCounts, notAList, type Reply } from './list-reply.js'
import { createCopyStore } from './remote-copies.js'
import { errorCause, readReply, scrub } from './remote-fetch.js'
import { redactUrl, withoutCredentials } from './url-secrets.js'
import type { Evidence } from './observe/types.js'
import type { ExtraTexts } from './snapshot.js'
import type { Config } from './snapshot-types.js'
import { gather, hasCopy, type Copy, type RemoteCopy } from './state-dir.js'

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
  /**
   * Current texts for every list's urls: the last good copy (from disk until the first fetch
   * returns). Of `config`'s lists (a reload's new config: a list it renames, adds back or points at
   * a URL with a copy has it at once), else the running config's.
   */
  texts(config?: Config): ExtraTexts
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

/** A fetch's outcome: the list's content changed, it did not (or 304), or the fetch failed. */
type Fetched = 'changed' | 'same' | 'failed'

/** The longest wait before a failed list is fetched again (unless its refresh is shorter). */
const RETRY_MAX_MS = 3_600_000

/** How long a fetch of a remote list, its body included, may take (README: "within 30 s"). */
const FETCH_TIMEOUT_MS = 30_000

/** What a failed fetch leaves in use. */
const kept = (prev: Copy | undefined) => prev ? 'keeping the last good copy' : 'no copy yet: the list is empty until a fetch succeeds'

/** Remote lists: fetched with ETag/Last-Modified, size-limited, last good copy kept on disk. */
export function createRemoteLists(o: RemoteListsOptions): RemoteLists {
  const doFetch = o.fetch ?? globalThis.fetch
  const now = o.now ?? Date.now
  const timeoutMs = o.timeoutMs ?? FETCH_TIMEOUT_MS
  const { dir, load, save } = createCopyStore(o)
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
      const reply = await readReply(res, maxBytes)
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
    texts(config = o.config()) {
      return gather(config, load).texts
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
