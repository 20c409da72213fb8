import { isIP } from 'node:net'
import { LOCAL_NAMES } from './hosts.js'
import { listedName, VALID_LINES, type EntrySink } from './sink.js'

/**
 * One plain entry: `name` is the domain and its subdomains (the safe reading for a security list),
 * `*.name` its subdomains only. `token` has no spaces or comment; it is also the entry's pattern.
 */
export function parsePlainToken(token: string, line: number, sink: EntrySink): void {
  const sub = token.startsWith('*.')
  // (a line of the plain format that is an address reads as a hosts line; a CSV field comes here)
  if (isIP(token) !== 0) {
    sink.warn(line, `"${token}" is an address, not a name: lists hold names (block the address at the firewall); ${VALID_LINES}`)
    return
  }
  if (LOCAL_NAMES.has(token.toLowerCase())) {
    sink.warn(line, `"${token}" names the machine itself, as in a hosts file: not an entry`)
    return
  }
  const n = listedName(sub ? token.slice(2) : token)
  if (!n.ok) {
    sink.warn(line, `invalid entry "${token}": ${n.reason}; ${VALID_LINES}`)
    return
  }
  sink.entry(n.name, sub ? 'subdomains' : 'domain', false, token, line)
}
