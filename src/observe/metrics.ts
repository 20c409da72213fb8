import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client'
import { VERSION } from '../version.js'
import { OUTCOMES, WHERES, type Decision, type Outcome, type Where } from '../policy/types.js'
import type { ListInfo } from '../snapshot-types.js'
import { ALERT_OUTPUTS, ALERT_RESULTS, type AlertOutputName, type AlertResult } from './alert-output.js'
import { BucketHistogram } from './bucket-histogram.js'
import { isRefusal } from './ecs.js'
import { LOOP_DELAY_RESOLUTION_MS, loopDelayWithoutInterval } from './loop-delay.js'
import { FD_WHERES, type CacheStats, type Counters, type DecisionEvent, type FdCode, type FdWhere, type UpstreamHealth } from './types.js'

/** Most distinct values a config-bounded label may take; beyond it values read `other`. */
export const MAX_LABEL_VALUES = 64

/** Metrics on a private registry. Labels hold config-bounded values only: never a client, name or SNI. */
export interface Metrics {
  readonly registry: Registry
  readonly counters: Counters
  /** One decided event (DNS or proxy): `tunnelguard_decisions_total`. */
  decision(ev: DecisionEvent): void
  /** The lists of the current snapshot: `tunnelguard_list_entries`. */
  setLists(lists: readonly ListInfo[]): void
  /**
   * The upstreams of the current snapshot (dns.upstreams and dns.forwardZones'), as the config
   * writes them: the series of `tunnelguard_upstream_up` (each up until a pool marks it down).
   */
  setUpstreams(urls: readonly string[]): void
  /** A reload attempt: `tunnelguard_reloads_total{result=ok|error}`. */
  reloaded(ok: boolean): void
  /** What became of an alert at an output: `tunnelguard_alerts_total{output=webhook|syslog,result=sent|failed|dropped}`. */
  alerted(output: AlertOutputName, result: AlertResult): void
  /**
   * Where `tunnelguard_log_lines_dropped_total` is read from when scraped (the stdout log's sink;
   * see LineSink.lost): `behindEvidence` is `reason="behind_evidence"`.
   */
  watchLog(read: () => { readonly behind: number; readonly behindEvidence: number; readonly failed: number }): void
  /** Told each time `counters.fdExhausted` counts (the evidence's warning). */
  onFdExhausted(cb: (where: FdWhere, code: FdCode) => void): void
  /** Where `tunnelguard_dns_cache_entries` and `tunnelguard_dns_cache_bytes` are read from when scraped (the DNS service). */
  watchCache(read: () => CacheStats): void
}

/** Keeps a label's distinct values bounded even if a caller passes something unexpected. */
function bounded(): (v: string) => string {
  const seen = new Set<string>()
  return v => {
    if (seen.has(v)) return v
    if (seen.size >= MAX_LABEL_VALUES) return 'other'
    seen.add(v)
    return v
  }
}

const SOURCES = ['dns', 'proxy', 'sinkhole'] as const
/**
 * The action label: the decision's action, or `refused` for a block the proxy made by its own
 * rules on a name no list matched (a port, a private destination), as report and /api/clients
 * count it: not a tunnel attempt.
 */
const ACTIONS: readonly string[] = [...OUTCOMES, 'refused']
const REFUSED_IX = OUTCOMES.length
const ACTION_IX = Object.fromEntries(OUTCOMES.map((a, i) => [a, i])) as Readonly<Record<Outcome, number>>
const WHERE_IX = Object.fromEntries(WHERES.map((w, i) => [w, i])) as Readonly<Record<Where, number>>
const CELLS = SOURCES.length * ACTIONS.length * WHERES.length

const UPSTREAM_OUTCOMES = ['ok', 'timeout', 'error'] as const
const OUTCOME_IX: Readonly<Record<(typeof UPSTREAM_OUTCOMES)[number], number>> = { ok: 0, timeout: 1, error: 2 }
const UPSTREAM_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

function sourceIx(message: DecisionEvent['message']): number {
  if (message === 'dns.query') return 0
  if (message === 'sinkhole.capture') return 2
  return 1
}

/**
 * Counts bumped on every query are plain numbers, added to their prom-client counter when the
 * registry is read (prom-client hashes the label object on every `inc`, which costs more than
 * answering a cached query).
 */
export function createMetrics(opts: { prefix?: string } = {}): Metrics {
  const registry = new Registry()
  const p = opts.prefix ?? 'tunnelguard_'
  // the event-loop delay histogram samples every 100 ms, not prom-client's 10: an idle sidecar woke 100 times a second for it (1 % of a CPU)
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: LOOP_DELAY_RESOLUTION_MS })
  loopDelayWithoutInterval(registry)
  const registers = [registry]
  // which build answers (a fleet mid-upgrade; a responder matching figures to a release): 1, labelled
  new Gauge({ name: `${p}build_info`, help: 'Always 1; the version label says which tunnelguard this is', labelNames: ['version'] as const, registers })
    .set({ version: VERSION }, 1)
  const list = bounded()
  /** list label → counts per (source, action, matched_on) not yet added to the counter. */
  const pending = new Map<string, Float64Array>()
  new Counter({
    name: `${p}decisions_total`, help: 'Decided queries and connections by source, action, list and where the name was seen',
    labelNames: ['source', 'action', 'list', 'matched_on'] as const, registers,
    collect() {
      for (const [label, cells] of pending) {
        for (let i = 0; i < CELLS; i++) {
          if (cells[i] === 0) continue
          const w = i % WHERES.length
          const a = Math.floor(i / WHERES.length) % ACTIONS.length
          const s = Math.floor(i / (WHERES.length * ACTIONS.length))
          this.inc({ source: SOURCES[s]!, action: ACTIONS[a]!, list: label, matched_on: WHERES[w]! }, cells[i]!)
          cells[i] = 0
        }
      }
    },
  })
  let hits = 0
  let misses = 0
  new Counter({
    name: `${p}dns_cache_lookups_total`, help: 'DNS cache lookups', labelNames: ['result'] as const, registers,
    collect() {
      this.inc({ result: 'hit' }, hits)
      this.inc({ result: 'miss' }, misses)
      hits = 0
      misses = 0
    },
  })
  let readCache: (() => CacheStats) | undefined
  new Gauge({
    name: `${p}dns_cache_entries`, help: 'Answers in the DNS cache', registers,
    collect() { this.set(readCache?.().entries ?? 0) },
  })
  new Gauge({
    name: `${p}dns_cache_bytes`, help: 'Memory the DNS cache\'s answers take, in bytes (outside the JavaScript heap)', registers,
    collect() { this.set(readCache?.().bytes ?? 0) },
  })
  const upstream = bounded()
  /** The upstreams in the config, and where their health is read from (each pool's). */
  let configured: readonly string[] = []
  const pools = new Set<() => Iterable<UpstreamHealth>>()
  /** Per upstream in the config: its health where it was marked last (undefined: never marked, or in no pool yet). */
  const health = (): Map<string, UpstreamHealth | undefined> => {
    const out = new Map<string, UpstreamHealth | undefined>(configured.map(u => [u, undefined]))
    for (const read of pools) {
      for (const h of read()) {
        if (!out.has(h.url)) continue                 // a pool that has not followed a reload yet
        const seen = out.get(h.url)
        if (seen === undefined || h.changed > seen.changed) out.set(h.url, h)
      }
    }
    return out
  }
  new Gauge({
    name: `${p}upstream_up`, help: 'Whether a DNS upstream in the config is up (1) or marked down (0: consecutive queries failed; up again at its next answer)',
    labelNames: ['upstream'] as const, registers,
    collect() {
      this.reset()                                   // an upstream a reload took out goes
      for (const [url, h] of health()) this.set({ upstream: upstream(url) }, h?.down === true ? 0 : 1)
    },
  })
  /** upstream label → queries sent again, not yet added to the counter. */
  const resends = new Map<string, number>()
  new Counter({
    name: `${p}upstream_resends_total`, help: 'Queries sent again over UDP to an upstream, unanswered for a third of their time (a half when a third is under 300 ms)',
    labelNames: ['upstream'] as const, registers,
    collect() {
      for (const url of configured) if (url.startsWith('udp://')) this.inc({ upstream: upstream(url) }, 0)   // every series from the start
      for (const [name, n] of resends) this.inc({ upstream: name }, n)
      resends.clear()
    },
  })
  /** upstream label → queries per outcome (ok, timeout, error) not yet added to the counter. */
  const upstreamPending = new Map<string, Float64Array>()
  new Counter({
    name: `${p}upstream_requests_total`, help: 'Queries sent to upstream resolvers by outcome',
    labelNames: ['upstream', 'outcome'] as const, registers,
    collect() {
      for (const [name, cells] of upstreamPending) {
        for (let o = 0; o < UPSTREAM_OUTCOMES.length; o++) {
          if (cells[o] !== 0) this.inc({ upstream: name, outcome: UPSTREAM_OUTCOMES[o]! }, cells[o]!)
          cells[o] = 0
        }
      }
    },
  })
  const upstreamTime = new BucketHistogram(`${p}upstream_duration_seconds`, 'Upstream resolver response time', 'upstream', UPSTREAM_BUCKETS)
  registry.registerMetric(upstreamTime as unknown as Metric)
  const drops = new Map<string, number>()
  new Counter({
    name: `${p}dropped_total`, help: 'Queries or connections dropped', labelNames: ['reason'] as const, registers,
    collect() {
      for (const [reason, n] of drops) this.inc({ reason }, n)
      drops.clear()
    },
  })
  // counted in plain numbers on the connection paths and handed to prom-client at a scrape (a
  // labelled inc hashes its labels each call: several per tunnel)
  /** direction → bytes relayed, not yet added to the counter. */
  const relayed = new Map<string, number>()
  new Counter({
    name: `${p}proxy_bytes_total`, help: 'Bytes relayed by the proxy', labelNames: ['direction'] as const, registers,
    collect() {
      for (const [direction, n] of relayed) this.inc({ direction }, n)
      relayed.clear()
    },
  })
  /** kind → connections open now. */
  const open = new Map<string, number>()
  new Gauge({
    name: `${p}connections`, help: 'Open connections', labelNames: ['kind'] as const, registers,
    collect() { for (const [kind, n] of open) this.set({ kind }, n) },
  })
  const entries = new Gauge({ name: `${p}list_entries`, help: 'Entries loaded per list', labelNames: ['list'] as const, registers })
  const reloads = new Counter({ name: `${p}reloads_total`, help: 'Config and list reloads', labelNames: ['result'] as const, registers })
  const alerts = new Counter({
    name: `${p}alerts_total`, help: 'Alerts at each output: sent (delivered), failed (an attempt that failed), dropped (given up)',
    labelNames: ['output', 'result'] as const, registers,
  })
  for (const output of ALERT_OUTPUTS) for (const result of ALERT_RESULTS) alerts.inc({ output, result }, 0)   // every series from the start
  const fds = new Counter({
    name: `${p}fd_exhausted_total`,
    help: 'Times no file descriptor was free (EMFILE/ENFILE): where=check (the 2-second check; meanwhile new connections are closed as they are accepted), listener (an accept that failed), dns-upstream (an upstream socket that could not open)',
    labelNames: ['where'] as const, registers,
  })
  for (const where of FD_WHERES) fds.inc({ where }, 0)
  let onFd: ((where: FdWhere, code: FdCode) => void) | undefined
  let readLost: (() => { readonly behind: number; readonly behindEvidence: number; readonly failed: number }) | undefined
  const lostSeen = { behind: 0, behindEvidence: 0, failed: 0 }
  const lostReasons = [['behind', 'behind'], ['behind_evidence', 'behindEvidence'], ['failed', 'failed']] as const
  new Counter({
    name: `${p}log_lines_dropped_total`,
    help: 'Log lines lost on stdout: behind (dropped while 64 MiB of lines waited for stdout), behind_evidence (block, sinkhole and alert decision lines, kept past that, dropped while 80 MiB waited), failed (given after stdout failed for good: EPIPE, EBADF)',
    labelNames: ['reason'] as const, registers,
    collect() {
      const now = readLost?.() ?? lostSeen
      for (const [reason, key] of lostReasons) {
        this.inc({ reason }, now[key] - lostSeen[key])
        lostSeen[key] = now[key]
      }
    },
  })

  const decided = (message: DecisionEvent['message'], d: Decision): void => {
    const label = d.list === undefined ? 'none' : list(d.list)
    let cells = pending.get(label)
    if (!cells) { cells = new Float64Array(CELLS); pending.set(label, cells) }
    const a = isRefusal(d) ? REFUSED_IX : ACTION_IX[d.action]
    cells[(sourceIx(message) * ACTIONS.length + a) * WHERES.length + WHERE_IX[d.where]]! += 1
  }
  const counters: Counters = {
    decided,
    cacheLookup: hit => { if (hit) hits++; else misses++ },
    upstream: (u, outcome, seconds) => {
      const name = upstream(u)
      let cells = upstreamPending.get(name)
      if (!cells) { cells = new Float64Array(UPSTREAM_OUTCOMES.length); upstreamPending.set(name, cells) }
      cells[OUTCOME_IX[outcome]]! += 1
      upstreamTime.observe(name, seconds)
    },
    dropped: reason => { drops.set(reason, (drops.get(reason) ?? 0) + 1) },
    proxyBytes: (direction, n) => { relayed.set(direction, (relayed.get(direction) ?? 0) + n) },
    connections: (kind, delta) => { open.set(kind, (open.get(kind) ?? 0) + delta) },
    fdExhausted: (where, code = 'EMFILE') => {
      fds.inc({ where })
      onFd?.(where, code)
    },
    resent: u => {
      const name = upstream(u)
      resends.set(name, (resends.get(name) ?? 0) + 1)
    },
    watchUpstreams: read => {
      pools.add(read)
      return () => { pools.delete(read) }
    },
  }

  return {
    registry,
    counters,
    decision: ev => decided(ev.message, ev.decision),
    setLists(infos) {
      entries.reset()
      for (const i of infos) entries.set({ list: list(i.name) }, i.entries)
    },
    setUpstreams: urls => { configured = [...new Set(urls)] },
    reloaded: ok => reloads.inc({ result: ok ? 'ok' : 'error' }),
    alerted: (output, result) => alerts.inc({ output, result }),
    watchCache: read => { readCache = read },
    onFdExhausted: cb => { onFd = cb },
    watchLog: read => { readLost = read },
  }
}
