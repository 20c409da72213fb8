import { isIP, type Socket } from 'node:net'
import type { IncomingHttpHeaders } from 'node:http'
import { CidrSet, canonicalIp } from '../policy/cidr.js'
import type { Evidence } from '../observe/types.js'
import type { Answers, Destinations } from './close-line.js'
import type { Snapshot } from '../snapshot-types.js'
import type { DestinationGuard } from './address.js'
import type { PoolAgent } from './pool-agent.js'
import type { Tunnels } from './tunnels.js'
import { basicAuth } from '../url-secrets.js'
import { forwardedHops, nodeAddress, type ForwardedHop } from './forwarded.js'

/** Resolution through tunnelguard's own upstreams: the addresses and the CNAME chain of the answer. */
export type Resolve = (name: string) => Promise<{ addresses: string[]; cnames: string[] }>

/** A client or peer address; port 0 when it is not known (a client named by Forwarded or X-Forwarded-For), and then not logged. */
export interface Peer { readonly ip: string; readonly port: number }

/** One accepted client connection (HTTP keep-alive or a CONNECT tunnel). */
export interface Conn {
  readonly id: number
  readonly socket: Socket
  readonly peer: Peer
  /** The client: the peer, or the source a trusted peer named in a PROXY protocol header. */
  client: Peer
  readonly start: bigint
  requests: number
  /** Framing was refused: the rest of the bytes on this connection are not trusted (no pipelined request is served). */
  poisoned: boolean
  /** Requests on this connection whose responses are not finished yet. */
  answering: number
  /** Called once `answering` is back to 0 (a CONNECT pipelined after requests waits for it). */
  onAnswered?: () => void
  /** Outbound plain-HTTP requests made for this connection and not yet closed: destroyed when it closes. */
  readonly upstreams: Set<{ destroy(): void }>
  /** Fields added to the connection's close line (destination, SNI, error, …); the status and outcome are the current request's. */
  readonly close: Record<string, unknown>
  /** What the requests before the current one got (close-line.ts): none yet, none answered. */
  answers?: Answers
  /** The destinations of its requests, once a second one began (close-line.ts). */
  destinations?: Destinations
}

/** What the request handlers share; built once by startProxy. */
export interface ProxyCtx {
  readonly getSnapshot: () => Snapshot
  readonly evidence: Evidence
  readonly resolve: Resolve
  readonly clock: () => bigint
  readonly guard: DestinationGuard
  readonly agent: PoolAgent
  readonly connectTimeout: number
  /** Count an outbound socket in openConnections until it closes. */
  readonly track: (s: Socket) => void
  /** The open CONNECT tunnels, decided again at a reload. */
  readonly tunnels: Tunnels
}

export interface Parent { readonly host: string; readonly port: number; readonly auth?: string }

/** The CIDR sets and parent of a snapshot, built once per snapshot. */
export interface ProxySets {
  readonly allowClients: CidrSet
  readonly trust: CidrSet
  readonly allowDest: CidrSet
  /** proxy.httpPorts as inclusive [low, high] ranges. */
  readonly httpPorts: readonly (readonly [number, number])[]
  readonly parent?: Parent
}

const memo = new WeakMap<Snapshot, ProxySets>()

export function setsOf(snap: Snapshot): ProxySets {
  let s = memo.get(snap)
  if (!s) {
    const p = snap.config.proxy
    s = {
      allowClients: new CidrSet(p.allowClients ?? snap.config.dns.allowClients),
      trust: new CidrSet(p.trustForwardedFrom),
      allowDest: new CidrSet(p.allowDestinations),
      httpPorts: p.httpPorts.map(r => {
        const [lo, hi] = String(r).split('-').map(Number)
        return [lo!, hi ?? lo!] as const
      }),
      parent: p.parent ? parseParent(p.parent) : undefined,
    }
    memo.set(snap, s)
  }
  return s
}

/** http://[user:pass@]host[:port] → host, port (default 80) and a Basic Proxy-Authorization value. */
export function parseParent(url: string): Parent {
  const u = new URL(url)
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname
  const port = u.port === '' ? 80 : Number(u.port)
  const auth = basicAuth(u)
  return auth === undefined ? { host, port } : { host, port, auth }
}

/** Hops of a Forwarded or X-Forwarded-For list read at most (the nearest ones). */
const MAX_XFF = 32
/** Characters of an unreadable Forwarded or X-Forwarded-For entry kept on the line. */
const MAX_UNREADABLE = 64

/**
 * An X-Forwarded-For entry's or Forwarded node's address: bare, IPv4 with a port (`192.0.2.1:5555`) or IPv6 in
 * brackets with or without one (`[2001:db8::1]:5`), as RFC 7239 writes a node and load balancers
 * send it; a zone is dropped (`fe80::1%eth0` is `fe80::1`, as a link-local client is named).
 * Undefined when it is none.
 */
export function forwardedIp(s: string): string | undefined {
  const m = /^\[([^\]]*)\](?::\d{1,5})?$/.exec(s) ?? /^([\d.]+):\d{1,5}$/.exec(s)
  const ip = (m ? m[1]! : s).replace(/%[^%]*$/, '')
  const family = isIP(ip)
  // brackets hold IPv6 only, a port follows IPv4 (a bare IPv6 address has colons of its own)
  if (family === 0 || (m !== null && (family === 6) !== s.startsWith('['))) return undefined
  return canonicalIp(ip)
}

/** The client a request speaks for; `unreadable`: what could not be read where the walk stopped (an entry, no address; cut to MAX_UNREADABLE). */
export interface Speaker { readonly client: Peer; readonly unreadable?: string }

/** One hop of a list a trusted peer sent: the address it names, or the text that names none. */
type Hop = { readonly ip: string } | { readonly bad: string }

function xffHop(entry: string): Hop {
  const text = entry.trim()
  const ip = forwardedIp(text)
  return ip === undefined ? { bad: text } : { ip }
}

function forwardedHop(h: ForwardedHop): Hop {
  const ip = h.for === undefined ? undefined : forwardedIp(nodeAddress(h.for))
  return ip === undefined ? { bad: h.for ?? h.text } : { ip }
}

/**
 * The client a request speaks for. When the connection's client is in trustForwardedFrom, the
 * list of hops its headers name is walked right to left past trusted hops (the Squid model); the
 * first untrusted address is the client. A hop that is no address stops the walk: the last hop
 * read (the peer, behind one proxy) stays the client, and the hop is returned, for the line to
 * say that the real client was not found.
 *
 * The list is `Forwarded`'s (RFC 7239) when it names a client (an element has a `for`), else
 * X-Forwarded-For's. With both, their last hops, the ones the trusted peer wrote, must name the
 * same address: a peer that keeps one header passes the other on as its client sent it, and the
 * client could name anyone in it. When they differ, which one the peer wrote is not known: the
 * peer stays the client and both last hops are returned. A request with neither header costs two
 * property reads.
 */
export function effectiveClient(client: Peer, headers: IncomingHttpHeaders, trust: CidrSet): Speaker {
  const xff = headers['x-forwarded-for']
  const fwd = headers.forwarded
  if ((xff === undefined && fwd === undefined) || !trust.has(client.ip)) return { client }
  const x = xff === undefined ? undefined : (Array.isArray(xff) ? xff.join(',') : xff).split(',')
  const f = fwd === undefined ? undefined : forwardedHops(Array.isArray(fwd) ? fwd.join(', ') : fwd)
  if (f === undefined) return x === undefined ? { client } : walk(client, x.length, i => xffHop(x[i]!), trust)
  if (x !== undefined) {
    const a = forwardedHop(f.at(-1)!)
    const b = xffHop(x.at(-1)!)
    const said = (h: Hop) => 'ip' in h ? h.ip : undefined
    // neither an address: the walk below stops at once, and says Forwarded's
    if ((said(a) ?? said(b)) !== undefined && said(a) !== said(b)) {
      const text = (h: Hop) => 'ip' in h ? h.ip : h.bad.slice(0, MAX_UNREADABLE)
      return { client, unreadable: `Forwarded ${text(a)}, X-Forwarded-For ${text(b)}` }
    }
  }
  return walk(client, f.length, i => forwardedHop(f[i]!), trust)
}

function walk(client: Peer, count: number, hop: (i: number) => Hop, trust: CidrSet): Speaker {
  let c = client
  for (let i = count - 1; i >= Math.max(0, count - MAX_XFF); i--) {
    const h = hop(i)
    if (!('ip' in h)) return { client: c, unreadable: h.bad.slice(0, MAX_UNREADABLE) }
    c = { ip: h.ip, port: 0 }
    if (!trust.has(h.ip)) break
  }
  return { client: c }
}

/**
 * A client as the fields of an operational line: `client.ip`, and `client.port` only when it is
 * known (a client named by Forwarded or X-Forwarded-For has none: 0 would read as a real port; PROXY protocol
 * names the port, and it is written).
 */
export function clientFields(client: Peer): { 'client.ip': string; 'client.port'?: number } {
  return client.port === 0 ? { 'client.ip': client.ip } : { 'client.ip': client.ip, 'client.port': client.port }
}

/**
 * What a decision line adds for a client a peer named (by PROXY protocol, Forwarded or
 * X-Forwarded-For): the peer, as `source.ip` and `source.port`, which the connection's close line
 * has too (the two lines are joined by them: the client named has no port, or another's); and
 * `tunnelguard.forwarded_unreadable`, a hop that could not be read (the client may be a proxy).
 * Nothing for a client that is the peer itself.
 */
export function namedBy(conn: Conn, client: Peer, unreadable: string | undefined): Record<string, unknown> | undefined {
  const peer = peerFields(conn, client)
  if (peer === undefined && unreadable === undefined) return undefined
  return { ...peer, ...unreadable === undefined ? {} : { 'tunnelguard.forwarded_unreadable': unreadable } }
}

/** The peer as `source.ip`/`source.port` when it named the client (the client is not the peer itself). */
export function peerFields(conn: Conn, client: Peer): { 'source.ip': string; 'source.port': number } | undefined {
  return client.ip !== conn.peer.ip || client.port !== conn.peer.port ? { 'source.ip': conn.peer.ip, 'source.port': conn.peer.port } : undefined
}

/**
 * The fields of a `proxy.client_denied` line for a request refused for its client: who, why, and
 * (when a trusted peer named the client, by PROXY protocol, Forwarded or X-Forwarded-For) the peer that did.
 */
export function deniedFields(conn: Conn, client: Peer, method: string | undefined): Record<string, unknown> {
  return {
    ...clientFields(client), 'http.request.method': method,
    'error.message': 'not in proxy.allowClients: 403',
    ...peerFields(conn, client),
  }
}
