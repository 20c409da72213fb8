import { WHERES } from '../policy/types.js'

/**
 * Where a decided name was seen, as `report` says it: the log's `tunnelguard.matched_on`
 * (qname, cname, connect, sni, host, url) for DNS queries and proxy requests, and the same
 * prefixed `sinkhole-` for a connection to the sinkhole listener (`sinkhole.capture`:
 * sinkhole-sni, sinkhole-host), which is never proxy traffic.
 */
export const SINKHOLE_PREFIX = 'sinkhole-'

/** Every label, the proxy's and DNS's first, then the sinkhole listener's (one order, for tables indexed by them). */
export const WHERE_LABELS: readonly string[] = [...WHERES, ...WHERES.map(w => SINKHOLE_PREFIX + w)]
