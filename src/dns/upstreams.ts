import { randomBytes } from 'node:crypto'
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls'
import type { Evidence } from '../observe/types.js'
import { keyFlags } from './cache-key.js'
import { Exchange, type ExchangeContext, type ForwardCallback } from './exchange.js'
import { Upstream } from './upstream.js'
import { SlotTable } from './slot-table.js'
import { UDP_PORTS, type UdpPorts } from './upstream-udp.js'
import { HEADER, readName } from './wire.js'

/**
 * A 30-bit hash of a query's cache key (the name with A-Z folded, type, class, and the flags of
 * keyFlags), seeded per pool: the index of the exchanges in flight.
 */
export function questionHash(seed: number, query: Buffer, qEnd: number, flags: number): number {
  let h = Math.imul(seed ^ flags, 0x01000193)
  const nameEnd = qEnd - 4
  for (let i = HEADER; i < qEnd; i++) {
    let c = query[i]!
    if (i < nameEnd && c >= 65 && c <= 90) c |= 0x20
    h = Math.imul(h ^ c, 0x01000193)
  }
  h ^= h >>> 15
  h = Math.imul(h, 0x2c1b3c6d)
  h ^= h >>> 12
  return h & 0x3fffffff
}

export interface PoolOptions {
  /** How UDP source ports are drawn and renewed (tests make them change sooner). */
  readonly ports?: UdpPorts
  /** The seed of questionHash (random unless a test sets it). */
  readonly seed?: number
}

/** dns.forwardZones: zone (lower case, no final dot) → its upstream URLs. */
export type ForwardZones = Readonly<Record<string, readonly string[]>>

/**
 * The upstreams in config order: each query goes to the first one that is up, fails over to the
 * next on timeout, error, or a reply that says it could not answer (SERVFAIL, REFUSED, …), and is retried over TCP when a UDP answer comes back truncated. The
 * whole exchange is bounded by `timeoutMs`; the callback then gets the error (→ SERVFAIL). A
 * query that asks what one in flight asks (the cache's key) waits for that one's answer. A name
 * in a forward zone goes to that zone's upstreams instead (the longest zone that holds it); an
 * upstream named in several places is one upstream, with one health.
 */
export class UpstreamPool {
  private list: Upstream[] = []
  private zones = new Map<string, Upstream[]>()
  /** Upstreams a reload took out, still answering what they had in flight (closed by close() too). */
  private readonly retired = new Set<Upstream>()
  private readonly ports: UdpPorts
  private readonly seed: number
  /** Exchanges in flight by their question's hash (one per slot: another question whose hash shares a slot is asked on its own). */
  private readonly inflight = new SlotTable<Exchange>(1024, 1 << 20, 0.25)
  private readonly ctx: ExchangeContext
  /** Stops `tunnelguard_upstream_up` reading this pool's upstreams. */
  private readonly unwatch: () => void

  /** dns.tlsCaFile's certificates (PEM), and the context that trusts them besides Node's CAs. */
  private tlsCa: string | undefined
  private secureContext: SecureContext | undefined

  /** `tlsCa`: the PEM certificates of a private CA that tls:// upstreams may be signed by too (dns.tlsCaFile). */
  constructor(urls: readonly string[], private readonly evidence: Evidence, private readonly nowMs: () => number,
    opts: PoolOptions = {}, zones: ForwardZones = {}, tlsCa?: string) {
    this.ports = opts.ports ?? UDP_PORTS
    this.seed = opts.seed ?? randomBytes(4).readUInt32LE(0)
    this.ctx = {
      nowMs, counters: evidence.counters,
      done: x => { this.inflight.delete(x.hash, x) },
    }
    this.update(urls, 0, zones, tlsCa)
    this.unwatch = evidence.counters.watchUpstreams(() => this.inUse())
  }

  /** The upstreams queries go to now (the default list's and the forward zones'), each once. */
  private inUse(): Set<Upstream> {
    return new Set([...this.list, ...[...this.zones.values()].flat()])
  }

  /** Exchanges in flight that other queries can join. */
  get exchanges(): number {
    return this.inflight.size
  }

  /**
   * Swap in new URLs (the default list and the forward zones'), keeping the state (health,
   * sockets) of those that stay. One that goes answers what it has in flight for `graceMs` more
   * (a reload does not turn them into SERVFAIL). Another `tlsCa` makes every tls:// upstream a
   * new one (its connection and session were verified with the old CAs).
   */
  update(urls: readonly string[], graceMs = 0, zones: ForwardZones = {}, tlsCa?: string): void {
    const old = new Map<string, Upstream>()
    for (const u of this.list) old.set(u.url, u)
    for (const l of this.zones.values()) for (const u of l) old.set(u.url, u)
    const caChanged = tlsCa !== this.tlsCa
    if (caChanged) {
      this.tlsCa = tlsCa
      this.secureContext = tlsCa === undefined ? undefined : createSecureContext({ ca: [...rootCertificates, tlsCa] })
    }
    const kept = new Map<string, Upstream>()
    const get = (url: string): Upstream => {
      let u = kept.get(url)
      if (u === undefined) {
        const o = old.get(url)
        kept.set(url, u = o !== undefined && !(caChanged && o.proto === 'tls') ? o : new Upstream(url, this.evidence, this.nowMs, this.ports, this.secureContext))
      }
      return u
    }
    this.list = urls.map(get)
    this.zones = new Map(Object.entries(zones).map(([zone, l]) => [zone, l.map(get)]))
    for (const [url, u] of old) {
      if (kept.get(url) === u) continue
      this.retired.add(u)
      u.retire(graceMs, () => this.retired.delete(u))
    }
  }

  /** The upstreams of the name a query asks (parsed already: its name reads): its longest forward zone's, else the default list. */
  private listFor(query: Buffer): readonly Upstream[] {
    let name = readName(query, HEADER)!.name
    for (;;) {
      const l = this.zones.get(name)
      if (l !== undefined) return l
      const dot = name.indexOf('.')
      if (dot < 0) return this.list
      name = name.slice(dot + 1)
    }
  }

  /** The upstreams in the order to try them: those not marked down, then the others by the end of their backoff. */
  private order(list: readonly Upstream[], now: number): readonly Upstream[] {
    let healthy = true
    for (const u of list) if (u.down && u.downUntil > now) healthy = false
    if (healthy) return list                         // the common case, without a copy per query
    const up = list.filter(u => !u.down || u.downUntil <= now)
    const down = list.filter(u => u.down && u.downUntil > now).sort((a, b) => a.downUntil - b.downUntil)
    return up.concat(down)
  }

  /**
   * Forward a query (parsed by parseQuery; its bytes are not changed). The reply handed to `cb`
   * carries the query's ID and question. A query that joins an exchange in flight gets that
   * exchange's outcome, within the budget of the query that started it. `flags`: its keyFlags,
   * when the caller has them from the parsed query already.
   */
  forward(query: Buffer, qEnd: number, timeoutMs: number, cb: ForwardCallback, flags = keyFlags(query, qEnd)): void {
    const h = questionHash(this.seed, query, qEnd, flags)
    const x = this.inflight.get(h)
    if (x !== undefined && x.asks(query, qEnd, flags)) {
      x.join(query, cb)
      return
    }
    const now = this.nowMs()
    const nx = new Exchange(this.ctx, this.order(this.zones.size === 0 ? this.list : this.listFor(query), now), query, qEnd, flags, h, timeoutMs, cb, now)
    this.inflight.reserve()
    // another question under the same hash, or one in the same slot, is asked on its own
    if (this.inflight.isFree(h)) this.inflight.set(h, nx)
    nx.attempt()
  }

  /** Close every upstream; queries failed by the closing find no other upstream to fail over to. */
  close(): void {
    this.unwatch()
    const all = new Set([...this.inUse(), ...this.retired])
    for (const u of all) u.closed = true
    for (const u of all) u.close()
    this.list = []
    this.zones.clear()
    this.retired.clear()
  }
}
