import { parsePlainToken } from './plain.js'
import type { EntrySink } from './sink.js'

/** The first field of a CSV line, unquoted and trimmed. */
function firstField(line: string): string {
  if (line.startsWith('"')) {
    const end = line.indexOf('"', 1)
    return (end < 0 ? line.slice(1) : line.slice(1, end)).trim()
  }
  const comma = line.indexOf(',')
  return (comma < 0 ? line : line.slice(0, comma)).trim()
}

/**
 * A CSV whose first column holds the names (LOTTunnels `domain,name`, LOLRMM `URI,RMM_Tool`).
 * A first line whose first field has no dot is a header. Each name reads as a plain line:
 * `x.com` the domain and its subdomains, `*.x.com` subdomains only; anything else is a warning.
 */
export function parseCsv(text: string, sink: EntrySink): void {
  const lines = text.split('\n')
  lines.forEach((raw, i) => {
    const field = firstField(raw.replace(/^\uFEFF/, ''))
    if (field === '' || (i === 0 && !field.includes('.'))) return
    parsePlainToken(field, i + 1, sink)
  })
}
