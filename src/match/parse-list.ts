import { parseCsv } from './formats/csv.js'
import { parseLines } from './formats/lines.js'
import { parseSigma } from './formats/sigma.js'
import type { EntrySink } from './formats/sink.js'
import type { Entry, ListWarning } from './types.js'

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
  if (format === 'sigma') parseSigma(text, sink)
  else if (format === 'csv') parseCsv(text, sink)
  else parseLines(text, sink)
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
