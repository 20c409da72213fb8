import { LRUCache } from 'lru-cache'

export interface RateLimitSettings {
  /** Queries per second per client; 0 turns the limit off. */
  readonly qps: number
  readonly burst: number
}

interface Bucket {
  tokens: number
  last: number
  dropped: number
  loggedAt: number
}

const MAX_CLIENTS = 65_536
const LOG_WINDOW_MS = 10_000

/**
 * A token bucket per client address (at most 65,536 tracked, least recently seen forgotten).
 * `allow` says whether a query may go on; excess queries are to be dropped silently, and
 * `onLimited` is told once per client per 10-second window with the count dropped so far.
 */
export class RateLimiter {
  private readonly buckets = new LRUCache<string, Bucket>({ max: MAX_CLIENTS })

  constructor(
    readonly settings: RateLimitSettings,
    private readonly onLimited: (client: string, dropped: number) => void,
  ) {}

  allow(client: string, nowMs: number): boolean {
    const { qps, burst } = this.settings
    if (qps <= 0) return true
    let b = this.buckets.get(client)
    if (!b) {
      b = { tokens: burst, last: nowMs, dropped: 0, loggedAt: -Infinity }
      this.buckets.set(client, b)
    } else {
      b.tokens = Math.min(burst, b.tokens + ((nowMs - b.last) * qps) / 1000)
      b.last = nowMs
    }
    if (b.tokens >= 1) {
      b.tokens -= 1
      return true
    }
    b.dropped++
    if (nowMs - b.loggedAt >= LOG_WINDOW_MS) {
      b.loggedAt = nowMs
      this.onLimited(client, b.dropped)
      b.dropped = 0
    }
    return false
  }
}
