import { WHERES, type Where } from '../policy/types.js'
import type { DecisionEvent } from './types.js'

/**
 * Where a decided name was seen, as `report` and `/api/clients` both say it: the log's
 * `tunnelguard.matched_on` (qname, cname, connect, sni, host, url) for DNS queries and proxy
 * requests, and the same prefixed `sinkhole-` for a connection to the sinkhole listener
 * (`sinkhole.capture`: sinkhole-sni, sinkhole-host), which is never proxy traffic.
 */
export const SINKHOLE_PREFIX = 'sinkhole-'

/** Every label, the proxy's and DNS's first, then the sinkhole listener's (one order, for tables indexed by them). */
export const WHERE_LABELS: readonly string[] = [...WHERES, ...WHERES.map(w => SINKHOLE_PREFIX + w)]

const AT = new Map<string, number>(WHERES.map((w, i) => [w, i]))

/** Where the label of a place is in WHERE_LABELS; `message` tells a sinkhole capture from the rest. */
export function whereIndex(message: DecisionEvent['message'], where: Where): number {
  return (message === 'sinkhole.capture' ? WHERES.length : 0) + AT.get(where)!
}
