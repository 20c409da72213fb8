import { loadConfig } from './config/load.js'
import { startDns } from './dns/server.js'
import { createResolver } from './dns/resolve.js'
import { startAdmin } from './observe/admin.js'
import { createAlerts } from './observe/alerts.js'
import { createClientNames } from './observe/client-names.js'
import { createClientTable } from './observe/client-table.js'
import { createEvidence } from './observe/evidence.js'
import { createLogger } from './observe/logger.js'
import { createMetrics } from './observe/metrics.js'
import { startProxy } from './proxy/server.js'
import { startSinkholeCapture } from './proxy/sinkhole-capture.js'
import { applyOverrides, createReloader, type Overrides } from './reload.js'
import { createRemoteLists } from './remote-lists.js'
import { buildSnapshot } from './snapshot.js'
import type { Snapshot } from './snapshot-types.js'

export type { Overrides }

export interface ServeOptions {
  readonly configPath?: string
  readonly overrides?: Overrides
  /** Where log lines go; default: stdout, written asynchronously. */
  readonly stdout?: NodeJS.WritableStream
  readonly resolvConf?: string
  /** Install SIGTERM/SIGINT (stop) and SIGHUP (reload) handlers. Default true. */
  readonly signals?: boolean
  /** Watch config and list files and reload on change. Default true. */
  readonly watchFiles?: boolean
}

export interface Running {
  readonly snapshot: () => Snapshot
  readonly addresses: { dns: { transport: string; address: string; port: number }[]; proxy: { address: string; port: number }[]; admin?: { address: string; port: number } }
  reload(why?: string): boolean
  /** Stop accepting, drain in-flight work, close everything. */
  stop(): Promise<void>
  /** Resolves once stopped. */
  readonly done: Promise<void>
}

/** Wire config → components → listeners; signals; graceful close. */
export async function serve(opts: ServeOptions): Promise<Running> {
  const overrides = opts.overrides ?? {}
  const config = applyOverrides(loadConfig(opts.configPath, { resolvConf: opts.resolvConf }), overrides)
  const logger = createLogger({ level: config.log.level, destination: opts.stdout })
  const metrics = createMetrics()
  const clients = createClientTable()
  let snapshot: Snapshot | undefined
  const getSnapshot = () => snapshot!
  const alerts = createAlerts(config.alerts, { onError: (m, f) => evidence.warn(m, f) })
  const names = createClientNames({ evidence: () => evidence })
  const evidence = createEvidence({ logger, getSnapshot, metrics, clients, alerts, names })
  // remote lists start from their last good copy on disk; a fetch that changes one reloads
  const remote = createRemoteLists({ config: () => snapshot?.config ?? config, evidence, onChange: () => reloader.reload('remote list changed') })
  snapshot = buildSnapshot(config, { extraTexts: remote.texts() })
  metrics.setLists(snapshot.lists)
  for (const w of snapshot.warnings) evidence.warn('list warning', { source: w.source, warning: w.message })

  const reloader = createReloader({
    configPath: opts.configPath, overrides, resolvConf: opts.resolvConf, evidence,
    current: getSnapshot,
    extraTexts: () => remote.texts(),
    swap: s => { snapshot = s; metrics.setLists(s.lists); void names.configure(s.config) },
    onResult: ok => metrics.reloaded(ok),
    debounceMs: config.reload.debounce,
  })

  const closers: (() => Promise<void> | void)[] = []
  if (alerts) closers.push(() => alerts.close())
  // lease files are read before the first query is answered; PTR lookups start with the first lines
  await names.configure(config)
  closers.push(() => names.close())
  const addresses: Running['addresses'] = { dns: [], proxy: [] }
  try {
    if (config.dns.listen.length > 0) {
      const dns = await startDns({ listen: config.dns.listen, getSnapshot, evidence })
      addresses.dns.push(...dns.addresses)
      metrics.watchCache(() => dns.cacheStats())
      closers.push(() => dns.close())
    }
    const resolver = createResolver({ getSnapshot, evidence })
    closers.push(() => resolver.close())
    if (config.proxy.listen.length > 0) {
      const proxy = await startProxy({ listen: config.proxy.listen, getSnapshot, evidence, resolve: n => resolver.resolve(n) })
      addresses.proxy.push(...proxy.addresses)
      closers.push(() => proxy.close())
    }
    if (config.sinkhole.listen.length > 0) {
      const cap = await startSinkholeCapture({ listen: config.sinkhole.listen, getSnapshot, evidence })
      closers.push(() => cap.close())
    }
    if (config.admin.listen) {
      const admin = await startAdmin({ listen: config.admin.listen, metrics, clients, getSnapshot, ready: () => true, names })
      addresses.admin = { address: admin.address, port: admin.port }
      closers.push(() => admin.close())
    }
  } catch (e) {
    for (const c of closers.reverse()) await c()
    throw e
  }
  if (opts.watchFiles !== false && config.reload.watch) reloader.watch()
  closers.push(() => reloader.close())
  remote.start()
  closers.push(() => remote.stop())

  let resolveDone!: () => void
  const done = new Promise<void>(r => { resolveDone = r })
  let stopping: Promise<void> | undefined
  const onHup = () => { reloader.reload('SIGHUP') }
  const onStop = (sig: string) => () => {
    evidence.info('stopping', { signal: sig })
    void stop()
  }
  const onTerm = onStop('SIGTERM')
  const onInt = onStop('SIGINT')
  function stop(): Promise<void> {
    stopping ??= (async () => {
      if (opts.signals !== false) {
        process.off('SIGHUP', onHup).off('SIGTERM', onTerm).off('SIGINT', onInt)
      }
      for (const c of closers.reverse()) await c()
      evidence.info('stopped')
      logger.flush()
      resolveDone()
    })()
    return stopping
  }
  if (opts.signals !== false) process.on('SIGHUP', onHup).on('SIGTERM', onTerm).on('SIGINT', onInt)
  evidence.info('started', {
    config: config.source,
    dns: addresses.dns, proxy: addresses.proxy, admin: addresses.admin ?? null,
    upstreams: config.dns.upstreams,
    lists: snapshot.lists.map(l => ({ name: l.name, action: l.action, entries: l.entries })),
  })
  return { snapshot: getSnapshot, addresses, reload: (why = 'api') => reloader.reload(why), stop, done }
}
