import type { DecisionEvent } from './types.js'

/** The fields naming an alert in an output's own lines: the client and the entry (or the name, as `dedupKey`). */
export function alertFields(ev: DecisionEvent): Record<string, unknown> {
  const d = ev.decision
  return { 'client.ip': ev.client.ip, 'rule.ruleset': d.list, 'rule.name': d.entry?.pattern ?? d.name }
}

/**
 * What went wrong, as a line should say it: the innermost cause (fetch's "fetch failed" keeps
 * `connect ECONNREFUSED 127.0.0.1:9999` in `cause`); each address's error when a connection
 * to several failed (an AggregateError, whose own message is empty).
 */
export function errorText(e: unknown): string {
  let err = e
  while (err instanceof Error && err.cause !== undefined) err = err.cause
  if (err instanceof AggregateError && err.errors.length > 0) return err.errors.map(errorText).join('; ')
  if (!(err instanceof Error)) return String(err)
  return err.message || (err as NodeJS.ErrnoException).code || err.name
}
