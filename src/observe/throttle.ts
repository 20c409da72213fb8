/** How long the warnings of a repeated trouble (descriptors, socket errors) stay quiet after one is said. */
export const NOTICE_WINDOW_MS = 10_000

/** The notices holding occurrences back until their window ends: said at a stop rather than lost. */
const holding = new Set<() => void>()

/** Say now what every notice holds back (`serve`'s stop, before the last lines are written). */
export function flushNotices(): void {
  for (const say of [...holding]) say()
}

/** A notice holds occurrences back (`say` tells them), or no longer does. */
export function holdingBack(say: () => void, held: boolean): void {
  if (held) holding.add(say)
  else holding.delete(say)
}

/**
 * Something that can happen many times a second, said at most once per `windowMs`: the first time
 * at once, and what happened after it within the window when the window ends (an unref'd timer),
 * with how many times it happened since the last line (`count`, this one included): each
 * occurrence is in exactly one line, within one window of happening, so the lines add up to the
 * counters (a count held back until the next occurrence, minutes later or never, did not). The
 * argument is the one that made the line (the last one held back, at the window's end).
 */
export function throttled<T>(say: (arg: T, count: number) => void, now: () => number, windowMs = NOTICE_WINDOW_MS): (arg: T) => void {
  let saidAt = -Infinity
  let count = 0
  let last: T
  let timer: NodeJS.Timeout | undefined
  const flush = (): void => tell(last, now())
  const tell = (arg: T, t: number): void => {
    clearTimeout(timer)
    timer = undefined
    holding.delete(flush)
    saidAt = t
    const n = count
    count = 0
    say(arg, n)
  }
  return arg => {
    count++
    const t = now()
    if (t - saidAt >= windowMs) return tell(arg, t)
    last = arg
    // a clock that went back (a test's) must not set a timer past the window
    if (timer !== undefined) return
    timer = setTimeout(flush, Math.max(0, Math.min(windowMs, saidAt + windowMs - t))).unref()
    holding.add(flush)
  }
}
