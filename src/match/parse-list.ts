import { parseCsv } from './formats/csv.js'
import { parseLinesInSteps } from './formats/lines.js'
import { parseSigma } from './formats/sigma.js'
import type { EntrySink } from './formats/sink.js'
import type { Entry, ListWarning } from './types.js'
import { printable } from '../printable.js'

/** `lines`: plain, hosts-file and adblock lines, mixed; `sigma`: Sigma rule YAML; `csv`: names in column 1. */
export type ListFormat = 'lines' | 'sigma' | 'csv'

/** The format of a file or URL, by its extension: .yml/.yaml Sigma, .csv CSV, anything else lines. */
export function formatOf(source: string): ListFormat {
  const path = source.replace(/[?#].*$/, '').toLowerCase()
  if (path.endsWith('.yml') || path.endsWith('.yaml')) return 'sigma'
  if (path.endsWith('.csv')) return 'csv'
  return 'lines'
}

/** Parse a list's text in the given format into a sink. */
export function parseInto(text: string, format: ListFormat, sink: EntrySink): void {
  parseInSteps(text, format, sink, Infinity).next()     // steps of Infinity: the first is the whole text
}

/** Longest quoted text a warning repeats whole: a 300,000-character line was quoted in full, in `validate`, `lists` and the log. */
const MAX_QUOTE = 120

/** `message` with each quoted text over MAX_QUOTE characters cut, saying how long it was. */
export function shortQuotes(message: string): string {
  return message.length <= MAX_QUOTE ? message
    : message.replace(/"([^"]{121,})"/g, (_m, q: string) => `"${q.slice(0, 100)}…" (${q.length} characters)`)
}

/**
 * parseInto in steps of about `stepChars` characters of a `lines` text (a Sigma or CSV text is
 * one step: they are small), so that a caller can give the event loop a turn between them.
 */
export function* parseInSteps(text: string, format: ListFormat, sink: EntrySink, stepChars: number): Generator<void, void> {
  // a one-label name (`com`, `zip`) listed for blocking takes every name under it: kept (a TLD may
  // be blocked on purpose), with a warning, so that a stray line cannot do it unseen
  const out: EntrySink = {
    entry(name, kind, allow, pattern, line, sigma) {
      if (!allow && kind !== 'exact' && !name.includes('.')) sink.warn(line, `"${pattern}" is a top-level domain: it matches every name under .${name}`)
      sink.entry(name, kind, allow, pattern, line, sigma)
    },
    // a line's bytes quoted: cut to length, then its controls escaped (a UTF-16 file's NULs, an ESC) before they reach a terminal or a log
    warn: (line, message) => sink.warn(line, printable(shortQuotes(message))),
  }
  if (format === 'sigma') parseSigma(text, out)
  else if (format === 'csv') parseCsv(text, out)
  else yield* parseLinesInSteps(text, out, stepChars)
}

/**
 * Parse one list text (a file's or a URL's content) into entries and warnings, without a matcher.
 * `source` names it in every entry and warning (`source:line`); the format defaults to formatOf(source).
 */
export function parseListText(list: string, source: string, text: string, format: ListFormat = formatOf(source))
  : { entries: Entry[]; warnings: ListWarning[] } {
  const entries: Entry[] = []
  const warnings: ListWarning[] = []
  parseInto(text, format, {
    entry(name, kind, allow, pattern, line, sigma) {
      const e = { list, name, kind, allow, pattern, source: `${source}:${line}` }
      entries.push(sigma ? { ...e, sigma } : e)
    },
    warn(line, message) { warnings.push({ source: `${source}:${line}`, message }) },
  })
  return { entries, warnings }
}
