import { AppError } from './errors.js'
import { loadConfig } from './config/load.js'
import { splitHostPort } from './config/endpoints.js'
import { startDns } from './dns/server.js'
import { createResolver } from './dns/resolve.js'
import { startAdmin } from './observe/admin.js'
import { createReloadableAlerts } from './observe/alerts.js'
import { createClientNames } from './observe/client-names.js'
import { createClientTable } from './observe/client-table.js'
import { createEvidence } from './observe/evidence.js'
import { FdBudget, fdCapsWarning, softFdLimit, watchFds, type FdCaps } from './observe/fd-check.js'
import { createLogger, finishLog, lostLines } from './observe/logger.js'
import { createMetrics } from './observe/metrics.js'
import { VERSION } from './version.js'
import { flushNotices } from './observe/throttle.js'
import { startProxy } from './proxy/server.js'
import { startSinkholeCapture } from './proxy/sinkhole-capture.js'
import { holdSignals, takeEarlySignals } from './early-signals.js'
import { logWarnings } from './log-warnings.js'
import { applyOverrides, type Overrides } from './overrides.js'
import { createReloader } from './reload.js'
import { createRemoteLists } from './remote-lists.js'
import { buildSnapshot } from './snapshot.js'
import type { Config, Snapshot } from './snapshot-types.js'
import { redactUrl } from './url-secrets.js'

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
  readonly addresses: {
    dns: { transport: string; address: string; port: number }[]
    proxy: { address: string; port: number }[]
    /** The sinkhole capture listeners (sinkhole.listen). */
    sinkhole: { address: string; port: number }[]
    admin?: { address: string; port: number }
  }
  reload(why?: string): Promise<boolean>
  /** Stop accepting, drain in-flight work, close everything. */
  stop(): Promise<void>
  /** Resolves once stopped. */
  readonly done: Promise<void>
}

const WHY: Readonly<Record<string, string>> = {
  EADDRINUSE: 'address in use',
  EACCES: 'permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE)',
  EADDRNOTAVAIL: 'address not available on this machine',
  EINVAL: 'address not valid for this listener',
}

/**
 * A listener that cannot bind, as one line naming the setting and the address
 * (`dns.listen[0] 127.0.0.1:53: address in use`, or `--dns …` when the flag set it).
 * Other errors are returned as they are.
 */
export function listenError(e: unknown, setting: string, listen: string | readonly string[], flag?: string): unknown {
  const err = e as NodeJS.ErrnoException & { address?: string; port?: number }
  const why = WHY[String(err.code)]
  if (why === undefined) return e
  const list = typeof listen === 'string' ? [listen] : listen
  let i = list.findIndex(l => { const hp = splitHostPort(l)!; return hp.host === err.address && hp.port === err.port })
  if (i < 0 && list.length === 1) i = 0
  const addr = i >= 0 ? list[i] : `${err.address}:${err.port}`
  const where = flag ? `${flag} ${addr}` : typeof listen === 'string' || i < 0 ? `${setting} ${addr}` : `${setting}[${i}] ${addr}`
  return new AppError('LISTEN_FAILED', `${where}: ${why} (${err.code})`)
}

/** Start a listener; a bind failure becomes listenError's one line. */
async function listening<T>(start: () => Promise<T>, setting: string, listen: string | readonly string[], flag?: string): Promise<T> {
  try {
    return await start()
  } catch (e) {
    throw listenError(e, setting, listen, flag)
  }
}

/** Wire config → components → listeners; signals; graceful close. */
export async function serve(opts: ServeOptions): Promise<Running> {
  // signals that come while it starts are held (early-signals.ts) and acted on once it has: a
  // SIGHUP before the listeners are up (`systemctl start` then `reload`) would otherwise end the
  // process, and systemd takes that for a clean exit
  if (opts.signals !== false) holdSignals()
  try {
    return await start(opts)
  } catch (e) {
    if (opts.signals !== false) takeEarlySignals()
    throw e
  }
}

/** The upstreams queries may go to: dns.upstreams, then dns.forwardZones' (`tunnelguard_upstream_up`'s series). */
function upstreamsOf(c: Config): string[] {
  return [...c.dns.upstreams, ...Object.values(c.dns.forwardZones).flat()]
}

async function start(opts: ServeOptions): Promise<Running> {
  const overrides = opts.overrides ?? {}
  const config = applyOverrides(loadConfig(opts.configPath, { resolvConf: opts.resolvConf, serve: true }), overrides)
  const logger = createLogger({ level: config.log.level, destination: opts.stdout })
  const metrics = createMetrics()
  metrics.watchLog(lostLines(logger))
  const clients = createClientTable()
  let snapshot: Snapshot | undefined
  const getSnapshot = () => snapshot!
  // alerts follow the config on reload (the evidence skips them while no output is configured)
  const alerts = createReloadableAlerts({ onError: (m, f) => evidence.warn(m, f), count: (o, r) => metrics.alerted(o, r) })
  alerts.configure(config.alerts)
  const names = createClientNames({ evidence: () => evidence })
  const evidence = createEvidence({ logger, getSnapshot, metrics, clients, alerts, names })
  function applyAlerts(c: Config): void {
    const changed = alerts.configure(c.alerts)
    if (changed.webhook || changed.syslog) {
      evidence.info('alerts reconfigured', { webhook: c.alerts.webhook ? redactUrl(c.alerts.webhook.url) : null, syslog: c.alerts.syslog?.url ?? null })
    }
  }
  // remote lists start from their last good copy on disk; a fetch that changes one reloads
  let stopping: Promise<void> | undefined
  const remote = createRemoteLists({ config: () => snapshot?.config ?? config, evidence, onChange: () => { if (!stopping) void reloader.reload('remote list changed') } })
  snapshot = buildSnapshot(config, { extraTexts: remote.texts(config) })
  metrics.setLists(snapshot.lists)
  metrics.setUpstreams(upstreamsOf(config))
  logWarnings(evidence, snapshot)

  /** The proxy's, once it runs: its open tunnels are decided again with each snapshot swapped in. */
  let redecide: (() => void) | undefined
  const reloader = createReloader({
    configPath: opts.configPath, overrides, resolvConf: opts.resolvConf, evidence,
    current: getSnapshot,
    extraTexts: c => remote.texts(c),
    swap: s => {
      // first, as it may throw (an output that cannot be built): the reload is then rejected
      // with nothing changed, the old snapshot and alert outputs kept
      applyAlerts(s.config)
      const before = capsOf(snapshot!.config)
      snapshot = s
      const after = capsOf(s.config)
      if (Object.keys(after).some(k => after[k as keyof FdCaps] !== before[k as keyof FdCaps])) checkFdCaps(after)
      metrics.setLists(s.lists)
      metrics.setUpstreams(upstreamsOf(s.config))
      void names.configure(s.config)
      remote.sync()
      followSettings(s.config)
      redecide?.()
    },
    onResult: ok => metrics.reloaded(ok),
    debounceMs: () => getSnapshot().config.reload.debounce,
  })
  /** The settings a reload changes in place: the log level, and whether the files are followed. */
  function followSettings(c: Config): void {
    if (logger.level !== c.log.level) {
      const from = logger.level
      logger.level = c.log.level                     // then said, at the new level
      evidence.info('log level changed', { from, to: c.log.level })
    }
    if (opts.watchFiles === false || !running) return
    if (c.reload.watch && !reloader.watching) reloader.watch()
    else if (!c.reload.watch && reloader.watching) reloader.unwatch()
  }
  let running = false
  /** The connection caps in force, over the listeners open (listen addresses change only on restart). */
  function capsOf(c: Config): FdCaps {
    return {
      dnsTcp: c.dns.tcp.maxConnections, dnsListeners: addresses.dns.filter(a => a.transport === 'tcp').length,
      proxy: addresses.proxy.length > 0 ? c.proxy.maxConnections : 0, admin: addresses.admin ? c.admin.maxConnections : 0,
    }
  }
  /** Say so when the caps, at their fullest, would take more descriptors than the process may open. */
  function checkFdCaps(caps: FdCaps): void {
    const w = fdCapsWarning(caps, softFdLimit())
    if (w) evidence.warn(w.msg, w.fields)
  }
  // DNS TCP and proxy connections keep a reserve of descriptors free for upstream sockets, admin, the log
  const fds = new FdBudget()

  const closers: (() => Promise<void> | void)[] = []
  closers.push(() => alerts.close())
  closers.push(watchFds(evidence.counters))
  // lease files are read before the first query is answered; PTR lookups start with the first lines
  await names.configure(config)
  closers.push(() => names.close())
  const addresses: Running['addresses'] = { dns: [], proxy: [], sinkhole: [] }
  // every listener but the proxy's, as each starts: the proxy never dials them (SSRF to the admin API)
  const others: { address: string; port: number }[] = []
  try {
    if (config.dns.listen.length > 0) {
      const dns = await listening(() => startDns({ listen: config.dns.listen, getSnapshot, evidence, fds }), 'dns.listen', config.dns.listen, overrides.dns && '--dns')
      addresses.dns.push(...dns.addresses)
      others.push(...dns.addresses)
      metrics.watchCache(() => dns.cacheStats())
      closers.push(() => dns.close())
    }
    const resolver = createResolver({ getSnapshot, evidence })
    closers.push(() => resolver.close())
    if (config.proxy.listen.length > 0) {
      const proxy = await listening(() => startProxy({ listen: config.proxy.listen, getSnapshot, evidence, fds, resolve: n => resolver.resolve(n), listeners: () => others }),
        'proxy.listen', config.proxy.listen, overrides.proxy && '--proxy')
      addresses.proxy.push(...proxy.addresses)
      redecide = () => void proxy.redecide()
      closers.push(() => proxy.close())
    }
    if (config.sinkhole.listen.length > 0) {
      const cap = await listening(() => startSinkholeCapture({ listen: config.sinkhole.listen, getSnapshot, evidence, resolve: n => resolver.resolve(n) }), 'sinkhole.listen', config.sinkhole.listen)
      addresses.sinkhole.push(...cap.addresses)
      others.push(...cap.addresses)
      closers.push(() => cap.close())
    }
    if (config.admin.listen) {
      const listen = config.admin.listen
      const { maxConnections, allowHosts } = config.admin
      const admin = await listening(() => startAdmin({ listen, metrics, clients, getSnapshot, ready: () => true, remote: () => remote.copies(), maxConnections, allowHosts, evidence }),
        'admin.listen', listen, overrides.admin && '--admin')
      addresses.admin = { address: admin.address, port: admin.port }
      others.push(addresses.admin)
      closers.push(() => admin.close())
    }
  } catch (e) {
    for (const c of closers.reverse()) await c()
    throw e
  }
  running = true
  checkFdCaps(capsOf(config))
  if (opts.watchFiles !== false && getSnapshot().config.reload.watch) reloader.watch()
  closers.push(() => reloader.close())
  remote.start()
  closers.push(() => remote.stop())

  let resolveDone!: () => void
  const ignoreSignal = (): void => {}
  const done = new Promise<void>(r => { resolveDone = r })
  const signals = opts.signals !== false
  const onHup = () => {
    if (stopping) evidence.info('reload not done: stopping', { reason: 'SIGHUP' })
    else reloader.request('SIGHUP')
  }
  const onStop = (sig: string) => () => {
    if (stopping) return evidence.info('already stopping', { signal: sig })
    evidence.info('stopping', { signal: sig })
    void stop()
  }
  const onTerm = onStop('SIGTERM')
  const onInt = onStop('SIGINT')
  function stop(): Promise<void> {
    stopping ??= (async () => {
      for (const c of closers.reverse()) await c()
      flushNotices()                                 // what the warnings held back for their window's end
      evidence.info('stopped')
      await finishLog(logger)                        // bounded: a stdout that takes nothing does not hold the stop
      // the handlers stay until here: a SIGHUP or a second SIGTERM during the drain is not a kill;
      // then quiet ones (put in place first: no moment without one, when the signal's default
      // action would end a clean stop with 129 or 143), and the log is finished: nothing is said.
      // The bin ends the process at `done` (cli.ts), before they go; a caller in process gets the
      // handlers back as they were on the next turn
      if (signals) {
        process.on('SIGHUP', ignoreSignal).on('SIGTERM', ignoreSignal).on('SIGINT', ignoreSignal)
        process.off('SIGHUP', onHup).off('SIGTERM', onTerm).off('SIGINT', onInt)
        setImmediate(() => process.off('SIGHUP', ignoreSignal).off('SIGTERM', ignoreSignal).off('SIGINT', ignoreSignal))
      }
      resolveDone()
    })()
    return stopping
  }
  if (signals) process.on('SIGHUP', onHup).on('SIGTERM', onTerm).on('SIGINT', onInt)
  evidence.info('started', {
    'service.version': VERSION,
    config: config.source,
    dns: addresses.dns, proxy: addresses.proxy, sinkhole: addresses.sinkhole, admin: addresses.admin ?? null,
    upstreams: config.dns.upstreams,
    forwardZones: Object.entries(config.dns.forwardZones).map(([zone, upstreams]) => ({ zone, upstreams })),
    lists: snapshot.lists.map(l => ({ name: l.name, action: l.action, entries: l.entries })),
  })
  // what came while it started (the early handlers go: these are in place)
  const early = signals ? takeEarlySignals() : { hup: false, stop: undefined }
  if (early.stop !== undefined) onStop(early.stop)()
  else if (early.hup) onHup()
  return { snapshot: getSnapshot, addresses, reload: (why = 'api') => reloader.reload(why), stop, done }
}
