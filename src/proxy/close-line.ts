import type { Conn } from './context.js'

/**
 * What the requests of a connection got, for its close line: each status written to the client
 * (once each, in the order first written), and how many requests failed (the client got a 502
 * or 504, or an answer cut short) or reached what they asked for.
 */
export interface Answers {
  readonly statuses: number[]
  failed: number
  succeeded: number
}

/**
 * The request answered last on `conn` is done (another begins, or the connection closes): its
 * status and outcome, which the handlers keep in the close fields as they learn them, are added
 * to the connection's answers and cleared, so that the next request's are its own.
 */
export function settleRequest(conn: Conn): void {
  const c = conn.close
  const status = c['http.response.status_code'] as number | undefined
  const outcome = c['event.outcome']
  if (status === undefined && outcome === undefined) return
  const a = conn.answers ??= { statuses: [], failed: 0, succeeded: 0 }
  if (status !== undefined && !a.statuses.includes(status)) a.statuses.push(status)
  if (outcome === 'failure') a.failed++
  else if (outcome === 'success') a.succeeded++
  c['http.response.status_code'] = undefined
  c['event.outcome'] = undefined
}

/** A request begins on `conn`: counted (`tunnelguard.requests`), the one before it settled (its answer kept for the close line). */
export function beginRequest(conn: Conn): void {
  settleRequest(conn)
  conn.requests++
}

/**
 * The close line's account of what the connection's requests got, the last one settled first:
 * `http.response.status_code` when every answer had the same status (one request, a CONNECT,
 * ten 200s), else each status in `tunnelguard.status_codes`; `event.outcome` of the connection,
 * `failure` when any request failed, `success` when one reached its destination and none failed,
 * none when every request was refused or went unanswered; `tunnelguard.failed_requests` when
 * any failed. A CONNECT tunnel is one request: its close line is as it was.
 */
export function closeFigures(conn: Conn): Record<string, unknown> {
  settleRequest(conn)
  const a = conn.answers
  if (a === undefined) return {}
  const one = a.statuses.length === 1
  return {
    'http.response.status_code': one ? a.statuses[0] : undefined,
    'tunnelguard.status_codes': one || a.statuses.length === 0 ? undefined : a.statuses,
    'event.outcome': a.failed > 0 ? 'failure' : a.succeeded > 0 ? 'success' : undefined,
    'tunnelguard.failed_requests': a.failed > 0 ? a.failed : undefined,
  }
}
