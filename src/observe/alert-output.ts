import type { DecisionEvent } from './types.js'

/** The alert outputs: the `output` label of `tunnelguard_alerts_total`. */
export const ALERT_OUTPUTS = ['webhook', 'syslog'] as const
export type AlertOutputName = (typeof ALERT_OUTPUTS)[number]

/**
 * What became of an alert handed to an output: `failed`, once per attempt that failed (the alert
 * may still be sent on a retry); then, once, `sent` (delivered) or `dropped` (given up).
 */
export const ALERT_RESULTS = ['sent', 'failed', 'dropped'] as const
export type AlertResult = (typeof ALERT_RESULTS)[number]

/** An output behind the dedup: the webhook or syslog. */
export interface AlertOutput {
  readonly name: AlertOutputName
  /** Take one alert without waiting; `report` hears what becomes of it (perhaps before `send` returns). */
  send(ev: DecisionEvent, record: Readonly<Record<string, unknown>>, report: (result: AlertResult) => void): void
  close(): Promise<void>
}

/** The fields naming an alert in an output's own lines: the client and the entry (or the name, as `dedupKey`). */
export function alertFields(ev: DecisionEvent): Record<string, unknown> {
  const d = ev.decision
  return { 'client.ip': ev.client.ip, 'rule.ruleset': d.list, 'rule.name': d.entry?.pattern ?? d.name }
}

/**
 * What went wrong, as a line should say it: the innermost cause (fetch's "fetch failed" keeps
 * `connect ECONNREFUSED 127.0.0.1:9999` in `cause`); each address's error when a connection
 * to several failed (an AggregateError, whose own message is empty); a plain object's code.
 */
export function errorText(e: unknown): string {
  let err = e
  while (err instanceof Error && err.cause !== undefined) err = err.cause
  if (err instanceof AggregateError && err.errors.length > 0) return err.errors.map(errorText).join('; ')
  if (!(err instanceof Error)) {
    // undici's causes are sometimes plain objects: their code says what failed, or nothing does
    if (typeof err !== 'object' || err === null) return String(err)
    const code = (err as { code?: unknown }).code
    return typeof code === 'string' ? code : ''
  }
  return err.message || (err as NodeJS.ErrnoException).code || err.name
}
