import { AppError, errorLines } from './errors.js'
import { loadConfig } from './config/load.js'
import { FileWatch } from './file-watch.js'
import { logWarnings } from './log-warnings.js'
import type { Evidence } from './observe/types.js'
import { applyOverrides, type Overrides } from './overrides.js'
import { fingerprint, warnShrunk, weakened } from './reload-changes.js'
import { allWarnings, buildSnapshotAsync, type ExtraTexts } from './snapshot.js'
import type { Config, Snapshot } from './snapshot-types.js'

export interface Reloader {
  /**
   * Rebuild config and lists now; swap on success; on failure log the errors and keep the old
   * snapshot. The lists are parsed a slice at a time, so the listeners keep answering meanwhile.
   * One reload runs at a time: one asked for while another runs starts when it ends (with the
   * files as they are then), and those asked for in the meantime share it. Resolves to whether
   * the reload that read the files after the call was accepted. `fromFiles`: asked for by a file
   * change, not by the admin: a change that weakens the protection is held (HOLD_MS) and resolves false.
   */
  reload(why: string, fromFiles?: boolean): Promise<boolean>
  /**
   * A reload asked for (SIGHUP): now, unless one ran less than the debounce ago; then once, that
   * long after it. A burst of requests costs one reload per debounce, and the queries between are answered.
   */
  request(why: string): void
  /** Follow the config and list files (FileWatch): a change reloads once the files have settled. */
  watch(): void
  /** Stop following the files (reload.watch turned off). */
  unwatch(): void
  readonly watching: boolean
  /** Stop: timers and file watches end; a reload still running is dropped when its lists are read (not swapped in). */
  close(): void
}

export interface ReloaderOptions {
  readonly configPath?: string
  readonly overrides: Overrides
  readonly resolvConf?: string
  readonly evidence: Evidence
  readonly current: () => Snapshot
  /** Put the new snapshot in place; it may throw before changing anything: the reload is then rejected. */
  readonly swap: (s: Snapshot) => void
  /** The remote lists' texts for the config being loaded (its lists and urls, not the running one's). */
  readonly extraTexts?: (config: Config) => ExtraTexts
  readonly onResult?: (ok: boolean) => void
  /** reload.debounce (ms), read at each use: a reload may change it. */
  readonly debounceMs: number | (() => number)
  readonly pollMs?: number
  /** How long after a reload that failed for want of a file descriptor it is tried again (ms; FD_RETRY_MS). */
  readonly fdRetryMs?: number
  /** How long a reload's list parsing may hold the event loop at a time (ms; default SLICE_MS). */
  readonly sliceMs?: number
  /** How long a file change that weakens the protection waits for the files to settle (ms; default HOLD_MS, at least two debounces). */
  readonly holdMs?: number
}

/**
 * A file change that weakens what is blocked or recorded (a list gone or halved, other upstreams,
 * fewer log lines) is applied only when the files still read the same this long after: a config or
 * list caught while a non-atomic writer (an editor saving in place, scp, a config tool) pauses
 * mid-file parses as a shorter valid file, and was applied at once, listed names passing and the
 * built-in upstreams answering until the writer went on. A SIGHUP (or the API) applies it at once.
 */
export const HOLD_MS = 10_000

/**
 * A reload that failed because no file descriptor was free (EMFILE, ENFILE: a file could not be
 * opened) is tried again after this long, up to FD_RETRIES times in a row: the change that asked
 * for it (a list edited meanwhile) would otherwise wait for the next one.
 */
export const FD_RETRY_MS = 2000
export const FD_RETRIES = 150

export function createReloader(o: ReloaderOptions): Reloader {
  const debounce = typeof o.debounceMs === 'number' ? () => o.debounceMs as number : o.debounceMs
  let files: FileWatch | undefined
  let requested: NodeJS.Timeout | undefined
  let lastEnd = -Infinity
  // the listeners were opened with the addresses of the config the process started with (the
  // snapshot before the first reload): a reload is compared with those, not with the last accepted
  let bound: Snapshot['config'] | undefined
  let again: NodeJS.Timeout | undefined
  let fdTries = 0

  let busy: Promise<boolean> | undefined
  let next: Promise<boolean> | undefined
  const stop = new AbortController()                 // aborted by close(): a reload running stops at its next slice
  // a SIGHUP or an API call since the files were last read: what they hold is applied at once
  let asked = false
  // a file change that weakens the protection, waiting for the files to settle (HOLD_MS)
  let held: { print: string; timer: NodeJS.Timeout } | undefined
  const holdMs = (): number => Math.max(o.holdMs ?? HOLD_MS, 2 * debounce())

  function unhold(): void {
    clearTimeout(held?.timer)
    held = undefined
  }

  /** `fromFiles`: a file change (the watch, or a hold's end), held when it weakens the protection; anything else is asked for. */
  function reload(why: string, fromFiles = false): Promise<boolean> {
    if (stop.signal.aborted) return Promise.resolve(false)
    if (!fromFiles) asked = true
    if (busy === undefined) return (busy = run(why))
    // the one running read the files before this call: one more, once it ends, for every call till then
    const again = () => {
      next = undefined
      return reload(why, true)
    }
    next ??= busy.then(again, again)
    return next
  }

  async function run(why: string): Promise<boolean> {
    try {
      return await attempt(why)
    } finally {
      busy = undefined
      lastEnd = performance.now()
      files?.refresh()
    }
  }

  async function attempt(why: string): Promise<boolean> {
    const started = performance.now()
    const settle = !asked
    asked = false
    // said first: a big list takes seconds to read, and the queries answered meanwhile use the old lists
    o.evidence.info('reload started', { reason: why })
    try {
      const config = applyOverrides(loadConfig(o.configPath, { resolvConf: o.resolvConf, reload: true }), o.overrides)
      const s = await buildSnapshotAsync(config, { extraTexts: o.extraTexts?.(config), sliceMs: o.sliceMs, signal: stop.signal })
      stop.signal.throwIfAborted()                   // closed while the last slice ran
      const previous = o.current()
      const given = settle ? weakened(previous, s) : []
      if (given.length > 0) {
        const print = fingerprint(s)
        if (held?.print !== print) {
          unhold()
          const ms = holdMs()
          held = { print, timer: setTimeout(() => { void reload(`files settled: ${why}`, true) }, ms) }
          o.evidence.warn('reload held: the change weakens the protection', {
            reason: why, changes: given, hold_ms: ms,
            detail: 'applied if the files read the same then (a save caught half-way reads otherwise once it ends); SIGHUP applies it now',
          })
          return false
        }
      }
      unhold()
      const old = previous.config
      bound ??= old
      // admin.listen is one address (or none), the others lists: said as lists alike, so that
      // tunnelguard.listening has one type on every line (an index mapped by one rejects the other)
      const addrs = (v: string | readonly string[] | null): string[] => [v].flat().filter((a): a is string => a !== null)
      for (const k of ['dns', 'proxy', 'sinkhole', 'admin'] as const) {
        const now = JSON.stringify(config[k].listen)
        if (now === JSON.stringify(old[k].listen)) continue
        if (now === JSON.stringify(bound[k].listen)) {
          o.evidence.info(`reload: ${k}.listen is again the addresses listened on`, { listening: addrs(bound[k].listen) })
        } else {
          o.evidence.warn(`reload: ${k}.listen changed; listeners change only on restart`, { listening: addrs(bound[k].listen), new: addrs(config[k].listen) })
        }
      }
      o.swap(s)
      const fresh = logWarnings(o.evidence, s, previous)
      warnShrunk(o.evidence, previous, s)
      o.evidence.info('reloaded', {
        reason: why, lists: s.lists.map(l => ({ name: l.name, entries: l.entries })), warnings: allWarnings(s).length, newWarnings: fresh,
        took_ms: Math.round(performance.now() - started),
      })
      o.onResult?.(true)
      fdTries = 0
      return true
    } catch (e) {
      if (stop.signal.aborted) {
        o.evidence.info('reload dropped: stopping', { reason: why })
        return false
      }
      const details = e instanceof AppError ? errorLines(e) : [String(e)]
      const retry = details.some(d => /\bE[MN]FILE\b/.test(d)) && fdTries < FD_RETRIES
      fdTries = retry ? fdTries + 1 : 0
      const retryMs = o.fdRetryMs ?? FD_RETRY_MS
      // reload_errors, not errors: tunnelguard.errors is the count of the DNS socket notices, and
      // an index mapped by one rejects a line whose field has the other type
      o.evidence.error('reload rejected; keeping the previous config and lists', { reason: why, reload_errors: details, ...retry && { retry_in_ms: retryMs } })
      if (retry) {
        clearTimeout(again)
        again = setTimeout(() => {
          again = undefined
          void reload(why)
        }, retryMs)
      }
      o.onResult?.(false)
      return false
    }
  }

  function request(why: string): void {
    if (requested !== undefined) return                // one is on its way: it reads the files as they are then
    const wait = lastEnd + debounce() - performance.now()
    if (wait <= 0) {
      void reload(why)
      return
    }
    requested = setTimeout(() => {
      requested = undefined
      void reload(why)
    }, wait)
  }

  /** The files a reload reads: the config, every list file of the current config, and dns.tlsCaFile. */
  function watched(): string[] {
    const c = o.current().config
    const out = Object.values(c.lists).flatMap(l => l.files)
    if (c.dns.tlsCaFile !== undefined) out.push(c.dns.tlsCaFile)
    if (o.configPath) out.push(o.configPath)
    return out
  }

  return {
    reload,
    request,
    watch() {
      if (files) return
      files = new FileWatch({
        files: watched, onChange: why => { void reload(why, true) }, debounceMs: debounce, pollMs: o.pollMs,
        warn: (msg, fields) => o.evidence.warn(msg, fields),
      })
      files.start()
    },
    unwatch() {
      files?.stop()
      files = undefined
    },
    get watching() {
      return files !== undefined
    },
    close() {
      stop.abort()
      unhold()
      clearTimeout(requested)
      requested = undefined
      clearTimeout(again)
      again = undefined
      files?.stop()
      files = undefined
    },
  }
}
