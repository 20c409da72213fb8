import { isIP } from 'node:net'
import { checkServerIdentity, type SecureContext } from 'node:tls'
import { parseUpstreamUrl, type UpstreamParts } from '../config/endpoints.js'
import { AppError } from '../errors.js'
import { fdCode, fdExhausted, localExhausted } from '../observe/fd-check.js'
import { throttled } from '../observe/throttle.js'
import type { Evidence } from '../observe/types.js'
import type { ReplyCallback } from './pending.js'
import { TcpTransport, type TlsDial } from './upstream-tcp.js'
import { UdpTransport, type UdpPorts } from './upstream-udp.js'

/** Consecutive failures that put an upstream down; then it waits a backoff, doubled each time it fails again. */
const FAILS_TO_DOWN = 3
const BACKOFF_MIN_MS = 2_000
const BACKOFF_MAX_MS = 60_000

/** Upstreams marked down or up so far, in this process: an upstream's `changed` is the count at its last marking. */
let markings = 0

/** "udp://1.2.3.4:53", "tcp://[::1]", "tls://1.1.1.1#cloudflare-dns.com" → parts (port 53 by default, 853 for tls://). */
export function parseUpstream(url: string): UpstreamParts {
  const p = parseUpstreamUrl(url)
  if (typeof p === 'string') throw new AppError('CONFIG_INVALID', `${url}: ${p}`)
  return p
}

/** One configured upstream with its health: consecutive failures put it down for a backoff. */
export class Upstream {
  readonly proto: 'udp' | 'tcp' | 'tls'
  private udp: UdpTransport | undefined
  private tcp: TcpTransport | undefined
  private fails = 0
  private backoff = BACKOFF_MIN_MS
  downUntil = 0
  down = false
  /** When it was last marked down or up (see UpstreamHealth.changed); 0: never. */
  changed = 0
  /** When it last answered (nowMs). */
  lastOk = -Infinity
  closed = false
  /** Its answers carry the question in the letter case it was asked in: queries over UDP get 0x20. */
  caseKept = true
  /** Taken out by a reload: the end of its grace (retire). */
  private retiring: NodeJS.Timeout | undefined

  /**
   * `secureContext` (tls:// only): the CAs its certificate may be signed by (dns.tlsCaFile's and
   * Node's); none: Node's default CAs. Verification is never off.
   */
  constructor(readonly url: string, private readonly evidence: Evidence, private readonly nowMs: () => number,
    private readonly ports: UdpPorts, secureContext?: SecureContext) {
    const { proto, host, port, servername } = parseUpstream(url)
    this.proto = proto
    this.host = host
    this.port = port
    if (proto !== 'tls') return
    const onError = (e: Error): void => this.tlsNotice(e)
    // SNI carries a name only (RFC 6066); a server name that is an IP is checked against the certificate all the same
    this.tls = servername === undefined || isIP(servername) === 0
      ? { servername, secureContext, onError }
      : { secureContext, onError, checkServerIdentity: (_host, cert) => checkServerIdentity(servername, cert) }
  }
  private readonly host: string
  private readonly port: number
  private readonly tls: TlsDial | undefined

  /**
   * Send over UDP or TCP (tls://: always over TLS; `exactCase`, UDP only: see PendingTable.add); when it cannot be sent
   * (closed, no ID free) `cb` gets the error at once.
   */
  send(viaTcp: boolean, query: Buffer, qEnd: number, timeoutMs: number, exactCase: boolean, cb: ReplyCallback): void {
    if (!this.trySend(viaTcp, query, qEnd, timeoutMs, exactCase, cb)) cb(new AppError('UPSTREAM_FAILED', `cannot send to ${this.url}`))
  }

  private trySend(viaTcp: boolean, query: Buffer, qEnd: number, timeoutMs: number, exactCase: boolean, cb: ReplyCallback): boolean {
    if (this.closed) return false
    if (viaTcp) {
      this.tcp ??= new TcpTransport(this.host, this.port, this.evidence.counters, undefined, this.tls, e => this.tcpError(e))
      return this.tcp.send(query, qEnd, timeoutMs, cb)
    }
    this.udp ??= new UdpTransport(this.host, this.port, this.evidence.counters, e => this.socketError(e), this.nowMs, this.ports, this.url)
    return this.udp.send(query, qEnd, timeoutMs, cb, exactCase)
  }

  private readonly errorNotice = throttled((e: Error, errors: number) => {
    this.evidence.warn('dns upstream socket error', { upstream: this.url, error: e.message, errors })
  }, () => this.nowMs())

  private readonly bufferNotice = throttled((e: Error, errors: number) => {
    this.evidence.warn('no buffer space for a dns upstream socket (ENOBUFS): its queries get SERVFAIL; the upstream is not marked down', {
      upstream: this.url, 'error.code': 'ENOBUFS', error: e.message, errors,
    })
  }, () => this.nowMs())

  /**
   * An error of one of its UDP sockets (the queries on it have failed): said at most once per
   * 10 s, with how many there were since the last line (`errors`): an upstream whose port is
   * closed answers every datagram with one (ECONNREFUSED). A failure of this host is not the
   * upstream's and is said as such: no descriptor free is counted (tunnelguard_fd_exhausted_total
   * {where="dns-upstream"}, whose warning says it), no buffer space has a line of its own.
   */
  socketError(e: Error): void {
    if (fdExhausted(e)) this.evidence.counters.fdExhausted('dns-upstream', fdCode(e))
    else if (localExhausted(e)) this.bufferNotice(e)
    else this.errorNotice(e)
  }

  /**
   * An error of a plain TCP connection (refused, reset, one stuck in a frame): said as a UDP
   * socket's is; no descriptor free is counted by the transport already.
   */
  private tcpError(e: Error): void {
    if (localExhausted(e)) { if (!fdExhausted(e)) this.bufferNotice(e) } else this.errorNotice(e)
  }

  /**
   * An error of a TLS connection (a handshake or certificate that failed: `certificate has
   * expired`, `Hostname/IP does not match certificate's altnames: …`, a refused connection): its
   * queries have failed over. Said at most once per 10 s, with the count since the last line.
   */
  private readonly tlsNotice = throttled((e: Error, errors: number) => {
    this.evidence.warn('dns upstream TLS error', { upstream: this.url, error: e.message, code: (e as NodeJS.ErrnoException).code ?? null, errors })
  }, () => this.nowMs())

  /** An answer over TCP showed that it does not keep the letter case of questions: no more 0x20 for it. */
  caseLost(): void {
    if (!this.caseKept) return                       // found by two exchanges at once
    this.caseKept = false
    this.evidence.warn('dns upstream does not keep the letter case of questions', {
      upstream: this.url, detail: 'queries to it go out in the client\'s letter case from now on (no 0x20)',
    })
  }

  failed(nowMs: number): void {
    this.fails++
    if (this.fails < FAILS_TO_DOWN) return
    if (this.down) this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS)
    else {
      this.changed = ++markings
      this.evidence.warn('dns upstream down', { upstream: this.url, failures: this.fails })
    }
    this.down = true
    this.downUntil = nowMs + this.backoff
  }

  succeeded(nowMs: number): void {
    this.lastOk = nowMs
    if (this.down) {
      this.changed = ++markings
      this.evidence.info('dns upstream up', { upstream: this.url })
    }
    this.fails = 0
    this.down = false
    this.backoff = BACKOFF_MIN_MS
  }

  close(): void {
    this.closed = true
    clearTimeout(this.retiring)
    this.udp?.close()
    this.tcp?.close()
  }

  /**
   * Taken out of the config by a reload: no query is sent to it any more, but those it has in
   * flight get its answers, for `graceMs` (dns.timeout: by then each has its answer or its
   * timeout); then its sockets close and `done` is called. close() ends it sooner (a stop).
   */
  retire(graceMs: number, done: () => void): void {
    this.closed = true
    this.retiring = setTimeout(() => {
      this.close()
      done()
    }, graceMs)
  }
}
