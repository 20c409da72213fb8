/** How long the warnings of a repeated trouble (descriptors, socket errors) stay quiet after one is said. */
export const NOTICE_WINDOW_MS = 10_000

/**
 * Something that can happen many times a second, said at most once per `windowMs`: the first time
 * at once, then at the first time after the window, with how many times it happened since the
 * last line (`count`, this one included). The argument is the one that made the line.
 */
export function throttled<T>(say: (arg: T, count: number) => void, now: () => number, windowMs = NOTICE_WINDOW_MS): (arg: T) => void {
  let saidAt = -Infinity
  let count = 0
  return arg => {
    count++
    const t = now()
    if (t - saidAt < windowMs) return
    saidAt = t
    const n = count
    count = 0
    say(arg, n)
  }
}
