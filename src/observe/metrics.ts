import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { ListInfo } from '../snapshot-types.js'
import type { Counters, DecisionEvent } from './types.js'

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
  /** A reload attempt: `tunnelguard_reloads_total{result=ok|error}`. */
  reloaded(ok: boolean): void
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

function sourceOf(message: DecisionEvent['message']): string {
  if (message === 'dns.query') return 'dns'
  if (message === 'sinkhole.capture') return 'sinkhole'
  return 'proxy'
}

export function createMetrics(opts: { prefix?: string } = {}): Metrics {
  const registry = new Registry()
  const p = opts.prefix ?? 'tunnelguard_'
  collectDefaultMetrics({ register: registry })
  const registers = [registry]
  const decisions = new Counter({
    name: `${p}decisions_total`, help: 'Decided queries and connections by source, action, list and where the name was seen',
    labelNames: ['source', 'action', 'list', 'matched_on'] as const, registers,
  })
  const cache = new Counter({ name: `${p}dns_cache_lookups_total`, help: 'DNS cache lookups', labelNames: ['result'] as const, registers })
  const upstreamReqs = new Counter({
    name: `${p}upstream_requests_total`, help: 'Queries sent to upstream resolvers by outcome',
    labelNames: ['upstream', 'outcome'] as const, registers,
  })
  const upstreamTime = new Histogram({
    name: `${p}upstream_duration_seconds`, help: 'Upstream resolver response time',
    labelNames: ['upstream'] as const, buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers,
  })
  const dropped = new Counter({ name: `${p}dropped_total`, help: 'Queries or connections dropped', labelNames: ['reason'] as const, registers })
  const bytes = new Counter({ name: `${p}proxy_bytes_total`, help: 'Bytes relayed by the proxy', labelNames: ['direction'] as const, registers })
  const conns = new Gauge({ name: `${p}connections`, help: 'Open connections', labelNames: ['kind'] as const, registers })
  const entries = new Gauge({ name: `${p}list_entries`, help: 'Entries loaded per list', labelNames: ['list'] as const, registers })
  const reloads = new Counter({ name: `${p}reloads_total`, help: 'Config and list reloads', labelNames: ['result'] as const, registers })

  const list = bounded()
  const upstream = bounded()
  const children = new Map<string, { inc(): void }>()

  const cacheHit = cache.labels({ result: 'hit' })
  const cacheMiss = cache.labels({ result: 'miss' })
  const counters: Counters = {
    cacheLookup: hit => (hit ? cacheHit : cacheMiss).inc(),
    upstream: (u, outcome, seconds) => {
      const name = upstream(u)
      upstreamReqs.inc({ upstream: name, outcome })
      upstreamTime.observe({ upstream: name }, seconds)
    },
    dropped: reason => dropped.inc({ reason }),
    proxyBytes: (direction, n) => bytes.inc({ direction }, n),
    connections: (kind, delta) => conns.inc({ kind }, delta),
  }

  return {
    registry,
    counters,
    decision(ev) {
      const d = ev.decision
      const source = sourceOf(ev.message)
      const l = d.list === undefined ? 'none' : list(d.list)
      const key = `${source}|${d.action}|${l}|${d.where}`
      let child = children.get(key)
      if (!child) {
        child = decisions.labels({ source, action: d.action, list: l, matched_on: d.where })
        children.set(key, child)
      }
      child.inc()
    },
    setLists(infos) {
      entries.reset()
      for (const i of infos) entries.set({ list: list(i.name) }, i.entries)
    },
    reloaded: ok => reloads.inc({ result: ok ? 'ok' : 'error' }),
  }
}
