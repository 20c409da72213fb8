import { LRUCache } from 'lru-cache'

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

/**
 * Counts an event per client (at most 65,536 tracked, least recently seen forgotten) and tells
 * `onNotice` about a client at most once per window, with the count since it last did: a flood
 * gives one log line per client per window, not one per packet.
 */
export class WindowedNotice {
  private readonly seen = new LRUCache<string, { count: number; at: number }>({ max: MAX_CLIENTS })

  constructor(private readonly windowMs: number, private readonly onNotice: (client: string, count: number) => void) {}

  note(client: string, nowMs: number): void {
    let s = this.seen.get(client)
    if (!s) this.seen.set(client, s = { count: 0, at: -Infinity })
    s.count++
    if (nowMs - s.at >= this.windowMs) {
      s.at = nowMs
      this.onNotice(client, s.count)
      s.count = 0
    }
  }
}

/**
 * A token bucket per client address (at most 65,536 tracked, least recently seen forgotten).
 * `allow` says whether a query may go on; excess queries are to be dropped silently, and
 * `onLimited` is told once per client per 10-second window with the count dropped so far.
 */
export class RateLimiter {
  private readonly buckets = new LRUCache<string, Bucket>({ max: MAX_CLIENTS })
  private readonly limited: WindowedNotice

  constructor(readonly settings: RateLimitSettings, onLimited: (client: string, dropped: number) => void) {
    this.limited = new WindowedNotice(LOG_WINDOW_MS, onLimited)
  }

  allow(client: string, nowMs: number): boolean {
    const { qps, burst } = this.settings
    if (qps <= 0) return true
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
    this.limited.note(client, nowMs)
    return false
  }
}
