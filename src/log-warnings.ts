/**
 * The config's and the lists' warnings as log lines, at a start and at each reload (what a reload
 * brought only), at most MAX_LOGGED_WARNINGS of them.
 */
import type { Evidence } from './observe/types.js'
import { allWarnings } from './snapshot.js'
import type { ConfigWarning, Snapshot } from './snapshot-types.js'

/** At most this many warning lines at a start or a reload; one more line counts the rest. */
export const MAX_LOGGED_WARNINGS = 20

/**
 * Log the config's and the lists' warnings one line each ('config warning', 'list warning': the
 * FILE:LINE and what is wrong), at most MAX_LOGGED_WARNINGS, then one line with how many more
 * and where to see them all. With `previous` (a reload), only those it did not have: what the
 * reload brought is named, what was logged before is not repeated. Returns how many were new.
 */
export function logWarnings(evidence: Evidence, s: Snapshot, previous?: Snapshot): number {
  const key = (w: ConfigWarning) => `${w.source}\n${w.message}`
  const had = new Set(previous === undefined ? [] : allWarnings(previous).map(key))
  const fresh = [
    ...s.config.warnings.map(w => ({ msg: 'config warning', w })),
    ...s.warnings.map(w => ({ msg: 'list warning', w })),
  ].filter(({ w }) => !had.has(key(w)))
  for (const { msg, w } of fresh.slice(0, MAX_LOGGED_WARNINGS)) evidence.warn(msg, { source: w.source, warning: w.message })
  if (fresh.length > MAX_LOGGED_WARNINGS) {
    const see = s.config.source === 'built-in' ? 'tunnelguard lists' : `tunnelguard lists --config ${s.config.source}`
    evidence.warn('more warnings not logged', { count: fresh.length - MAX_LOGGED_WARNINGS, see })
  }
  return fresh.length
}
