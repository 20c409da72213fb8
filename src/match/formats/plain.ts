import { listedName, VALID_LINES, type EntrySink } from './sink.js'

/**
 * One plain entry: `name` is the domain and its subdomains (the safe reading for a security list),
 * `*.name` its subdomains only. `token` has no spaces or comment; it is also the entry's pattern.
 */
export function parsePlainToken(token: string, line: number, sink: EntrySink): void {
  const sub = token.startsWith('*.')
  const n = listedName(sub ? token.slice(2) : token)
  if (!n.ok) {
    sink.warn(line, `invalid entry "${token}": ${n.reason}; ${VALID_LINES}`)
    return
  }
  sink.entry(n.name, sub ? 'subdomains' : 'domain', false, token, line)
}
