import { formatOf, parseInto } from './match/parse-list.js'

/** What a response brought: 304, another status than 200 (its body dropped), more than maxBytes, or a text. */
export type Reply =
  | { readonly kind: 'unchanged' }
  | { readonly kind: 'status'; readonly status: number }
  | { readonly kind: 'too big' }
  | { readonly kind: 'text'; readonly text: string; readonly etag?: string; readonly lastModified?: string }

/**
 * How a list text reads, by line, through the list parser itself (the format as loading picks it
 * by `source`): lines with an entry, and lines with a warning and no entry (invalid). Comments,
 * blank lines and headers are neither.
 */
export function lineCounts(text: string, source: string): { entries: number; invalid: number; rule: boolean; words: number } {
  const entries = new Set<number>()
  const warned = new Set<number>()
  let words = 0
  const format = formatOf(source)
  parseInto(text, format, {
    entry: (name, _k, _a, _p, line) => {
      entries.add(line)
      if (!name.includes('.')) words++
    },
    warn: line => { warned.add(line) },
  })
  let invalid = 0
  for (const line of warned) if (!entries.has(line)) invalid++
  return { entries: entries.size, invalid, rule: format === 'sigma', words }
}

/**
 * Why a 200's text is not taken as the list, or undefined when it is. An error or login page
 * served with 200, or an empty body (a truncated upload, a CDN's placeholder), would replace the
 * last good copy and unblock everything the list blocked: a text with no entry at all, or (but
 * for a Sigma rule) whose lines are mostly (more than half of those not comments) not entries, is
 * a failed fetch.
 */
export function notAList(c: { entries: number; invalid: number; rule: boolean; words?: number }): string | undefined {
  if (c.entries === 0) return 'no list entry in it'
  // one word alone ("Unauthorized", "Forbidden", "OK") reads as a list of one top-level domain: it
  // is an error text, and taken it would replace the whole list (a TLD to block goes in a file)
  if (c.entries === 1 && c.words === 1 && !c.rule) return 'one word alone, an error text rather than a list of one top-level domain'
  // a Sigma rule's warnings are values inside a well-formed rule that make no entry (a partial
  // label, a regex): a rule that gives any entry is one, however many of its values it skips
  if (!c.rule && c.invalid > c.entries) return 'most of its lines are not list entries'
  return undefined
}
