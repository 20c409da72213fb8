import type { Socket } from 'node:net'
import { WindowedNotice } from '../dns/rate-limit.js'
import type { FdBudget } from '../observe/fd-check.js'
import type { Evidence } from '../observe/types.js'
import { canonicalIp } from '../policy/cidr.js'
import { keysFor, prefixField, type LimitKeys } from '../policy/limit-key.js'
import { KeyCounts } from '../key-counts.js'
import { LiveSet } from '../live-set.js'
import type { Snapshot } from '../snapshot-types.js'
import { setsOf, type Peer } from './context.js'
import { lingerClose } from './linger.js'
import { rawResponse } from './responses.js'

/** One line per window (with the count) for connections refused at the accept. */
const NOTICE_WINDOW_MS = 10_000

/** An accepted connection let in: its peer, and whether that peer may name the client (PROXY header, X-Forwarded-For). */
export interface Admitted {
  readonly peer: Peer
  readonly trusted: boolean
  /** What it is counted under for proxy.maxConnectionsPerAddress (the peer's address or prefix: limits); none for a trusted peer. */
  readonly key?: string
}

/**
 * Who may hold a proxy connection, decided at the accept, before a byte is read: a peer that is
 * neither an allowed client nor a trusted proxy is closed; past proxy.maxConnections, or an
 * untrusted address past proxy.maxConnectionsPerAddress, or while the process's open files are
 * within the reserve of its limit (FdBudget), the connection gets 503. An untrusted
 * address is counted with the others of its prefix (limits.ipv6Prefix, ipv4Prefix: a host that
 * rotates its IPv6 addresses is one client); a trusted one is not counted. Refusals are logged
 * once per window with their count, not once per connection; a 503 closes in stages (#refuse).
 */
export class Admission {
  /** Connections answered 503 and closing in stages (#refuse): open sockets the proxy still counts, and closes at its close. */
  readonly refused = new LiveSet<Socket>()
  /** Connections open per key (address or prefix) of untrusted peers. */
  readonly #perAddress = new KeyCounts()
  #keys: LimitKeys | undefined
  /** Over proxy.maxConnections: one line per window for all clients, naming the last one. */
  #overloaded = { ip: '', limit: 0 }
  readonly #overload: WindowedNotice
  /** Open files near the limit: one line per window for all clients, naming the last one. */
  #fdLowIp = ''
  readonly #fdLow: WindowedNotice
  readonly #overloadByAddress: WindowedNotice
  readonly #denied: WindowedNotice

  constructor(private readonly evidence: Evidence, private readonly getSnapshot: () => Snapshot, private readonly nowMs: () => number,
    private readonly fds?: FdBudget) {
    /* c8 ignore next - never called: this notice has one key (''), so it never has others to sum */
    const none = (): void => {}
    this.#overload = new WindowedNotice(NOTICE_WINDOW_MS, (_all, n) => {
      evidence.warn('proxy.overload', { 'client.ip': this.#overloaded.ip, 'tunnelguard.max_connections': this.#overloaded.limit, 'tunnelguard.refused': n })
    }, none)
    this.#fdLow = new WindowedNotice(NOTICE_WINDOW_MS, (_all, n) => {
      evidence.warn('proxy.overload', {
        'client.ip': this.#fdLowIp, 'tunnelguard.fd_limit': fds!.limit!, 'tunnelguard.fd_reserve': fds!.reserve, 'tunnelguard.refused': n,
        'error.message': 'open files within the reserve of the limit: new connections get 503 (raise LimitNOFILE / ulimit -n)',
      })
    }, none)
    // past the addresses one window names (a flood from many sources): one line sums the rest
    const others = (message: string) => (clients: number, n: number): void => {
      evidence.warn(message, { 'tunnelguard.other_clients': clients, 'tunnelguard.refused': n })
    }
    this.#overloadByAddress = new WindowedNotice(NOTICE_WINDOW_MS, (key, n, ip) => {
      evidence.warn('proxy.overload', {
        'client.ip': ip, ...prefixField('tunnelguard.client_prefix', key),
        'tunnelguard.max_connections_per_address': getSnapshot().config.proxy.maxConnectionsPerAddress, 'tunnelguard.refused': n,
      })
    }, others('proxy.overload'))
    this.#denied = new WindowedNotice(NOTICE_WINDOW_MS, (ip, n) => {
      evidence.warn('proxy.client_denied', { 'client.ip': ip, 'tunnelguard.refused': n, 'error.message': 'not in proxy.allowClients or proxy.trustForwardedFrom: closed at the accept' })
    }, others('proxy.client_denied'))
  }

  /**
   * Let `socket` in (counted against its address or prefix until `release`), or refuse it (closed, or
   * answered 503) and return undefined. `open`: the client connections open now.
   */
  admit(socket: Socket, open: number): Admitted | undefined {
    const snap = this.getSnapshot()
    const { maxConnections, maxConnectionsPerAddress } = snap.config.proxy
    const sets = setsOf(snap)
    const peer = { ip: canonicalIp(socket.remoteAddress!), port: socket.remotePort! }   // a dual-stack listener's IPv4 client as IPv4
    const trusted = sets.trust.has(peer.ip)
    // a peer that is not a client, nor a proxy that may speak for clients, is closed before it costs a slot
    if (!trusted && !sets.allowClients.has(peer.ip)) {
      this.evidence.counters.dropped('refused')
      this.#denied.note(peer.ip, this.nowMs())
      socket.destroy()
      return undefined
    }
    if (open >= maxConnections) {
      this.#overloaded = { ip: peer.ip, limit: maxConnections }
      this.#overload.note('', this.nowMs())
      return this.#refuse(socket, `too many connections (proxy.maxConnections ${maxConnections})`, maxConnections)
    }
    // descriptors kept for the origins, the DNS upstreams, admin and the log: refused at once, not lingering
    if (this.fds?.low()) {
      this.#fdLowIp = peer.ip
      this.#fdLow.note('', this.nowMs())
      return this.#refuse(socket, 'too many open files', 0)
    }
    if (trusted) return { peer, trusted }                 // a trusted proxy speaks for many clients: not counted
    // one address (or prefix: an IPv6 host's /64) cannot take every slot
    const key = (this.#keys = keysFor(this.#keys, snap.config.limits)).key(peer.ip)
    if (!this.#perAddress.add(key, maxConnectionsPerAddress)) {
      this.#overloadByAddress.note(key, this.nowMs(), peer.ip)
      return this.#refuse(socket, `too many connections from ${key} (proxy.maxConnectionsPerAddress ${maxConnectionsPerAddress})`, maxConnections)
    }
    return { peer, trusted, key }
  }

  /** A connection `admit` let in has closed: `key`, what it was counted under (none: not counted). */
  release(key: string | undefined): void {
    if (key !== undefined) this.#perAddress.remove(key)
  }

  /**
   * Answer 503 and close. The client's request head (and what follows it: a body, a ClientHello
   * pipelined after a CONNECT) comes after the accept, unread: closed at once, the kernel would
   * reset the connection, and the reset can take the answer with it. It is closed in stages
   * instead (lingerClose: within LINGER_MS), while fewer than proxy.maxConnections refused
   * connections do so (`refused`), so that refusals never hold more sockets than the limit lets
   * in; past that, at once, as before.
   */
  #refuse(socket: Socket, why: string, limit: number): undefined {
    this.evidence.counters.dropped('overload')
    socket.write(rawResponse(503, why))
    if (this.refused.size >= limit) {
      socket.destroySoon()
      return undefined
    }
    const slot = this.refused.add(socket)
    socket.once('close', () => this.refused.remove(slot, socket))
    lingerClose(socket)
    return undefined
  }
}
