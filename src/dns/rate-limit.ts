import { LRUCache } from 'lru-cache'
import { holdingBack } from '../observe/throttle.js'
import type { LimitKeys } from '../policy/limit-key.js'

export interface RateLimitSettings {
  /** Queries per second per client; 0 turns the limit off. */
  readonly qps: number
  readonly burst: number
}

interface Bucket {
  tokens: number
  last: number
}

const MAX_CLIENTS = 65_536
const LOG_WINDOW_MS = 10_000
/** Clients one notice names per window; past them, one line per window sums the rest. */
export const MAX_NAMED_PER_WINDOW = 100

/**
 * Counts an event per client (at most 65,536 tracked, least recently seen forgotten) and tells
 * `onNotice` about a client at most once per window, with the count since it last did and the
 * address of the event that told it (a client may be a prefix of many: see LimitKeys): a flood
 * gives one log line per client per window, not one per packet. The first event of a client not
 * told of within a window is told at once; those after it are told when the window ends (by an
 * unref'd timer, or at the next event if that comes first), so each event is told within one
 * window of happening (held until the client's next event, minutes later or never, the lines did
 * not add up to the counters). At most `maxNamed` clients are named per window (windows of all
 * clients together, from the first event after the last one ended): the clients past them are
 * summed, and `onOthers` is told, once, how many clients and events that was, when the window
 * ends. Each event is counted in exactly one call.
 */
export class WindowedNotice {
  /** Per client: when it was last told of (`at`), and the window it was summed in (`summed`). */
  private readonly seen = new LRUCache<string, { at: number; summed: number }>({ max: MAX_CLIENTS })
  /** Clients told of less than a window ago, with the events since (at most two windows' named clients). */
  private readonly held = new Map<string, { count: number; address: string }>()
  private windowStart = -Infinity
  private window = 0
  private named = 0
  private othersClients = 0
  private othersCount = 0
  private timer: NodeJS.Timeout | undefined
  private readonly flushNow = (): void => this.flush()

  constructor(
    private readonly windowMs: number,
    private readonly onNotice: (client: string, count: number, address: string) => void,
    private readonly onOthers: (clients: number, count: number) => void,
    private readonly maxNamed = MAX_NAMED_PER_WINDOW,
  ) {}

  /** An event of `client` (its key), from `address`. */
  note(client: string, nowMs: number, address = client): void {
    if (nowMs - this.windowStart >= this.windowMs) {
      this.flush()
      this.windowStart = nowMs
      this.window++
      this.named = 0
    }
    let s = this.seen.get(client)
    if (!s) this.seen.set(client, s = { at: -Infinity, summed: 0 })
    if (s.summed === this.window) {
      this.othersCount++                             // summed in this window: in its sum
    } else if (nowMs - s.at < this.windowMs) {
      const h = this.held.get(client)                // told of less than a window ago: at the window's end
      if (h) { h.count++; h.address = address } else this.held.set(client, { count: 1, address })
    } else if (this.named < this.maxNamed) {
      this.named++
      s.at = nowMs
      return this.onNotice(client, 1, address)
    } else {
      s.summed = this.window
      this.othersClients++
      this.othersCount++
    }
    if (this.timer !== undefined) return
    this.timer = setTimeout(this.flushNow, Math.max(0, this.windowStart + this.windowMs - nowMs)).unref()
    holdingBack(this.flushNow, true)
  }

  /**
   * Tell what the window held back: each client's events since it was told of (named while the
   * window's maxNamed allows, else summed), then `onOthers` the sum, if any.
   */
  flush(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    holdingBack(this.flushNow, false)
    const end = this.windowStart + this.windowMs
    for (const [client, h] of this.held) {
      if (this.named < this.maxNamed) {
        this.named++
        this.seen.set(client, { at: end, summed: 0 })   // told of now: its next events wait for the next window's end
        this.onNotice(client, h.count, h.address)
      } else {
        this.othersClients++
        this.othersCount += h.count
      }
    }
    this.held.clear()
    if (this.othersClients === 0) return
    const clients = this.othersClients
    const count = this.othersCount
    this.othersClients = 0
    this.othersCount = 0
    this.onOthers(clients, count)
  }
}

/**
 * A token bucket per client (at most 65,536 tracked, least recently seen forgotten), a client
 * being the key `keys` gives its address (the address, or its prefix: limits.ipv6Prefix).
 * `allow` says whether a query may go on; excess queries are to be dropped silently, and
 * `onLimited` is told once per client per 10-second window with the count dropped and the
 * address whose query was dropped: the first drop at once, the rest at the window's end
 * (`onOthers` sums the clients past the first 100 of a window: see WindowedNotice).
 */
export class RateLimiter {
  private readonly buckets = new LRUCache<string, Bucket>({ max: MAX_CLIENTS })
  private readonly limited: WindowedNotice

  constructor(readonly settings: RateLimitSettings, readonly keys: LimitKeys,
    onLimited: (client: string, dropped: number, address: string) => void,
    onOthers: (clients: number, dropped: number) => void) {
    this.limited = new WindowedNotice(LOG_WINDOW_MS, onLimited, onOthers)
  }

  /** Whether a query from the address `ip` may go on. */
  allow(ip: string, nowMs: number): boolean {
    const { qps, burst } = this.settings
    if (qps <= 0) return true
    const client = this.keys.key(ip)
    let b = this.buckets.get(client)
    if (!b) {
      b = { tokens: burst, last: nowMs }
      this.buckets.set(client, b)
    } else {
      b.tokens = Math.min(burst, b.tokens + ((nowMs - b.last) * qps) / 1000)
      b.last = nowMs
    }
    if (b.tokens >= 1) {
      b.tokens -= 1
      return true
    }
    this.limited.note(client, nowMs, ip)
    return false
  }
}
