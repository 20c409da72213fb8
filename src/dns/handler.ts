import type { CacheStats, EventOutcome, Evidence } from '../observe/types.js'
import { keysFor, prefixField, type LimitKeys } from '../policy/limit-key.js'
import type { Decision } from '../policy/types.js'
import type { Config, Snapshot } from '../snapshot-types.js'
import { actionReply, answerSettings, bypassReply, worst, type AnswerSettings } from './actions.js'
import { badversReply, buildReply, fitUdp, formErrReply, notImpReply } from './build.js'
import { DnsCache } from './cache.js'
import { keyBits } from './cache-key.js'
import { ClientAccess, REFUSED_LOG_WINDOW_MS, type Client } from './client-access.js'
import { withoutClientOptions } from './client-options.js'
import { className, outcomeOf, rcodeName, typeName } from './names.js'
import { RateLimiter, WindowedNotice } from './rate-limit.js'
import { scanResponse, withoutReplyClientOptions } from './scan.js'
import { UpstreamPool } from './upstreams.js'
import { RCODE, TYPE_AXFR, TYPE_IXFR, parseQuery, type Query } from './wire.js'

/** Called exactly once per message: the reply, or undefined when the message is dropped. */
export type Respond = (reply: Buffer | undefined) => void

export interface HandlerDeps {
  readonly getSnapshot: () => Snapshot
  readonly evidence: Evidence
  readonly clock: () => bigint
}

/**
 * The most a UDP reply takes, whatever size the client offers: larger ones are fragmented on
 * the way, and fragments get lost or spoofed (DNS Flag Day 2020; unbound's max-udp-size).
 */
const MAX_UDP_REPLY = 1232

/** BADVERS (RFC 6891): 16, the extended rcode 1 with the header's 0. */
const RCODE_BADVERS = 16

/** Send a reply, made to fit the client's UDP size (512 without EDNS, at most MAX_UDP_REPLY) when it is larger. */
function send(respond: Respond, client: Client, q: Query, reply: Buffer): void {
  const limit = q.edns ? Math.min(q.udpSize, MAX_UDP_REPLY) : 512
  respond(client.transport === 'udp' && reply.length > limit ? fitUdp(reply, q.qEnd, limit) : reply)
}

/**
 * The query pipeline, in its fixed order: parse → rate limit → access → policy (every query,
 * cache hit or not) → DoH/DDR answers → cache → forward → answer inspection → reply + evidence.
 */
export class QueryHandler {
  private dnsCfg: Config['dns'] | undefined
  private limitsCfg: Config['limits'] | undefined
  /** The key each per-client limit counts a client address under (limits.ipv4Prefix, ipv6Prefix). */
  private keys!: LimitKeys
  private sinkCfg: Config['sinkhole'] | undefined
  private readonly access: ClientAccess
  private answers!: AnswerSettings
  private cache!: DnsCache
  /** dns.upstreams and dns.forwardZones as the cache's answers came from them. */
  private routes = ''
  private limiter!: RateLimiter
  private pool: UpstreamPool | undefined
  private inFlight = 0
  /** Queries being forwarded per client key (only those with some). */
  private readonly inFlightBy = new Map<string, number>()
  private closing = false
  private drainWaiters: (() => void)[] = []

  private readonly overloaded: WindowedNotice
  /** AXFR and IXFR, refused: reconnaissance an admin wants to see whatever log.queries says (once per client per window, with the count). */
  private readonly transfers: WindowedNotice

  constructor(private readonly deps: HandlerDeps) {
    this.access = new ClientAccess(deps.evidence)
    const limit = (): number => deps.getSnapshot().config.dns.maxInFlightPerClient
    const transfer = 'a zone transfer (AXFR, IXFR) asked for: refused; tunnelguard holds no zone'
    this.transfers = new WindowedNotice(REFUSED_LOG_WINDOW_MS,
      (ip, n) => deps.evidence.warn('dns zone transfer refused', { 'client.ip': ip, refused: n, reason: transfer }),
      (clients, n) => deps.evidence.warn('dns zone transfer refused', { clients, refused: n, reason: transfer }))
    this.overloaded = new WindowedNotice(REFUSED_LOG_WINDOW_MS,
      (key, n, ip) => deps.evidence.warn('dns client over its in-flight limit', { 'client.ip': ip, ...prefixField('clientPrefix', key), servfail: n, maxInFlightPerClient: limit() }),
      (clients, n) => deps.evidence.warn('dns client over its in-flight limit', { clients, servfail: n, maxInFlightPerClient: limit() }))
  }

  /**
   * The clock in whole milliseconds (a BigInt division would allocate on every query). Whole, so
   * that the upstream timers get whole durations: node keeps one timer list per distinct duration.
   */
  private nowMs(): number {
    return Math.floor(Number(this.deps.clock()) / 1e6)
  }

  /** Rebuild what is derived from the config when the snapshot's objects change; keep state where the settings did not. */
  private configure(config: Config): void {
    const dns = config.dns
    if (dns !== this.dnsCfg || config.limits !== this.limitsCfg) {
      const ev = this.deps.evidence
      if (dns !== this.dnsCfg) {
        this.access.configure(dns)
        const c = dns.cache
        const old = this.cache?.settings
        // other upstreams or forward zones: what the old ones answered is not served on (a zone just
        // added would otherwise get the public resolver's cached NXDOMAIN for up to its negative TTL)
        const routes = JSON.stringify([dns.upstreams, dns.forwardZones])
        if (!old || old.maxEntries !== c.maxEntries || old.minTtl !== c.minTtl || old.maxTtl !== c.maxTtl || routes !== this.routes) {
          this.cache = new DnsCache(c)
          this.routes = routes
        }
        if (this.pool) this.pool.update(dns.upstreams, dns.timeout, dns.forwardZones, dns.tlsCa)
        else this.pool = new UpstreamPool(dns.upstreams, ev, () => this.nowMs(), {}, dns.forwardZones, dns.tlsCa)
        this.dnsCfg = dns
      }
      // queries in flight stay counted under the key they were counted under (see settle)
      this.keys = keysFor(this.keys, config.limits)
      this.limitsCfg = config.limits
      const rl = this.limiter?.settings
      if (!rl || rl.qps !== dns.rateLimit.qps || rl.burst !== dns.rateLimit.burst || this.limiter.keys !== this.keys) {
        const qps = dns.rateLimit.qps
        this.limiter = new RateLimiter(dns.rateLimit, this.keys,
          (key, dropped, ip) => ev.warn('dns client rate limited', { 'client.ip': ip, ...prefixField('clientPrefix', key), dropped, qps }),
          (clients, dropped) => ev.warn('dns client rate limited', { clients, dropped, qps }))
      }
    }
    if (config.sinkhole !== this.sinkCfg || this.answers.blockResponse !== dns.blockResponse) {
      this.answers = answerSettings(config)
      this.sinkCfg = config.sinkhole
    }
  }

  /** access.trusted, by the config in force (the TCP listener asks at accept: such a sender is not held to the per-client connection cap). */
  trusts(ip: string): boolean {
    this.configure(this.deps.getSnapshot().config)
    return this.access.trusted(ip)
  }

  /**
   * Whether a client may open a connection (TCP, asked at accept): one outside allowClients (and
   * not a trusted resolver in front, whose clients are checked query by query) is counted and
   * logged as refused, as its queries would be.
   */
  admit(ip: string): boolean {
    this.configure(this.deps.getSnapshot().config)
    if (this.access.allowed(ip) || this.access.trusted(ip)) return true
    this.deps.evidence.counters.dropped('refused')
    this.access.refused.note(ip, this.nowMs())
    return false
  }

  handle(msg: Buffer, from: Client, respond: Respond): void {
    if (this.closing) return respond(undefined)
    const t0 = this.deps.clock()
    const snap = this.deps.getSnapshot()
    this.configure(snap.config)
    const counters = this.deps.evidence.counters
    // a trusted resolver in front speaks for many machines: each is held to the rate limit, not it
    const trusted = this.access.trusted(from.ip)
    if (!trusted && !this.limiter.allow(from.ip, Number(t0) / 1e6)) return this.limited(msg, from, respond)
    const q = parseQuery(msg)
    if (typeof q === 'string') {
      counters.dropped('malformed')
      const answer = q !== 'drop' && (trusted || this.access.allowed(from.ip))
      return respond(!answer ? undefined : q === 'notimp' ? notImpReply(msg) : formErrReply(msg))
    }
    let client = from
    if (trusted) {
      client = q.optRdata < 0 ? from : this.access.named(msg, q, from)
      if (!this.limiter.allow(client.ip, Number(t0) / 1e6)) return this.limited(msg, from, respond)
    }
    if (!this.access.allowed(client.ip)) {
      counters.dropped('refused')
      this.access.refused.note(client.ip, Number(t0) / 1e6)
      return respond(buildReply(msg, q, RCODE.REFUSED))
    }
    const decision = snap.policy.decide(client.ip, q.name, 'qname')
    if (decision.action === 'block' || decision.action === 'sinkhole') return this.act(msg, q, client, respond, t0, decision)
    // decided and logged like any query (a listed name is blocked whatever the version); answered
    // BADVERS, the DoH canary and DDR names too (the client asks again with version 0, and gets them)
    if (q.ednsVersion !== 0) {
      respond(badversReply(msg, q))
      return this.log(q, client, t0, decision, RCODE_BADVERS, 'failure')
    }
    const bypass = bypassReply(msg, q, snap.config, this.answers)
    if (bypass) {
      send(respond, client, q, bypass.reply)
      // answered here, not by the upstream: the line says so (an allowed name keeps its own reason)
      return this.log(q, client, t0, decision.action === 'pass' ? { ...decision, reason: bypass.reason } : decision, bypass.rcode, outcomeOf(bypass.rcode))
    }
    if (q.qtype === TYPE_AXFR || q.qtype === TYPE_IXFR) {
      send(respond, client, q, buildReply(msg, q, RCODE.REFUSED))
      this.transfers.note(client.ip, Number(t0) / 1e6)
      return this.log(q, client, t0, decision, RCODE.REFUSED, 'failure')
    }
    const hit = this.cache.get(msg, q, t0)
    counters.cacheLookup(hit >= 0)
    if (hit >= 0) {
      const cache = this.cache
      const d = worst(snap, client.ip, decision, cache.targets(hit))
      if (d.action === 'block' || d.action === 'sinkhole') return this.act(msg, q, client, respond, t0, d, cache.upstream(hit), true)
      send(respond, client, q, cache.serve(hit, msg, q.qEnd, t0))
      const rcode = cache.rcode(hit)
      return this.log(q, client, t0, d, rcode, outcomeOf(rcode), cache.upstream(hit), true)
    }
    const dns = snap.config.dns
    const key = this.keys.key(client.ip)
    const mine = this.inFlightBy.get(key) ?? 0
    if (this.inFlight >= dns.maxInFlight || mine >= dns.maxInFlightPerClient) {
      counters.dropped('overload')
      if (mine >= dns.maxInFlightPerClient) this.overloaded.note(key, Number(t0) / 1e6, client.ip)
      send(respond, client, q, buildReply(msg, q, RCODE.SERVFAIL))
      return this.log(q, client, t0, decision, RCODE.SERVFAIL, 'failure')
    }
    this.inFlight++
    this.inFlightBy.set(key, mine + 1)
    this.pool!.forward(withoutClientOptions(msg, q), q.qEnd, dns.timeout, (err, reply, upstream) => {
      this.settle(key)
      msg.writeUInt16BE(q.id, 0)
      const scan = reply && scanResponse(reply)
      if (err || !scan) {
        send(respond, client, q, buildReply(msg, q, RCODE.SERVFAIL))
        return this.log(q, client, t0, decision, RCODE.SERVFAIL, 'failure', upstream)
      }
      const answer = withoutReplyClientOptions(reply!, scan)
      this.cache.set(msg, q, answer, scan, upstream!, this.deps.clock())
      const d = worst(snap, client.ip, decision, scan.targets)
      if (d.action === 'block' || d.action === 'sinkhole') return this.act(msg, q, client, respond, t0, d, upstream, false)
      answer.writeUInt16BE(q.id, 0)
      send(respond, client, q, answer)
      this.log(q, client, t0, d, scan.rcode, outcomeOf(scan.rcode), upstream, false)
    }, keyBits(q.flags, q.edns, q.dnssecOk))
  }

  /**
   * A query over the rate limit: dropped over UDP (a spoofed source must get nothing back); over
   * TCP (no spoofing, and a TCP client does not ask again: a dropped query costs it its whole
   * timeout) answered REFUSED, with its question, at once. Counted as dropped either way.
   */
  private limited(msg: Buffer, from: Client, respond: Respond): void {
    this.deps.evidence.counters.dropped('ratelimit')
    const q = from.transport === 'tcp' ? parseQuery(msg) : 'drop'
    respond(typeof q === 'string' ? undefined : buildReply(msg, q, RCODE.REFUSED))
  }

  /** Answer a block or sinkhole decision, and log it. */
  private act(msg: Buffer, q: Query, client: Client, respond: Respond, t0: bigint,
    d: Decision, upstream?: string, cacheHit?: boolean): void {
    const { reply, rcode } = actionReply(msg, q, d, this.answers)
    send(respond, client, q, reply)
    this.log(q, client, t0, d, rcode, undefined, upstream, cacheHit)
  }

  /**
   * The decision's evidence: counted always; the event (and its log line) only when it will be
   * logged. `outcome`: what the answer was to the client (event.outcome), for what is answered as
   * asked; none for a block or sinkhole.
   */
  private log(q: Query, client: Client, t0: bigint, decision: Decision, rcode: number, outcome: EventOutcome | undefined,
    upstream?: string, cacheHit?: boolean): void {
    const ev = this.deps.evidence
    if (!ev.logs(decision.action)) return ev.counters.decided('dns.query', decision)
    ev.decision({
      message: 'dns.query', decision, transport: client.transport,
      client: client.mac === undefined ? { ip: client.ip, port: client.port } : { ip: client.ip, port: client.port, mac: client.mac },
      durationNs: Number(this.deps.clock() - t0),
      dns: { name: q.name, type: typeName(q.qtype), class: className(q.qclass), rcode: rcodeName(rcode), upstream, cacheHit },
      outcome,
      // the resolver in front that named the client
      extra: client.via && { 'source.ip': client.via.ip, 'source.port': client.via.port },
    })
  }

  private settle(key: string): void {
    const mine = this.inFlightBy.get(key)! - 1
    if (mine === 0) this.inFlightBy.delete(key)
    else this.inFlightBy.set(key, mine)
    this.inFlight--
    if (this.inFlight === 0) for (const w of this.drainWaiters.splice(0)) w()
  }

  /** The answer cache's entries and the bytes of its slab (none before the first query). */
  get cacheStats(): CacheStats {
    return { entries: this.cache?.size ?? 0, bytes: this.cache?.bytes ?? 0 }
  }

  /** Queries being forwarded right now. */
  get pending(): number {
    return this.inFlight
  }

  /** Stop taking queries; resolves once those in flight are answered. */
  drain(): Promise<void> {
    this.closing = true
    if (this.inFlight === 0) return Promise.resolve()
    return new Promise(resolve => { this.drainWaiters.push(resolve) })
  }

  close(): void {
    this.closing = true
    this.pool?.close()
  }
}
