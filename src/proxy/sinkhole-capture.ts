import type { Socket } from 'node:net'
import type { Evidence } from '../observe/types.js'
import { canonicalIp } from '../policy/cidr.js'
import type { Decision } from '../policy/types.js'
import type { Snapshot } from '../snapshot-types.js'
import { destinationOfName, parseAuthority } from './address.js'
import type { Resolve } from './context.js'
import { chainOf, decideTarget, worse } from './decide.js'
import { boundAddresses, listenOn } from './listen.js'
import type { ProxyService } from './server.js'
import { MAX_HELLO_BYTES, parseClientHello } from './sni.js'
import { WindowedNotice } from '../dns/rate-limit.js'
import { KeyCounts } from '../key-counts.js'
import { NOTICE_WINDOW_MS } from '../observe/throttle.js'
import { keysFor, prefixField, type LimitKeys } from '../policy/limit-key.js'

export interface SinkholeOptions {
  readonly listen: readonly string[]
  readonly getSnapshot: () => Snapshot
  readonly evidence: Evidence
  /** Through tunnelguard's upstreams: a name no list matches is resolved for its CNAME chain. */
  readonly resolve: Resolve
  readonly clock?: () => bigint
}

/** `ech`: the ClientHello carries Encrypted Client Hello (the name is its outer SNI); `ip`: the Host is an address. */
type Named = { readonly name: string; readonly where: 'sni' | 'host'; readonly ech?: boolean; readonly ip?: true } | { readonly reason: string }

/**
 * The bytes from the first handshake record on: TLS records of other types sent before the hello
 * (a warning alert, which Go's TLS server skips) are passed over, so that the capture still names
 * the SNI. Undefined while a record before it is incomplete.
 */
function pastOtherRecords(buf: Buffer): Buffer | undefined {
  let off = 0
  while (off < buf.length && buf[off] !== 0x16 && buf[off]! >= 0x14 && buf[off]! <= 0x18) {
    if (off + 5 > buf.length) return undefined
    off += 5 + buf.readUInt16BE(off + 3)
  }
  return off > buf.length ? undefined : buf.subarray(off)
}

/**
 * A Host no host name is (its bytes as latin1) written as dig writes a DNS name (as a DNS
 * question's is logged): a control, a space or an octet over 0x7e as `\DDD`, and `"\();@$` after a
 * backslash, so that no raw control reaches a log line, a report (its csv too) or a terminal. It
 * is decided as the proxy decides a Host no host name is (blocked, fail closed).
 */
function digText(host: string): string {
  return host.replace(/[\u0000-\u0020\u007f-\u00ff"\\();@$]/g, c => {
    const n = c.charCodeAt(0)
    return n <= 0x20 || n >= 0x7f ? `\\${String(n).padStart(3, '0')}` : `\\${c}`
  })
}

/**
 * What the first bytes name: the SNI of a ClientHello, the Host of an HTTP request, or why neither.
 * At MAX_HELLO_BYTES it is decided on what came, whatever came (records of other types too): a
 * client never makes the capture hold more.
 */
export function nameOf(whole: Buffer, final: boolean): Named | undefined {
  const full = whole.length >= MAX_HELLO_BYTES
  const last = final || full
  const buf = pastOtherRecords(whole)
  const within = full ? ` within the first ${MAX_HELLO_BYTES} bytes` : ''
  if (buf === undefined) return last ? { reason: full ? `TLS records without a ClientHello${within}` : 'incomplete TLS record' } : undefined
  if (buf.length === 0 && whole.length > 0) return last ? { reason: `TLS records without a ClientHello${within}` } : undefined
  if (buf.length > 0 && buf[0] === 0x16) {
    const r = parseClientHello(buf)
    if (r.kind === 'partial') return last ? { reason: `incomplete ClientHello${within}` } : undefined
    if (r.kind === 'invalid') return { reason: `malformed ClientHello: ${r.reason}` }
    return r.kind === 'hello' && r.names.length > 0 ? { name: r.names[0]!, where: 'sni', ech: r.ech } : { reason: 'ClientHello without SNI' }
  }
  const end = buf.indexOf('\r\n\r\n')
  if (end < 0 && !last) return undefined                 // (the whole read counted: records before the head too)
  const m = /\r\nhost:[ \t]*([^\r\n]*)/i.exec(buf.toString('latin1', 0, end < 0 ? buf.length : end))
  if (!m) return { reason: buf.length === 0 ? 'no bytes' : 'neither TLS nor an HTTP request with a Host' }
  const host = m[1]!.trim()
  if (host === '') return { reason: 'an HTTP request with an empty Host' }
  const t = parseAuthority(host, 80)
  return t?.ip !== undefined ? { name: t.ip, where: 'host', ip: true } : { name: t?.host ?? digText(host), where: 'host' }
}

/**
 * The decision logged for a connection that reached the sinkhole: the name's own, else its CNAME
 * chain's (a custom domain CNAMEd to a tunnel service: DNS sinkholed it for a name in its answer).
 * When neither is listed (the list changed since, or the client had the address from elsewhere)
 * the connection is still the evidence: it is logged as a sinkhole decision on that name, with no list.
 */
async function captured(snap: Snapshot, resolve: Resolve, client: string, own: Decision, ip: boolean): Promise<Decision> {
  if (own.action !== 'pass') return own
  const d = ip ? own : worse(own, (await chainOf({ resolve }, snap, client, own.name)).cname)
  if (d.action !== 'pass') return d
  const why = ip ? 'an address, which no list names' : 'no list matches it or its CNAME chain now'
  return { ...own, action: 'sinkhole', reason: `sinkhole: ${own.name} reached the sinkhole capture; ${why}` }
}

/** How many of the first bytes a capture that names nothing logs (hex). */
const FIRST_BYTES = 16

/**
 * Who may hold a capture connection: at most proxy.maxConnections in all and
 * proxy.maxConnectionsPerAddress from one address (or prefix: limits), as at the proxy, so that
 * one host holding silent connections does not hide the agents that connect after it. Each
 * refusal is counted (`dropped{reason="overload"}`) and said in a `sinkhole.overload` warning,
 * once per window with the count.
 */
function captureRefusals(evidence: Evidence) {
  const perAddress = new KeyCounts()
  let keys: LimitKeys | undefined
  let limits = { all: 0, each: 0 }
  const notice = new WindowedNotice(NOTICE_WINDOW_MS, (key, n, ip) => {
    evidence.warn('sinkhole.overload', {
      'client.ip': ip, ...prefixField('tunnelguard.client_prefix', key), 'tunnelguard.refused': n,
      'tunnelguard.max_connections': limits.all, 'tunnelguard.max_connections_per_address': limits.each,
      'error.message': 'connections to the sinkhole capture closed at the accept, unread (proxy.maxConnections, proxy.maxConnectionsPerAddress)',
    })
  }, (clients, n) => { evidence.warn('sinkhole.overload', { 'tunnelguard.other_clients': clients, 'tunnelguard.refused': n }) })
  return {
    /** The function that releases the connection's place, or undefined when it is refused. */
    admit(snap: Snapshot, ip: string, open: number): (() => void) | undefined {
      const { maxConnections, maxConnectionsPerAddress } = snap.config.proxy
      const key = (keys = keysFor(keys, snap.config.limits)).key(ip)
      if (open >= maxConnections || !perAddress.add(key, maxConnectionsPerAddress)) {
        limits = { all: maxConnections, each: maxConnectionsPerAddress }
        evidence.counters.dropped('overload')
        notice.note(key, Date.now(), ip)
        return undefined
      }
      return () => perAddress.remove(key)
    },
  }
}

/**
 * The sinkhole listener: when DNS sinkholes a name to tunnelguard's own address, the TLS and
 * HTTP connections that follow land here. Each is logged (client, SNI or Host, the decision on
 * that name) and closed, within proxy.helloTimeout; nothing is answered.
 */
export async function startSinkholeCapture(opts: SinkholeOptions): Promise<Omit<ProxyService, 'redecide'>> {
  const clock = opts.clock ?? process.hrtime.bigint
  const { evidence } = opts
  const open = new Set<Socket>()
  const refusals = captureRefusals(evidence)
  const onSocket = (socket: Socket) => {
    socket.on('error', () => { /* resets are normal; 'close' follows */ })
    /* c8 ignore next 4 - a race (a reset between the accept and here), as at the proxy's listener */
    if (socket.remoteAddress === undefined) {        // no client to name: nothing to log (canonicalIp threw, ending the process)
      socket.destroy()
      return
    }
    const snap = opts.getSnapshot()
    const client = { ip: canonicalIp(socket.remoteAddress), port: socket.remotePort! }
    const release = refusals.admit(snap, client.ip, open.size)
    if (release === undefined) {
      socket.destroy()
      return
    }
    open.add(socket)
    socket.once('close', () => { open.delete(socket); release() })
    const start = clock()
    const localPort = socket.localPort!                 // (an accepted connection has one)
    let buf = Buffer.alloc(0)
    let done = false
    const finish = (final: boolean) => {
      const n = done ? undefined : nameOf(buf, final)
      if (!n) return
      done = true
      clearTimeout(timer)
      socket.removeAllListeners('data')
      socket.destroy()
      if ('reason' in n) {
        // which listener (443 or 80), and what came: its size and first bytes (hex), to tell one protocol from another
        evidence.warn('sinkhole.capture', {
          'client.ip': client.ip, 'client.port': client.port, 'destination.port': localPort, 'error.message': n.reason,
          'source.bytes': buf.length, 'tunnelguard.first_bytes': buf.length > 0 ? buf.toString('hex', 0, FIRST_BYTES) : undefined,
        })
        return
      }
      // an address is no name a list holds (as at the proxy): its line is the evidence
      const own = n.ip === true ? decideTarget(snap, client.ip, { host: n.name, ip: n.name, port: localPort }, 'host')
        : snap.policy.decide(client.ip, n.name, n.where)
      void captured(snap, opts.resolve, client.ip, own, n.ip === true).then(decision => {
        evidence.decision({
          message: 'sinkhole.capture', decision, client, transport: 'tcp', durationNs: Number(clock() - start),
          destination: { ...destinationOfName(own.name), port: localPort },
          ...(n.where === 'sni' ? { sni: n.name } : { urlDomain: own.name.includes(':') ? `[${own.name}]` : own.name }),   // an IPv6 Host as a URL writes it
          extra: n.ech ? { 'tunnelguard.ech': true } : undefined,
        })
      })
    }
    const timer = setTimeout(() => finish(true), snap.config.proxy.helloTimeout)
    socket.on('data', (b: Buffer) => {
      buf = Buffer.concat([buf, b])
      finish(false)
    })
    socket.once('end', () => finish(true))
    socket.once('close', () => finish(true))
  }
  const servers: Awaited<ReturnType<typeof listenOn>>[] = []
  try {
    for (const l of opts.listen) servers.push(await listenOn(l, onSocket, evidence, 'sinkhole'))
  } catch (e) {
    for (const s of servers) s.close()
    throw e
  }
  const addresses = boundAddresses(servers)
  evidence.info('sinkhole.listening', { addresses })
  return {
    addresses,
    get openConnections() { return open.size },
    async close() {
      const closed = Promise.all(servers.map(s => new Promise<void>(r => { s.close(() => r()) })))
      for (const s of open) s.destroy()
      await closed
    },
  }
}
