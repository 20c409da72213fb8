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
  /** False while no output is configured (a reloadable sink): no record is built for it then. */
  readonly active?: boolean
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

/** Wrap outputs with per-client-and-entry deduplication; `window` (ms) is read at each alert. */
export function dedupAlerts(outputs: readonly AlertOutput[], window: () => number, clock: () => number): AlertSink {
  const last = new LRUCache<string, number>({ max: 10_000 })
  return {
    alert(ev, record) {
      const key = dedupKey(ev)
      const now = clock()
      const prev = last.get(key)
      if (prev !== undefined && now - prev < window()) return
      last.set(key, now)
      for (const o of outputs) o.send(ev, record)
    },
    async close() {
      await Promise.all(outputs.map(o => o.close()))
    },
  }
}

/** Alerts a reload can change (`configure`); `active` says whether any output is configured. */
export interface ReloadableAlerts extends AlertSink {
  readonly active: boolean
  /**
   * Apply new options: an output whose options did not change is kept (its queue and connection
   * too); a replaced or removed webhook delivers what it has queued and in flight, then closes; a
   * replaced syslog closes at once. The dedup window carries over. Returns what changed.
   */
  configure(opts: AlertsOptions): { webhook: boolean; syslog: boolean }
}

type Slot = { key: string | undefined; out: AlertOutput & { idle?: () => Promise<void> } }

/** An alert sink whose outputs follow the config across reloads. */
export function createReloadableAlerts(deps: AlertDeps): ReloadableAlerts {
  const clock = deps.clock ?? Date.now
  const retiring = new Set<AlertOutput>()
  let window = 300_000
  let webhook: Slot | undefined
  let syslog: Slot | undefined
  // one deduplication across reloads, in front of whichever outputs are configured now
  const dedup = dedupAlerts([{
    send(ev, record) {
      webhook?.out.send(ev, record)
      syslog?.out.send(ev, record)
    },
    async close() {
      const outs = [webhook?.out, syslog?.out]
      webhook = syslog = undefined
      await Promise.all(outs.map(o => o?.close()))
    },
  }], () => window, clock)

  function retire(o: Slot['out']): void {
    retiring.add(o)
    const done = () => { retiring.delete(o); return o.close() }
    void (o.idle ? o.idle().then(done) : done())
  }
  /** The slot for these options: the same one when they did not change (none for none). */
  function next(slot: Slot | undefined, o: object | undefined, make: () => Slot['out']): Slot | undefined {
    const key = JSON.stringify(o)
    if (slot?.key === key) return slot
    if (slot) retire(slot.out)
    return o === undefined ? undefined : { key, out: make() }
  }

  return {
    get active() { return webhook !== undefined || syslog !== undefined },
    configure(opts) {
      window = opts.window ?? 300_000
      const w = next(webhook, opts.webhook, () => createWebhook(opts.webhook!, deps.onError, clock))
      const s = next(syslog, opts.syslog, () => createSyslog(opts.syslog!, deps.onError, clock))
      const changed = { webhook: w !== webhook, syslog: s !== syslog }
      webhook = w
      syslog = s
      return changed
    },
    alert: (ev, record) => dedup.alert(ev, record),
    async close() {
      const retired = [...retiring]
      retiring.clear()
      await Promise.all([dedup.close(), ...retired.map(o => o.close())])
    },
  }
}
