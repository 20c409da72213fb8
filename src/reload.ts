import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
import { AppError, errorLines } from './errors.js'
import { loadConfig } from './config/load.js'
import type { Evidence } from './observe/types.js'
import { buildSnapshot, type ExtraTexts } from './snapshot.js'
import type { Config, Snapshot } from './snapshot-types.js'

/** What the command line overrides in the config. */
export interface Overrides {
  readonly dns?: readonly string[]
  readonly proxy?: readonly string[]
  readonly admin?: string
  readonly upstreams?: readonly string[]
}

export function applyOverrides(c: Config, o: Overrides): Config {
  return Object.freeze({
    ...c,
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

  function reload(why: string): boolean {
    try {
      const config = applyOverrides(loadConfig(o.configPath, { resolvConf: o.resolvConf }), o.overrides)
      const old = o.current().config
      for (const k of ['dns', 'proxy', 'sinkhole', 'admin'] as const) {
        if (JSON.stringify(config[k].listen) !== JSON.stringify(old[k].listen)) {
          o.evidence.warn(`reload: ${k}.listen changed; listeners change only on restart`, { old: old[k].listen, new: config[k].listen })
        }
      }
      const s = buildSnapshot(config, { extraTexts: o.extraTexts?.() })
      o.swap(s)
      o.evidence.info('reloaded', { reason: why, lists: s.lists.map(l => ({ name: l.name, entries: l.entries })), warnings: s.warnings.length })
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
