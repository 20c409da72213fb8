/**
 * What a reload's snapshot gives up against the running one: the changes that hold a reload asked
 * for by a file change (weakened, fingerprint), and the lists that shrank (warnShrunk).
 */
import type { Evidence } from './observe/types.js'
import type { Snapshot } from './snapshot-types.js'

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']

/** What a new snapshot gives up against the running one: lists gone or halved, other upstreams, fewer log lines. */
export function weakened(previous: Snapshot, s: Snapshot): string[] {
  const out: string[] = []
  const now = new Map(s.lists.map(l => [l.name, l.entries]))
  for (const l of previous.lists) {
    if (l.entries === 0) continue
    const n = now.get(l.name)
    if (n === undefined) out.push(`list ${l.name} removed (${l.entries} entries)`)
    else if (n <= l.entries / 2) out.push(`list ${l.name}: ${l.entries} → ${n} entries`)
  }
  const [a, b] = [previous.config, s.config]
  const ups = (c: Snapshot['config']): string => c.dns.upstreams.join(', ')
  if (ups(a) !== ups(b)) out.push(`dns.upstreams: ${ups(a)} → ${ups(b)}`)
  if (LEVELS.indexOf(b.log.level) > LEVELS.indexOf(a.log.level)) out.push(`log.level: ${a.log.level} → ${b.log.level}`)
  if (a.log.queries === 'all' && b.log.queries !== 'all') out.push(`log.queries: all → ${b.log.queries}`)
  return out
}

/** What a held reload read: the same again after the hold means the files have settled. */
export function fingerprint(s: Snapshot): string {
  return JSON.stringify(s.config) + JSON.stringify(s.lists.map(l => [l.name, l.entries]))
}

/**
 * A list that lost half its entries or more, or all of them, at a reload: most often a file caught
 * while being written, or emptied by mistake. It is used as it is (an admin may shrink a list),
 * and said, since names it blocked now pass without a line (log.queries: matched).
 */
export function warnShrunk(evidence: Evidence, previous: Snapshot, s: Snapshot): void {
  const had = new Map(previous.lists.map(l => [l.name, l.entries]))
  for (const l of s.lists) {
    const was = had.get(l.name)
    if (was === undefined || was === 0 || l.entries > was / 2) continue
    evidence.warn('list shrank at reload', {
      list: l.name, was, entries: l.entries,
      detail: 'names it matched before now pass; a file caught while being written is read again once it changes',
    })
  }
}
