/** Durations: "500ms", "2s", "5m", "1h", "1d", or a number of seconds (the config schema takes only 0 as a bare number). */
const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** Milliseconds, or undefined when the text is not a duration. */
export function parseDuration(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? v * 1000 : undefined
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(v.trim())
  if (!m) return undefined
  return Number(m[1]) * UNITS[m[2]!]!
}

/** The longest a Node timer waits (2^31-1 ms, 24.8 days): a longer one is set to 1 ms, and fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1
