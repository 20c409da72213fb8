import type { Entry, SigmaRef } from '../match/types.js'

/** What a list (or a group's override) says to do with a match. */
export type Action = 'block' | 'sinkhole' | 'alert'
export type GroupAction = Action | 'off'

/** The outcome: `pass` is an unlisted name, `allow` an allow-exception match. */
export type Outcome = 'block' | 'sinkhole' | 'alert' | 'allow' | 'pass'

/** Where the name was seen (the log's `tunnelguard.matched_on`). */
export type Where = 'qname' | 'cname' | 'connect' | 'sni' | 'host' | 'url'

/** Every outcome and every place, in one order (tables indexed by them: metrics, client table, log pieces). */
export const OUTCOMES: readonly Outcome[] = ['block', 'sinkhole', 'alert', 'allow', 'pass']
export const WHERES: readonly Where[] = ['qname', 'cname', 'connect', 'sni', 'host', 'url']

export interface Decision {
  readonly action: Outcome
  /** One line a person can read: why this action. */
  readonly reason: string
  /**
   * When set, `reason` is `${action}: ${name}${tail}`, and `tail` depends on `entry` alone (one
   * string per entry, so a log writer can keep its encoding per entry).
   */
  readonly tail?: string
  readonly group: string           // 'default' when no group matched
  readonly name: string            // the normalized name decided (or the raw one if unparseable)
  readonly where: Where
  readonly entry?: Entry           // the entry that decided it
  readonly list?: string
  readonly sigma?: SigmaRef
  readonly unparseable?: boolean
  /**
   * The proxy setting that refused the request (`proxy.connectPorts`, `proxy.allowDestinations`)
   * when the refusal is the proxy's own safety rule. With no list entry besides, it is not a tunnel
   * attempt: logged as an event, not an alert, and sent to no alert output.
   */
  readonly policy?: string
}

/** Severity order for precedence: higher wins. */
export const SEVERITY: Readonly<Record<Outcome, number>> = {
  pass: 0, allow: 0, alert: 1, sinkhole: 2, block: 3,
}
