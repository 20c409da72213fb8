import type { Decision, Outcome } from '../policy/types.js'

/** What a server reports about one decided query or connection; observe/ turns it into ECS. */
export interface DecisionEvent {
  readonly message: 'dns.query' | 'proxy.connect' | 'proxy.http' | 'sinkhole.capture'
  readonly decision: Decision
  /** port 0: not known (not written); mac: given by a resolver in front (dns.trustEdnsFrom), put before a lease's. */
  readonly client: { readonly ip: string; readonly port: number; readonly mac?: string }
  readonly transport: 'udp' | 'tcp'
  readonly durationNs: number
  readonly dns?: {
    readonly name: string              // the question as asked (normalized)
    readonly type: string              // 'A', 'AAAA', …
    readonly class?: string            // 'CH', 'HS', 'ANY', …: absent for IN
    readonly rcode: string             // 'NOERROR', 'NXDOMAIN', …
    readonly upstream?: string
    readonly cacheHit?: boolean
  }
  /**
   * A name the client asked for in `domain`, with the address connected to in `ip`; an address
   * the client named itself (`CONNECT 203.0.113.5:443`, `http://[2001:db8::1]/`) in `ip` alone,
   * canonical, with no `domain` (ECS: destination.domain is a name). destinationHost reads either.
   */
  readonly destination?: { readonly domain?: string; readonly ip?: string; readonly port?: number }
  readonly sni?: string
  readonly urlDomain?: string
  /**
   * ECS `event.outcome`, where the line knows what the client got: a DNS answer (failure: the
   * client got an error rcode other than NXDOMAIN, such as SERVFAIL when the upstream failed); a
   * proxy request that failed before it was forwarded (the client got a 502). Never on a block or
   * sinkhole (event.type denied says it).
   */
  readonly outcome?: EventOutcome
  /** Anything else worth a field (bytes, mismatch, …), already ECS-shaped or under `tunnelguard`. */
  readonly extra?: Readonly<Record<string, unknown>>
}

/** ECS `event.outcome` (its third value, unknown, is never written: a line that does not know has none). */
export type EventOutcome = 'success' | 'failure'

/**
 * The host a line's destination names as asked: its domain, else the address the client named
 * (an event has `ip` without `domain` only then; see DecisionEvent.destination).
 */
export function destinationHost(dst: DecisionEvent['destination']): string | undefined {
  return dst?.domain ?? dst?.ip
}

/** The evidence sink every server writes to: log line, metrics, live client table, alerts. */
export interface Evidence {
  /**
   * Whether `decision` turns a decision with this action into an event (a log line, the client
   * table): not for `pass` unless `log.queries: all`. A server that will not build the event
   * counts the decision with `counters.decided` instead.
   */
  logs(action: Outcome): boolean
  /** One decision. Logged when the action is not `pass`, or always with `log.queries: all`. */
  decision(ev: DecisionEvent): void
  /** An operational message (start, stop, upstream down, rate limited, …). */
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  error(msg: string, fields?: Record<string, unknown>): void
  readonly counters: Counters
}

/** Counters the servers bump; observe/ backs them with a private Prometheus registry. */
export interface Counters {
  /** A decision that is counted only (its action is one `Evidence.logs` says is not logged). */
  decided(message: DecisionEvent['message'], decision: Decision): void
  cacheLookup(hit: boolean): void
  upstream(upstream: string, outcome: 'ok' | 'timeout' | 'error', seconds: number): void
  dropped(reason: 'ratelimit' | 'malformed' | 'overload' | 'refused' | 'mismatch' | 'shed'): void
  proxyBytes(direction: 'up' | 'down', bytes: number): void
  connections(kind: 'dns-tcp' | 'proxy', delta: 1 | -1): void
  /** No file descriptor was free (EMFILE, ENFILE) at `where` (see fd-check.ts). */
  fdExhausted(where: FdWhere, code?: FdCode): void
  /** A query sent again over UDP to `upstream`, unanswered for a while (see RESEND_MIN_MS). */
  resent(upstream: string): void
  /**
   * A pool of upstreams whose health `tunnelguard_upstream_up` reads when scraped (`read`: its
   * upstreams now). The function returned stops it (the pool closed).
   */
  watchUpstreams(read: () => Iterable<UpstreamHealth>): () => void
}

/** An upstream's health as its pool holds it (dns/upstream.ts's Upstream). */
export interface UpstreamHealth {
  /** As the config writes it: udp://IP[:PORT], tcp://…, tls://…#NAME (no credentials: the config takes none). */
  readonly url: string
  /** Marked down (consecutive failures) and not marked up since (an answer). */
  readonly down: boolean
  /**
   * Which marking was the latest, process-wide (a count: 0 if never marked): an upstream is held
   * by a pool of its own for DNS, the proxy's lookups and PTR lookups, and the latest says.
   */
  readonly changed: number
}

/**
 * Where the process found no file descriptor free: `check` (the periodic check, which sees what
 * the listeners cannot: libuv accepts and closes connections unseen while none is free),
 * `listener` (an accept that failed), `dns-upstream` (a socket to an upstream that could not open).
 */
export type FdWhere = 'check' | 'listener' | 'dns-upstream'
/** This process's limit (EMFILE) or the host's (ENFILE). */
export type FdCode = 'EMFILE' | 'ENFILE'
export const FD_WHERES: readonly FdWhere[] = ['check', 'listener', 'dns-upstream']

/** The DNS answer cache's size: entries, and the bytes of memory its answers take (outside the JavaScript heap). */
export interface CacheStats {
  readonly entries: number
  readonly bytes: number
}
