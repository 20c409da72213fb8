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

/** A request begins on `conn`: counted (`tunnelguard.requests`), the one before it settled (its answer and destination kept for the close line). */
export function beginRequest(conn: Conn): void {
  settleRequest(conn)
  if (conn.requests > 0) noteDestination(conn)
  conn.requests++
}

/** The destinations a connection's close line lists at most (`tunnelguard.destinations`); past them, a count. */
export const MAX_DESTINATIONS = 16

/** The destinations a connection's requests named, each once (a name lowercased, as closeDestination sets it), in order (`host:port`); `more`: requests to others past MAX_DESTINATIONS. */
export interface Destinations { readonly names: string[]; more: number }

/**
 * The destination the close fields hold (the request before the one beginning, or the last) noted
 * as `host:port`, when it is not yet. Noted only once a second request begins on the connection:
 * a connection of one request (a CONNECT, most plain-HTTP ones) keeps nothing.
 */
function noteDestination(conn: Conn): void {
  const c = conn.close
  const host = (c['destination.domain'] ?? c['destination.ip']) as string | undefined
  if (host === undefined) return
  const name = `${host.includes(':') ? `[${host}]` : host}:${c['destination.port'] as number}`
  const d = conn.destinations ??= { names: [], more: 0 }
  if (d.names.includes(name)) return
  if (d.names.length < MAX_DESTINATIONS) d.names.push(name)
  else d.more++
}

/**
 * The close line's account of what the connection's requests got, the last one settled first:
 * `http.response.status_code` when every answer had the same status (one request, a CONNECT,
 * ten 200s), else each status in `tunnelguard.status_codes`; `event.outcome` of the connection,
 * `failure` when any request failed, `success` when one reached its destination and none failed,
 * none when every request was refused or went unanswered; `tunnelguard.failed_requests` when
 * any failed. The destination (`destination.*`) when every request named the same one; requests
 * to several (a browser's kept-alive connection to its proxy) name none there, each in
 * `tunnelguard.destinations` instead (`host:port`, in order, at most MAX_DESTINATIONS, and
 * `tunnelguard.more_destinations`, the requests to others past them), so that the line's bytes
 * and duration are not put on the last one. A CONNECT tunnel is one request: its close line is as
 * it was.
 */
export function closeFigures(conn: Conn): Record<string, unknown> {
  settleRequest(conn)
  const d = conn.destinations
  if (d !== undefined) noteDestination(conn)
  const a = conn.answers
  const out: Record<string, unknown> = {}
  if (a !== undefined) {
    const one = a.statuses.length === 1
    out['http.response.status_code'] = one ? a.statuses[0] : undefined
    out['tunnelguard.status_codes'] = one || a.statuses.length === 0 ? undefined : a.statuses
    out['event.outcome'] = a.failed > 0 ? 'failure' : a.succeeded > 0 ? 'success' : undefined
    out['tunnelguard.failed_requests'] = a.failed > 0 ? a.failed : undefined
  }
  if (d !== undefined && d.names.length > 1) {
    out['destination.domain'] = undefined
    out['destination.ip'] = undefined
    out['destination.port'] = undefined
    out['tunnelguard.destinations'] = d.names
    if (d.more > 0) out['tunnelguard.more_destinations'] = d.more
  }
  return out
}
