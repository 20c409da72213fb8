/**
 * The admin listener's connection limits: `admin.maxConnections`, one client's share of it, and
 * the time a request head has; the connections closed for them are counted and said.
 */
import type { Server } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { Counter } from 'prom-client'
import { WindowedNotice } from '../dns/rate-limit.js'
import { KeyCounts } from '../key-counts.js'
import { canonicalIp } from '../policy/cidr.js'
import { limitKey, prefixField } from '../policy/limit-key.js'
import type { AdminOptions } from './admin.js'
import { NOTICE_WINDOW_MS } from './throttle.js'

export const ADMIN_MAX_CONNECTIONS = 64
const DROPPED = 'tunnelguard_admin_connections_dropped_total'

/** Why the admin listener closed a connection (the `reason` of DROPPED). */
type CloseReason = 'max_connections' | 'max_per_client' | 'head_timeout'
const CLOSE_REASONS: readonly CloseReason[] = ['max_connections', 'max_per_client', 'head_timeout']

/**
 * Admin connections closed on accept (over `admin.maxConnections`, or over one client's share of
 * it), or for a request head that did not come in time.
 */
function droppedCounter(o: AdminOptions): Counter<'reason'> {
  return o.metrics.registry.getSingleMetric(DROPPED) as Counter<'reason'> | undefined ?? new Counter({
    name: DROPPED, help: 'Admin connections closed by the listener: on accept, over admin.maxConnections (max_connections) or over one client\'s quarter of it, a client counted by its limits prefix (max_per_client); or without a whole request head within the timeout (head_timeout: idle, or sent slowly)',
    labelNames: ['reason'], registers: [o.metrics.registry],
  })
}

/** A connection an answer may still be written on: writable, and no response of node's under way on it. */
function answerable(socket: Duplex): boolean {
  /* c8 ignore next - a parse error while a response is under way (pipelined bytes behind a request): node's own check */
  return socket.writable && (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent !== true
}

/** The limits on `server`'s connections (`timeout`: the request head's, as the server has it). */
export function limitConnections(server: Server, opts: AdminOptions, timeout: number): void {
  const maxConnections = opts.maxConnections ?? ADMIN_MAX_CONNECTIONS
  server.maxConnections = maxConnections
  const perClientMax = Math.max(1, Math.floor(maxConnections / 4))
  /** Connections open per client key (see `clientKey`). */
  const perClient = new KeyCounts()
  /**
   * The key a client's connections are counted under: its address's network by `limits` (a host
   * that rotates its IPv6 addresses in its /64 gets no fresh share with each), the address itself
   * before a snapshot is there.
   */
  const clientKey = (ip: string): string => {
    const limits = opts.getSnapshot()?.config.limits
    return limits ? limitKey(ip, limits) : ip
  }
  const dropped = droppedCounter(opts)
  const ev = opts.evidence
  const why: Readonly<Record<CloseReason, string>> = {
    max_connections: `over admin.maxConnections (${maxConnections}): closed at the accept`,
    max_per_client: `over one client's share of admin.maxConnections (${perClientMax}; a client counted by its limits prefix): closed at the accept`,
    head_timeout: `no whole request head within ${timeout} ms (idle, or sent slowly): closed`,
  }
  // a flood (slowloris: many connections that send nothing, or drip a head) is one line per client
  // and reason per window with its count, not one per connection (and at most 100 clients named per window, the rest summed)
  const notices = ev && Object.fromEntries(CLOSE_REASONS.map(reason => [reason, new WindowedNotice(NOTICE_WINDOW_MS,
    (key, n, ip) => ev.warn('admin connection closed', {
      'client.ip': ip, ...prefixField('tunnelguard.client_prefix', key), 'event.reason': reason, 'tunnelguard.closed': n, 'error.message': why[reason],
    }),
    (clients, n) => ev.warn('admin connection closed', { 'tunnelguard.other_clients': clients, 'event.reason': reason, 'tunnelguard.closed': n, 'error.message': why[reason] }),
  )])) as Record<CloseReason, WindowedNotice> | undefined
  /** A connection of client `key` (from `ip`, canonical) closed by the listener: counted, and said (see `notices`). */
  const closedFor = (reason: CloseReason, ip: string, key: string): void => {
    dropped.inc({ reason })
    notices?.[reason].note(key, performance.now(), ip)
  }
  /** The same, for a connection known by its peer's address only. */
  const closed = (reason: CloseReason, address: string | undefined): void => {
    /* c8 ignore next 4 - defensive: a connection reset before node asked its peer's address has none */
    if (address === undefined) {
      dropped.inc({ reason })
      return
    }
    const ip = canonicalIp(address)
    closedFor(reason, ip, clientKey(ip))
  }
  server.on('drop', data => { closed('max_connections', data?.remoteAddress) })
  server.on('connection', socket => {
    const address = socket.remoteAddress
    /* c8 ignore next 4 - defensive: a connection reset before node asked its peer's address has none */
    if (address === undefined) {
      socket.destroy()
      return
    }
    // counted under the key of the config in force at its accept, and let go under the same key
    const ip = canonicalIp(address)
    const key = clientKey(ip)
    if (!perClient.add(key, perClientMax)) {
      closedFor('max_per_client', ip, key)
      socket.destroy()
      return
    }
    socket.once('close', () => perClient.remove(key))
  })
  server.on('clientError', (e: NodeJS.ErrnoException, socket) => {
    // a request head not whole within `timeout`: a connection that sends nothing, or drips it
    if (e.code === 'ERR_HTTP_REQUEST_TIMEOUT') closed('head_timeout', (socket as Socket).remoteAddress)
    // a request node's parser refused (a bad line, a head too big, a bad Content-Length) is told
    // why, as node's own default tells it, when no answer is under way on the connection
    const status = e.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : String(e.code).startsWith('HPE_') ? '400 Bad Request' : undefined
    if (status !== undefined && answerable(socket)) socket.write(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
    socket.destroy()
  })
}
