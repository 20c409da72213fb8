import { isIP } from 'node:net'
import { CidrSet, canonicalIp } from '../policy/cidr.js'
import type { Decision } from '../policy/types.js'
import { parseAuthority, type Target } from '../proxy/address.js'
import { decideTarget } from '../proxy/decide.js'
import type { Snapshot } from '../snapshot-types.js'
import type { StoredCopies } from '../remote-lists.js'
import { allWarnings } from '../snapshot.js'

const NOT_FETCHED = '0 entries (remote, not fetched yet: run serve, or check the URL)'

/** Where the copies are kept, and (the directory untrusted) why they are not read. */
const copiesIn = (stored: StoredCopies, command: string): string => stored.untrusted === undefined
  ? `the copies serve keeps in ${stored.dir} (${command} fetches nothing):`
  : `the copies in ${stored.dir} are not read: it is ${stored.untrusted} (set state.dir to a directory only this user can write; ${command} fetches nothing):`

/** Each remote list URL: when its copy was fetched, or that there is none yet. */
function remoteLines(stored: StoredCopies, indent: string): string[] {
  const w = Math.max(...stored.copies.map(c => c.list.length))
  return stored.copies.map(c => `${indent}${`${c.list}:`.padEnd(w + 1)} ${c.url}: ${c.fetchedAt === null ? NOT_FETCHED : `copy fetched ${new Date(c.fetchedAt).toISOString()}`}`)
}

/** The remote lists' copies in JSON: the state dir, each URL and when it was fetched (null: no copy). */
const remoteJson = (stored: StoredCopies) => ({
  dir: stored.dir,
  ...stored.untrusted === undefined ? {} : { untrusted: stored.untrusted },
  copies: stored.copies.map(c => ({ list: c.list, url: c.url, fetchedAt: c.fetchedAt === null ? null : new Date(c.fetchedAt).toISOString() })),
})

/**
 * `tunnelguard check` and `/api/check`: the decision for `name` asked by `client` (an IP
 * address), noting when the DNS forwarder would answer that client REFUSED. `name` may be a URL
 * or `host:port` (see checkDecision): its host is decided, and the output says it came from it.
 */
export function explainCheck(s: Snapshot, name: string, asked: string, json: boolean, stored?: StoredCopies): string {
  const client = canonicalIp(asked)                  // named as the log lines name it (::ffff:10.0.0.1 is 10.0.0.1)
  const { decision, refused, from } = checkDecision(s, name, client)
  // `check` decides with the copies serve keeps of the remote lists, and says which and from when
  const remote = stored !== undefined && stored.copies.length > 0
  if (json) return JSON.stringify({ ...decisionFields(decision, client, refused, from), ...remote ? { remote: remoteJson(stored) } : {} }, null, 2) + '\n'
  const text = explainDecision(decision, client, refused, from)
  return remote ? text + `  remote:  ${copiesIn(stored, 'check')}\n${remoteLines(stored, '    ').join('\n')}\n` : text
}

/** The authority of an absolute URL (any scheme, as the proxy reads an absolute-form target). */
const ABSOLUTE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/

/**
 * The host a pasted URL or `host:port` names, as the proxy takes it from a request: an absolute
 * URL's authority (`https://x.example/path`, userinfo dropped), `host:port`, `[v6]:port`; undefined
 * for anything else (a name is decided as it is, and a string that is neither stays unparseable).
 */
export function targetOf(input: string): { target: Target; where: 'url' | 'connect' } | undefined {
  // an address alone (`::1`, `[fd00::1]`, `10.0.0.1`), as a responder pastes it from a line: the proxy's address literal
  const bare = input.startsWith('[') && input.endsWith(']') ? input.slice(1, -1) : input
  if (isIP(bare) !== 0) return { target: { host: bare, port: 0, ip: canonicalIp(bare) }, where: 'connect' }
  const abs = ABSOLUTE.exec(input)
  if (abs) {
    // the port is not decided: any default does
    const target = parseAuthority(abs[1]!.slice(abs[1]!.lastIndexOf('@') + 1), 1)
    return target && { target, where: 'url' }
  }
  const target = parseAuthority(input)
  return target && { target, where: 'connect' }
}

/**
 * What `check` decides: the policy's decision on `name` asked by `client`, and whether DNS answers
 * that client REFUSED. A URL or `host:port` (a responder pastes them from alerts) is decided as
 * the proxy decides its host (an address literal is no name and passes), and `from` is the input.
 */
export function checkDecision(s: Snapshot, name: string, client: string): { decision: Decision; refused: boolean; from?: string } {
  const refused = !new CidrSet(s.config.dns.allowClients).has(client)
  const t = targetOf(name)
  if (t === undefined) return { decision: s.policy.decide(client, name, 'qname'), refused }
  return { decision: decideTarget(s, client, t.target, t.where), refused, from: name }
}

/** A decision as `check --json` and `/api/check` give it. */
export interface DecisionFields {
  readonly name: string
  readonly client: string
  readonly group: string
  readonly action: string
  reason: string
  readonly list: string | null
  readonly entry: { pattern: string; kind: string; source: string; allow: boolean } | null
  readonly sigma: unknown
  readonly unparseable: boolean
  readonly dnsRefused?: true
  /** The URL or host:port `name` was taken from. */
  readonly from?: string
}

/** The decision's fields (JSON); `refused`: the client is not in dns.allowClients; `from`: the URL or host:port the name came from. */
export function decisionFields(d: Decision, client: string, refused = false, from?: string): DecisionFields {
  return {
    name: d.name, client, group: d.group, action: d.action, reason: d.reason,
    list: d.list ?? null,
    entry: d.entry ? { pattern: d.entry.pattern, kind: d.entry.kind, source: d.entry.source, allow: d.entry.allow } : null,
    sigma: d.sigma ?? null,
    unparseable: d.unparseable ?? false,
    ...refused ? { dnsRefused: true as const } : {},
    ...from === undefined ? {} : { from },
  }
}

/**
 * The decision and why, for a person (decisionFields: as JSON); `refused`: the client is not in
 * dns.allowClients; `from`: the URL or host:port the name was taken from.
 */
export function explainDecision(d: Decision, client: string, refused = false, from?: string): string {
  const lines = [
    `${d.name}${from === undefined ? '' : ` (from ${from})`}: ${d.action.toUpperCase()}`,
    `  client:  ${client} (group ${d.group})`,
    `  reason:  ${d.reason}`,
  ]
  if (d.entry) lines.push(`  entry:   ${d.entry.pattern} (${d.entry.kind}) in list ${d.entry.list}, ${d.entry.source}`)
  if (d.sigma) lines.push(`  sigma:   ${d.sigma.id} "${d.sigma.title}" by ${d.sigma.author}`)
  if (refused) lines.push(`  dns:     REFUSED: ${client} is not in dns.allowClients, so DNS answers this client REFUSED whatever the name`)
  if (d.action === 'pass' && isIP(d.name) !== 0) {
    lines.push('  note:    an address: lists hold names; the proxy still refuses it when it is internal (loopback, private, link-local, …) '
      + 'and proxy.allowDestinations does not list it, or when its port is not in proxy.connectPorts, and decides the SNI or Host sent with it')
  } else if (d.action === 'pass') {
    lines.push('  note:    the name alone; DNS also decides the CNAME, DNAME, HTTPS/SVCB and SRV targets in its answer, and the proxy the SNI and Host sent to it, so it can still be blocked through one of them')
  }
  return lines.join('\n') + '\n'
}

/**
 * `tunnelguard lists` output: what was loaded, counts, warnings; remote lists from the copies
 * serve keeps in the state dir (`stored`), each URL with when it was fetched, or that it was not.
 */
export function describeLists(s: Snapshot, json: boolean, stored: StoredCopies): string {
  const remote = stored.copies.length > 0
  if (json) {
    return JSON.stringify({ config: s.config.source, lists: s.lists, ...remote ? { remote: remoteJson(stored) } : {}, warnings: allWarnings(s) }, null, 2) + '\n'
  }
  const lines = [`config: ${s.config.source}`]
  const w = Math.max(4, ...s.lists.map(l => l.name.length))
  lines.push(`${'list'.padEnd(w)}  action    entries  allows  sources`)
  for (const l of s.lists) {
    const unfetched = stored.copies.filter(c => c.list === l.name && c.fetchedAt === null).map(c => `${c.url} (not fetched yet)`)
    lines.push(`${l.name.padEnd(w)}  ${l.action.padEnd(8)}  ${String(l.entries).padStart(7)}  ${String(l.allows).padStart(6)}  ${[...l.sources, ...unfetched].join(', ')}`)
  }
  if (remote) lines.push(`remote lists: ${copiesIn(stored, 'lists')}`, ...remoteLines(stored, '  '))
  const warnings = allWarnings(s)
  lines.push(`${s.policy.entries} entries in all; ${warnings.length} warning${warnings.length === 1 ? '' : 's'}`)
  for (const x of warnings) lines.push(`  warning: ${x.source}: ${x.message}`)
  return lines.join('\n') + '\n'
}
