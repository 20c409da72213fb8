import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
import { AppError, errorLines } from './errors.js'
import { loadConfig } from './config/load.js'
import { NO_LISTENERS } from './config/warnings.js'
import type { Evidence } from './observe/types.js'
import { allWarnings, buildSnapshot, type ExtraTexts } from './snapshot.js'
import type { Config, ConfigWarning, Snapshot } from './snapshot-types.js'

/** At most this many warning lines at a start or a reload; one more line counts the rest. */
export const MAX_LOGGED_WARNINGS = 20

/**
 * Log the config's and the lists' warnings one line each ('config warning', 'list warning': the
 * FILE:LINE and what is wrong), at most MAX_LOGGED_WARNINGS, then one line with how many more
 * and where to see them all. With `previous` (a reload), only those it did not have: what the
 * reload brought is named, what was logged before is not repeated. Returns how many were new.
 */
export function logWarnings(evidence: Evidence, s: Snapshot, previous?: Snapshot): number {
  const key = (w: ConfigWarning) => `${w.source}\n${w.message}`
  const had = new Set(previous === undefined ? [] : allWarnings(previous).map(key))
  const fresh = [
    ...s.config.warnings.map(w => ({ msg: 'config warning', w })),
    ...s.warnings.map(w => ({ msg: 'list warning', w })),
  ].filter(({ w }) => !had.has(key(w)))
  for (const { msg, w } of fresh.slice(0, MAX_LOGGED_WARNINGS)) evidence.warn(msg, { source: w.source, warning: w.message })
  if (fresh.length > MAX_LOGGED_WARNINGS) {
    const see = s.config.source === 'built-in' ? 'tunnelguard lists' : `tunnelguard lists --config ${s.config.source}`
    evidence.warn('more warnings not logged', { count: fresh.length - MAX_LOGGED_WARNINGS, see })
  }
  return fresh.length
}

/** What the command line overrides in the config. */
export interface Overrides {
  readonly dns?: readonly string[]
  readonly proxy?: readonly string[]
  readonly admin?: string
  readonly upstreams?: readonly string[]
}

export function applyOverrides(c: Config, o: Overrides): Config {
  // listeners given on the command line: the file's "listens on nothing" no longer holds
  const listens = (o.dns?.length ?? 0) + (o.proxy?.length ?? 0) > 0
  // --dns replaces the file's dns.listen: what was said about its entries no longer holds either
  const gone = (w: Config['warnings'][number]) => (listens && w.message.endsWith(NO_LISTENERS)) || (o.dns !== undefined && w.message.startsWith('dns.listen['))
  return Object.freeze({
    ...c,
    warnings: c.warnings.some(gone) ? Object.freeze(c.warnings.filter(w => !gone(w))) : c.warnings,
    dns: Object.freeze({ ...c.dns, listen: o.dns ? [...o.dns] : c.dns.listen, upstreams: o.upstreams ?? c.dns.upstreams }),
    proxy: Object.freeze({ ...c.proxy, listen: o.proxy ? [...o.proxy] : c.proxy.listen }),
    admin: Object.freeze({ ...c.admin, listen: o.admin ?? c.admin.listen }),
  })
}

/**
 * Is a change event in a watched directory about one of our files? A platform that gives no file
 * name (Node allows a null) could mean any file, so that counts as ours.
 */
export function isWatched(names: ReadonlySet<string>, file: string | Buffer | null): boolean {
  return file === null || names.has(String(file))
}

export interface Reloader {
  /** Rebuild config and lists; swap on success; on failure log the errors and keep the old snapshot. */
  reload(why: string): boolean
  /** Watch the config and list files; a change reloads (debounced). */
  watch(): void
  close(): void
}

export interface ReloaderOptions {
  readonly configPath?: string
  readonly overrides: Overrides
  readonly resolvConf?: string
  readonly evidence: Evidence
  readonly current: () => Snapshot
  readonly swap: (s: Snapshot) => void
  readonly extraTexts?: () => ExtraTexts
  readonly onResult?: (ok: boolean) => void
  readonly debounceMs: number
}

export function createReloader(o: ReloaderOptions): Reloader {
  const watchers: FSWatcher[] = []
  let timer: NodeJS.Timeout | undefined
  // the listeners were opened with the addresses of the config the process started with (the
  // snapshot before the first reload): a reload is compared with those, not with the last accepted
  let bound: Snapshot['config'] | undefined

  function reload(why: string): boolean {
    try {
      const config = applyOverrides(loadConfig(o.configPath, { resolvConf: o.resolvConf }), o.overrides)
      const previous = o.current()
      const old = previous.config
      bound ??= old
      for (const k of ['dns', 'proxy', 'sinkhole', 'admin'] as const) {
        const now = JSON.stringify(config[k].listen)
        if (now === JSON.stringify(old[k].listen)) continue
        if (now === JSON.stringify(bound[k].listen)) {
          o.evidence.info(`reload: ${k}.listen is again the addresses listened on`, { listening: bound[k].listen })
        } else {
          o.evidence.warn(`reload: ${k}.listen changed; listeners change only on restart`, { listening: bound[k].listen, new: config[k].listen })
        }
      }
      const s = buildSnapshot(config, { extraTexts: o.extraTexts?.() })
      o.swap(s)
      const fresh = logWarnings(o.evidence, s, previous)
      o.evidence.info('reloaded', { reason: why, lists: s.lists.map(l => ({ name: l.name, entries: l.entries })), warnings: allWarnings(s).length, newWarnings: fresh })
      o.onResult?.(true)
      return true
    } catch (e) {
      const details = e instanceof AppError ? errorLines(e) : [String(e)]
      o.evidence.error('reload rejected; keeping the previous config and lists', { reason: why, errors: details })
      o.onResult?.(false)
      return false
    }
  }

  function files(): string[] {
    const c = o.current().config
    const out = Object.values(c.lists).flatMap(l => l.files)
    if (o.configPath) out.push(o.configPath)
    return out
  }

  function watchAll(): void {
    for (const w of watchers.splice(0)) w.close()
    const byDir = new Map<string, Set<string>>()
    for (const f of files()) {
      const d = dirname(f)
      if (!byDir.has(d)) byDir.set(d, new Set())
      byDir.get(d)!.add(basename(f))
    }
    for (const [dir, names] of byDir) {
      try {
        const w = watch(dir, (_ev, file) => {
          if (!isWatched(names, file)) return
          clearTimeout(timer)
          // watch again after every attempt: a reload may name other list files, and a failed one costs nothing to re-watch
          timer = setTimeout(() => { reload(`file changed: ${dir}/${String(file)}`); watchAll() }, o.debounceMs)
        })
        w.on('error', err => o.evidence.warn('file watch failed', { dir, error: String(err) }))
        watchers.push(w)
      } catch (err) {
        o.evidence.warn('cannot watch directory; SIGHUP still reloads', { dir, error: String(err) })
      }
    }
  }

  return {
    reload,
    watch: watchAll,
    close() {
      clearTimeout(timer)
      for (const w of watchers.splice(0)) w.close()
    },
  }
}
