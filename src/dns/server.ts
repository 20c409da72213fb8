import { createSocket, type Socket } from 'node:dgram'
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { splitHostPort } from '../config/endpoints.js'
import { AppError } from '../errors.js'
import { canonicalIp, canonicalIps } from '../policy/cidr.js'
import { throttled } from '../observe/throttle.js'
import type { CacheStats, Evidence } from '../observe/types.js'
import type { Snapshot } from '../snapshot-types.js'
import { QueryHandler } from './handler.js'
import { flushSends, sendSoon } from './send-batch.js'
import type { FdBudget } from '../observe/fd-check.js'
import { TcpClients, TcpListener } from './tcp-listener.js'
import { UDP_SOCKET_BUFFER } from './upstream-udp.js'
import { MAX_TIMER_MS } from '../config/duration.js'

export interface DnsAddress { transport: 'udp' | 'tcp'; address: string; port: number }

export interface DnsService {
  readonly addresses: readonly DnsAddress[]
  /** The answer cache's entries and bytes (for /metrics). */
  cacheStats(): CacheStats
  /** Stop accepting, drain the queries in flight, then close every socket. */
  close(): Promise<void>
}

export interface DnsOptions {
  readonly listen: readonly string[]
  readonly getSnapshot: () => Snapshot
  readonly evidence: Evidence
  /** hrtime in ns (injected in tests). */
  readonly clock?: () => bigint
  /** The process's descriptors: TCP connections past their reserve close an idle one or are refused (none: no reserve kept). */
  readonly fds?: FdBudget
}

const BIND_TRIES = 10

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void

/**
 * The listener's `lookup`. dgram asks it for every `send` to an address (and for the bind), and
 * the default (dns.lookup) answers a numeric address on the next tick, through a closure and a
 * bound function. A reply only ever goes back to the address its query came from, which the
 * kernel gave as a numeric address of the socket's family, and the bind address is made numeric
 * before the bind (bindUdp): it is handed back at once.
 */
function numericLookup(family: 4 | 6): (address: string, _: unknown, cb: LookupCallback) => void {
  return (address, _, cb) => cb(null, address, family)
}


/** What a UDP listener does with a datagram, and with an error of its socket. */
export interface UdpListener {
  onMessage(s: Socket, msg: Buffer, ip: string, port: number): void
  onError(e: Error): void
}

/**
 * A datagram is a query to answer, on the socket it came in on. One from port 0 is dropped as
 * malformed: no reply can go back to it (dgram throws on such a send, and the throw, out of any
 * handler, ended the process: one spoofed datagram stopped DNS for everyone). A reply that cannot
 * be sent (a client with no route back, a firewall, no buffer: ENOBUFS) is an error of the
 * socket, said at most once per 10 s with the count (`errors`).
 */
export function udpListener(handler: QueryHandler, evidence: Evidence, closed: () => boolean,
  now: () => number = () => performance.now()): UdpListener {
  const clientIp = canonicalIps()
  const sendFailed = throttled((e: Error, errors: number) => evidence.warn('dns udp socket error', { error: e.message, errors }), now)
  return {
    onMessage(s, msg, ip, port) {
      if (port === 0) return evidence.counters.dropped('malformed')
      handler.handle(msg, { ip: clientIp(ip), port, transport: 'udp' }, reply => {
        if (reply && !closed()) sendSoon(s, reply, port, ip)
      })
    },
    onError: sendFailed,
  }
}

async function bindUdp(name: string, port: number, listener: UdpListener): Promise<Socket> {
  const v6 = name.includes(':')                    // only an IPv6 literal has a colon (splitHostPort)
  // a listen address written as a name (`localhost:53`) is resolved here, once, to IPv4, as dgram's default lookup did for a udp4 socket
  const host = isIP(name) !== 0 ? name : (await lookup(name, { family: 4 })).address
  const s = createSocket({
    type: v6 ? 'udp6' : 'udp4', ipv6Only: v6, recvBufferSize: UDP_SOCKET_BUFFER, sendBufferSize: UDP_SOCKET_BUFFER,
    lookup: numericLookup(v6 ? 6 : 4),
  })
  return new Promise((resolve, reject) => {
    s.once('error', reject)
    s.bind({ address: host, port, exclusive: true }, () => {
      s.off('error', reject)
      s.on('error', e => listener.onError(e))
      s.on('message', (msg, r) => listener.onMessage(s, msg, r.address, r.port))
      resolve(s)
    })
  })
}

/**
 * An IPv4-mapped listen address (`::ffff:127.0.0.1`) as its IPv4 address: the listeners of an
 * IPv6 address take IPv6 clients only, and such an address cannot be bound on an IPv6-only socket.
 */
function asIpv4(host: string): string {
  const c = canonicalIp(host)
  return host.includes(':') && !c.includes(':') ? c : host
}

/** Start UDP and TCP listeners on every address (port 0: one free port shared by both). */
export async function startDns(opts: DnsOptions): Promise<DnsService> {
  const { evidence, getSnapshot } = opts
  const handler = new QueryHandler({ getSnapshot, evidence, clock: opts.clock ?? process.hrtime.bigint })
  const udps: Socket[] = []
  const tcps: TcpListener[] = []
  const tcpClients = new TcpClients(evidence, getSnapshot, opts.fds)   // a client's connections counted across all listeners
  const addresses: DnsAddress[] = []
  let closed = false
  const udpListen = udpListener(handler, evidence, () => closed)
  const closeAll = async (): Promise<void> => {
    flushSends()                                   // the answers of this turn go out before the sockets close
    closed = true
    const stopped = tcps.map(t => t.stopAccepting())
    for (const t of tcps) t.destroyAll()
    await Promise.all(stopped)
    await Promise.all(udps.map(u => new Promise<void>(r => u.close(() => r()))))
    handler.close()
  }
  try {
    for (const l of opts.listen) {
      const parsed = splitHostPort(l)
      if (!parsed) throw new AppError('CONFIG_INVALID', `dns.listen: not HOST:PORT: ${l}`)
      const hp = { host: asIpv4(parsed.host), port: parsed.port }
      for (let attempt = 1; ; attempt++) {
        const udp = await bindUdp(hp.host, hp.port, udpListen)
        const port = udp.address().port
        const tcp = new TcpListener(handler, getSnapshot, evidence, tcpClients)
        try {
          await tcp.listen(hp.host, port)
        } catch (e) {
          udp.close()
          /* c8 ignore next - port 0: another process took the UDP socket's port for TCP in between; try another */
          if (hp.port === 0 && attempt < BIND_TRIES) continue
          throw e
        }
        udps.push(udp)
        tcps.push(tcp)
        addresses.push({ transport: 'udp', address: hp.host, port }, { transport: 'tcp', address: hp.host, port })
        break
      }
    }
  } catch (e) {
    await closeAll()
    throw e
  }
  // objects, as proxy.listening writes its addresses: one field, one type in an index
  evidence.info('dns.listening', { addresses })
  let closing: Promise<void> | undefined
  return {
    addresses,
    cacheStats: () => handler.cacheStats,
    close(): Promise<void> {
      closing ??= (async () => {
        for (const t of tcps) void t.stopAccepting()
        const limit = Math.min(getSnapshot().config.dns.timeout + 1000, MAX_TIMER_MS)
        let timer: NodeJS.Timeout | undefined
        await Promise.race([handler.drain(), new Promise<void>(r => { timer = setTimeout(r, limit) })])
        clearTimeout(timer)
        await closeAll()
      })()
      return closing
    },
  }
}
