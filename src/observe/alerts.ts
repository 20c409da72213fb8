import { LRUCache } from 'lru-cache'
import { createSyslog, type SyslogOptions } from './syslog.js'
import type { DecisionEvent } from './types.js'
import { createWebhook, type WebhookOptions } from './webhook.js'

/** Where alerts go besides the log (config `alerts:`). */
export interface AlertsOptions {
  readonly webhook?: WebhookOptions
  readonly syslog?: SyslogOptions
  /** Send one alert per client and entry per window (ms); default 5 minutes. 0 sends every one. */
  readonly window?: number
}

/** Receives block/sinkhole/alert events. Never blocks or throws into the caller. */
export interface AlertSink {
  alert(ev: DecisionEvent, record: Readonly<Record<string, unknown>>): void
  /** Stop sending: drop what is queued, close sockets. */
  close(): Promise<void>
}

/** An output behind the dedup: the webhook or syslog. */
export interface AlertOutput {
  send(ev: DecisionEvent, record: Readonly<Record<string, unknown>>): void
  close(): Promise<void>
}

export interface AlertDeps {
  /** Reports a delivery problem (the evidence's warn). */
  readonly onError: (msg: string, fields: Record<string, unknown>) => void
  readonly clock?: () => number
}

/** The key alerts are deduplicated on: the client and the entry (or name, for unparseable names). */
export function dedupKey(ev: DecisionEvent): string {
  const d = ev.decision
  return `${ev.client.ip}|${d.list ?? ''}|${d.entry?.pattern ?? d.name}`
}

/** Wrap outputs with per-client-and-entry deduplication. */
export function dedupAlerts(outputs: readonly AlertOutput[], window: number, clock: () => number): AlertSink {
  const last = new LRUCache<string, number>({ max: 10_000 })
  return {
    alert(ev, record) {
      const key = dedupKey(ev)
      const now = clock()
      const prev = last.get(key)
      if (prev !== undefined && now - prev < window) return
      last.set(key, now)
      for (const o of outputs) o.send(ev, record)
    },
    async close() {
      await Promise.all(outputs.map(o => o.close()))
    },
  }
}

/** The alert sink for these options, or undefined when no output is configured. */
export function createAlerts(opts: AlertsOptions, deps: AlertDeps): AlertSink | undefined {
  const outputs: AlertOutput[] = []
  const clock = deps.clock ?? Date.now
  if (opts.webhook) outputs.push(createWebhook(opts.webhook, deps.onError, clock))
  if (opts.syslog) outputs.push(createSyslog(opts.syslog, deps.onError, clock))
  if (outputs.length === 0) return undefined
  return dedupAlerts(outputs, opts.window ?? 300_000, clock)
}
