import { isIP } from 'node:net'
import { listedName, VALID_LINES, type EntrySink } from './sink.js'

/** Names a hosts file maps for the machine itself, never entries. */
export const LOCAL_NAMES: ReadonlySet<string> = new Set([
  'localhost', 'localhost.localdomain', 'local', 'broadcasthost', '0.0.0.0', 'ip6-localhost',
  'ip6-loopback', 'ip6-localnet', 'ip6-mcastprefix', 'ip6-allnodes', 'ip6-allrouters', 'ip6-allhosts',
])

/** Is the first token of a line an address (the start of a hosts-file line)? `fe80::1%lo0` counts. */
export function isHostsAddress(token: string): boolean {
  if (!token.includes(':')) {
    for (let i = 0; i < token.length; i++) {
      const c = token.charCodeAt(i)
      if (c !== 46 && (c < 48 || c > 57)) return false   // an IPv4 address is digits and dots
    }
  }
  const pct = token.indexOf('%')
  return isIP(pct < 0 ? token : token.slice(0, pct)) !== 0
}

/**
 * A hosts-file line, `0.0.0.0 host [host...]` (comment already removed, split on spaces): each
 * host is an exact entry whose pattern reads `ADDRESS host`. localhost-style names are skipped.
 */
export function parseHostsTokens(tokens: readonly string[], line: number, sink: EntrySink): void {
  const addr = tokens[0]!
  if (tokens.length === 1) {
    // a bare address (a threat feed's IP line, or a hosts line cut short): never an entry, which are names
    sink.warn(line, `"${addr}" is an address with no host name after it: not an entry (lists hold names: block addresses at the firewall); ${VALID_LINES}`)
    return
  }
  for (let i = 1; i < tokens.length; i++) {
    const host = tokens[i]!
    if (LOCAL_NAMES.has(host.toLowerCase())) continue
    const n = listedName(host)
    if (!n.ok) sink.warn(line, `invalid host "${host}" in hosts line: ${n.reason}; ${VALID_LINES}`)
    else sink.entry(n.name, 'exact', false, `${addr} ${host}`, line)
  }
}
