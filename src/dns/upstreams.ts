import { AppError } from '../errors.js'
import type { Evidence } from '../observe/types.js'
import type { ReplyCallback } from './pending.js'
import { TcpTransport } from './upstream-tcp.js'
import { UDP_PORTS, UdpTransport, type UdpPorts } from './upstream-udp.js'
import { TC } from './wire.js'

const FAILS_TO_DOWN = 3
const BACKOFF_MIN_MS = 2_000
const BACKOFF_MAX_MS = 60_000

export type ForwardCallback = (err: AppError | undefined, reply?: Buffer, upstream?: string) => void

/** "udp://1.2.3.4:53", "tcp://[::1]" → parts (port 53 by default). */
export function parseUpstream(url: string): { proto: 'udp' | 'tcp'; host: string; port: number } {
  const m = /^(udp|tcp):\/\/(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+))(?::(\d{1,5}))?$/.exec(url)
  if (!m) throw new AppError('CONFIG_INVALID', `not an upstream URL: ${url}`)
  return { proto: m[1] as 'udp' | 'tcp', host: (m[2] ?? m[3])!, port: m[4] === undefined ? 53 : Number(m[4]) }
}

/** One configured upstream with its health: consecutive failures put it down for a backoff. */
class Upstream {
  readonly proto: 'udp' | 'tcp'
  private udp: UdpTransport | undefined
  private tcp: TcpTransport | undefined
  private fails = 0
  private backoff = BACKOFF_MIN_MS
  downUntil = 0
  down = false
  closed = false

  constructor(readonly url: string, private readonly evidence: Evidence, private readonly nowMs: () => number,
    private readonly ports: UdpPorts) {
    const { proto, host, port } = parseUpstream(url)
    this.proto = proto
    this.host = host
    this.port = port
  }
  private readonly host: string
  private readonly port: number

  /** Send over UDP or TCP; when it cannot be sent (closed, no ID free) `cb` gets the error at once. */
  send(viaTcp: boolean, query: Buffer, qEnd: number, timeoutMs: number, cb: ReplyCallback): void {
    if (!this.trySend(viaTcp, query, qEnd, timeoutMs, cb)) cb(new AppError('UPSTREAM_FAILED', `cannot send to ${this.url}`))
  }

  private trySend(viaTcp: boolean, query: Buffer, qEnd: number, timeoutMs: number, cb: ReplyCallback): boolean {
    if (this.closed) return false
    if (viaTcp) {
      this.tcp ??= new TcpTransport(this.host, this.port, this.evidence.counters)
      return this.tcp.send(query, qEnd, timeoutMs, cb)
    }
    this.udp ??= new UdpTransport(this.host, this.port, this.evidence.counters, e => {
      this.evidence.warn('dns upstream socket error', { upstream: this.url, error: e.message })
    }, this.nowMs, this.ports)
    return this.udp.send(query, qEnd, timeoutMs, cb)
  }

  failed(nowMs: number): void {
    this.fails++
    if (this.fails < FAILS_TO_DOWN) return
    if (this.down) this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS)
    else this.evidence.warn('dns upstream down', { upstream: this.url, failures: this.fails })
    this.down = true
    this.downUntil = nowMs + this.backoff
  }

  succeeded(): void {
    if (this.down) this.evidence.info('dns upstream up', { upstream: this.url })
    this.fails = 0
    this.down = false
    this.backoff = BACKOFF_MIN_MS
  }

  close(): void {
    this.closed = true
    this.udp?.close()
    this.tcp?.close()
  }
}

/**
 * The upstreams in config order: each query goes to the first one that is up, fails over to the
 * next on timeout or error, and is retried over TCP when a UDP answer comes back truncated. The
 * whole exchange is bounded by `timeoutMs`; the callback then gets the error (→ SERVFAIL).
 */
export class UpstreamPool {
  private list: Upstream[] = []

  /** `ports`: how UDP source ports are drawn and renewed (tests make them change sooner). */
  constructor(urls: readonly string[], private readonly evidence: Evidence, private readonly nowMs: () => number,
    private readonly ports: UdpPorts = UDP_PORTS) {
    this.update(urls)
  }

  /** Swap in a new list of URLs, keeping the state (health, sockets) of those that stay. */
  update(urls: readonly string[]): void {
    const old = new Map(this.list.map(u => [u.url, u]))
    this.list = urls.map(url => old.get(url) ?? new Upstream(url, this.evidence, this.nowMs, this.ports))
    for (const [url, u] of old) if (!urls.includes(url)) u.close()
  }

  /** The upstreams in the order to try them: those not marked down, then the others by the end of their backoff. */
  private order(now: number): readonly Upstream[] {
    let healthy = true
    for (const u of this.list) if (u.down && u.downUntil > now) healthy = false
    if (healthy) return this.list                    // the common case, without a copy per query
    const up = this.list.filter(u => !u.down || u.downUntil <= now)
    const down = this.list.filter(u => u.down && u.downUntil > now).sort((a, b) => a.downUntil - b.downUntil)
    return up.concat(down)
  }

  forward(query: Buffer, qEnd: number, timeoutMs: number, cb: ForwardCallback): void {
    const now = this.nowMs()
    const deadline = now + timeoutMs
    const order = this.order(now)
    const counters = this.evidence.counters
    let i = 0
    let lastErr: AppError | undefined
    const attempt = (): void => {
      const start = this.nowMs()
      const remaining = deadline - start
      if (i >= order.length || remaining <= 0) {
        cb(lastErr ?? new AppError('UPSTREAM_TIMEOUT', `no upstream answered within ${timeoutMs} ms`))
        return
      }
      const u = order[i++]!
      const share = remaining / (order.length - i + 1)
      const done = (err: AppError | undefined, reply?: Buffer): void => {
        const secs = (this.nowMs() - start) / 1000
        if (err) {
          counters.upstream(u.url, err.code === 'UPSTREAM_TIMEOUT' ? 'timeout' : 'error', secs)
          u.failed(this.nowMs())
          lastErr = err
          attempt()
          return
        }
        counters.upstream(u.url, 'ok', secs)
        u.succeeded()
        cb(undefined, reply, u.url)
      }
      u.send(u.proto === 'tcp', query, qEnd, share, (err, reply) => {
        if (err || (reply!.readUInt16BE(2) & TC) === 0 || u.proto === 'tcp') done(err, reply)
        else u.send(true, query, qEnd, Math.max(1, deadline - this.nowMs()), done)
      })
    }
    attempt()
  }

  /** Close every upstream; queries failed by the closing find no other upstream to fail over to. */
  close(): void {
    for (const u of this.list) u.closed = true
    for (const u of this.list) u.close()
    this.list = []
  }
}
