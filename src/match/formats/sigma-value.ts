import { isIP } from 'node:net'
import type { MatchKind } from '../types.js'
import { listedName } from './sink.js'

export type SigmaValue =
  | { readonly ok: true; readonly name: string; readonly kind: MatchKind; readonly note?: string }
  | { readonly ok: false; readonly reason: string }

const ONLY = 'only plain, endswith and contains values of a whole domain name become entries'

function fail(reason: string): SigmaValue {
  return { ok: false, reason }
}

/** Why a modifier list cannot become a suffix entry, or undefined when it can. */
function badModifiers(mods: readonly string[]): string | undefined {
  if (mods.length === 0 || (mods.length === 1 && (mods[0] === 'endswith' || mods[0] === 'contains'))) return undefined
  if (mods.includes('re')) return `a regular expression (|re) cannot be a suffix entry; ${ONLY}`
  if (mods.includes('all')) return `|all needs every value at once (AND), which a suffix entry cannot express; ${ONLY}`
  if (mods.includes('startswith')) return `startswith is a prefix match, not a domain suffix; ${ONLY}`
  return `modifier |${mods.join('|')} is not supported; ${ONLY}`
}

/**
 * One value of a host-name field (DestinationHostname, QueryName, query) as a suffix entry.
 *
 * - plain `host` is that name exactly; plain `*.host` its subdomains.
 * - `endswith: '.host'` (or `'*.host'`) is the subdomains of host, strictly: not host itself.
 * - `endswith: 'host'` without the dot is a partial label (it also matches `xhost`): loaded as
 *   host and its subdomains, by whole labels, with a note saying what is not covered.
 * - `contains: 'a.host'` (a whole name, two labels or more) is read as that domain and its
 *   subdomains; `contains: '.a.host'` as the subdomains of a.host; either with a note: Sigma's
 *   substring also matches `xa.host` and `a.host.example`, which whole labels do not.
 * Anything else (|re, startswith, wildcards inside, fragments, escapes, an IP address: the rule
 * meant the address, which no name entry matches) is refused with the reason.
 */
export function convertSigmaValue(mods: readonly string[], value: unknown): SigmaValue {
  const bad = badModifiers(mods)
  if (bad) return fail(bad)
  if (typeof value !== 'string') return fail(`${value === null ? 'null' : typeof value} is not a host name`)
  const mod = mods[0] ?? ''
  let v = value.trim()
  if (v.includes('\\')) return fail(`escape sequences (\\) are not host names; ${ONLY}`)
  let leftOpen = mod !== ''
  while (v.startsWith('*')) { leftOpen = true; v = v.slice(1) }
  if (v.endsWith('*')) {
    if (mod !== 'contains') return fail(`a trailing * makes it a prefix match, not a domain suffix; ${ONLY}`)
    while (v.endsWith('*')) v = v.slice(0, -1)
  }
  if (v.includes('*') || v.includes('?')) return fail(`a wildcard inside the value cannot be a suffix entry; ${ONLY}`)
  let kind: MatchKind = 'exact'
  let partial = false
  if (leftOpen) {
    if (v.startsWith('.')) { kind = 'subdomains'; v = v.slice(1) } else { kind = 'domain'; partial = mod !== 'contains' }
    const fragment = v.startsWith('-') || v.endsWith('.') || (!v.includes('.') && (partial || mod === 'contains'))
    if (fragment) return fail(`"${value}" is a fragment, not a whole domain name; ${ONLY}`)
  }
  if (isIP(v) !== 0) return fail(`"${value}" is an address, not a name: tunnelguard decides names (block the address at the firewall); ${ONLY}`)
  const n = listedName(v)
  if (!n.ok) return fail(`"${value}" is not a whole domain name (${n.reason}); ${ONLY}`)
  if (mod === 'contains') {
    return {
      ok: true, name: n.name, kind,
      note: `"${value}" (contains, a substring) also matches names such as ${kind === 'domain' ? `"x${n.name}" and "${n.name}.example"` : `"a.${n.name}.example"`}; `
        + `loaded as ${kind === 'domain' ? `${n.name} and its subdomains` : `the subdomains of ${n.name}`}, by whole labels only`,
    }
  }
  if (!partial) return { ok: true, name: n.name, kind }
  return {
    ok: true, name: n.name, kind,
    note: `"${value}" also matches names such as "x${n.name}" (a partial label); `
      + `loaded as ${n.name} and its subdomains, by whole labels only`,
  }
}
