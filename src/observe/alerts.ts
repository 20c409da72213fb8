import { LRUCache } from 'lru-cache'
import type { AlertOutput, AlertOutputName, AlertResult } from './alert-output.js'
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

export type { AlertOutput, AlertOutputName, AlertResult } from './alert-output.js'

/** Counts what became of the alerts each output took (`tunnelguard_alerts_total`). */
export type AlertCounter = (output: AlertOutputName, result: AlertResult) => void

export interface AlertDeps {
  /** Reports a delivery problem (the evidence's warn). */
  readonly onError: (msg: string, fields: Record<string, unknown>) => void
  readonly clock?: () => number
  /** Hears each output's results: the metric. */
  readonly count?: AlertCounter
}

/** The key alerts are deduplicated on: the client and the entry (or name, for unparseable names). */
export function dedupKey(ev: DecisionEvent): string {
  const d = ev.decision
  return `${ev.client.ip}|${d.list ?? ''}|${d.entry?.pattern ?? d.name}`
}

/**
 * Wrap outputs with per-client-and-entry deduplication, kept per output (by name); `window` (ms)
 * is read at each alert. An alert an output gives up (`dropped`) does not hold its window: the
 * next one for that client and entry is sent to that output; and one that came while the given-up
 * alert was still being tried (held by its window then) is sent at the give-up, the latest of them
 * (it would otherwise be lost without a line: the window is one alert per client and entry, delivered).
 */
export function dedupAlerts(outputs: () => readonly AlertOutput[], window: () => number, clock: () => number, count: AlertCounter = () => {}): AlertSink {
  interface Mark { readonly at: number; settled: boolean; held?: { ev: DecisionEvent; record: Record<string, unknown> } }
  const last = new Map<AlertOutputName, LRUCache<string, Mark>>()
  const send = (o: AlertOutput, seen: LRUCache<string, Mark>, key: string, ev: DecisionEvent, record: Record<string, unknown>, now: number): void => {
    const mark: Mark = { at: now, settled: false }
    seen.set(key, mark)
    o.send(ev, record, result => {
      count(o.name, result)
      if (result === 'sent') mark.settled = true
      if (result !== 'dropped') return
      mark.settled = true
      if (seen.peek(key) !== mark) return
      seen.delete(key)
      // the alert held behind it goes to the output of that name now: a reload may have replaced
      // `o` (a new URL) since, and a retired webhook only delivers what it had already
      const current = outputs().find(x => x.name === o.name)
      if (mark.held && current) send(current, seen, key, mark.held.ev, mark.held.record, clock())
    })
  }
  return {
    alert(ev, record) {
      const key = dedupKey(ev)
      const now = clock()
      for (const o of outputs()) {
        let seen = last.get(o.name)
        if (!seen) last.set(o.name, seen = new LRUCache({ max: 10_000 }))
        const prev = seen.get(key)
        if (prev !== undefined && now - prev.at < window()) {
          if (!prev.settled) prev.held = { ev, record }
          continue
        }
        send(o, seen, key, ev, record, now)
      }
    },
    async close() {
      await Promise.all(outputs().map(o => o.close()))
    },
  }
}

/** Alerts a reload can change (`configure`); `active` says whether any output is configured. */
export interface ReloadableAlerts extends AlertSink {
  readonly active: boolean
  /**
   * Apply new options: an output whose options did not change is kept (its queue and connection
   * too); a replaced or removed webhook delivers what it has queued and in flight, then closes; a
   * replaced syslog closes at once, giving up what it still holds. The dedup window carries over.
   * Every new output is built before an old one is retired: when one cannot be (a bad URL: it
   * throws), nothing changes, the old outputs keep delivering, and the error is thrown.
   * Returns what changed.
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
  let outputs: AlertOutput[] = []
  // one deduplication across reloads, in front of whichever outputs are configured now
  const dedup = dedupAlerts(() => outputs, () => window, clock, deps.count)

  function retire(o: Slot['out']): void {
    retiring.add(o)
    const done = () => { retiring.delete(o); return o.close() }
    void (o.idle ? o.idle().then(done) : done())
  }
  /**
   * The slot for these options: the same one when they did not change (none for none), else a
   * new output. Nothing is retired here: the old output goes only once every new one is built.
   */
  function next(slot: Slot | undefined, o: object | undefined, make: () => Slot['out']): Slot | undefined {
    const key = JSON.stringify(o)
    if (slot?.key === key) return slot
    return o === undefined ? undefined : { key, out: make() }
  }

  return {
    get active() { return webhook !== undefined || syslog !== undefined },
    configure(opts) {
      // every new output is built before an old one is retired: when one cannot be built (it
      // throws), those built are closed and the old ones stay, delivering, with the old window
      const built: Slot['out'][] = []
      const made = <T extends Slot['out']>(o: T) => { built.push(o); return o }
      let w: Slot | undefined, s: Slot | undefined
      try {
        w = next(webhook, opts.webhook, () => made(createWebhook(opts.webhook!, deps.onError, clock)))
        s = next(syslog, opts.syslog, () => made(createSyslog(opts.syslog!, deps.onError, clock)))
      } catch (e) {
        for (const o of built) void o.close()
        throw e
      }
      const changed = { webhook: w !== webhook, syslog: s !== syslog }
      if (changed.webhook && webhook) retire(webhook.out)
      if (changed.syslog && syslog) retire(syslog.out)
      window = opts.window ?? 300_000
      webhook = w
      syslog = s
      outputs = [w?.out, s?.out].filter(o => o !== undefined)
      return changed
    },
    alert: (ev, record) => dedup.alert(ev, record),
    async close() {
      const closing = dedup.close()
      const retired = [...retiring]
      retiring.clear()
      webhook = syslog = undefined
      outputs = []
      await Promise.all([closing, ...retired.map(o => o.close())])
    },
  }
}
