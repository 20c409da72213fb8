import { isIP } from 'node:net'
import { CidrSet, canonicalIp } from '../policy/cidr.js'
import type { Decision } from '../policy/types.js'
import { bypassOf, type Bypass } from '../dns/actions.js'
import { authorityProblem, parseAuthority, type Target } from '../proxy/address.js'
import { badTargetHost, blocks, decideBadTarget, decideTarget } from '../proxy/decide.js'
import type { Snapshot } from '../snapshot-types.js'
import type { StoredCopies } from '../remote-lists.js'
import { allWarnings } from '../snapshot.js'
import { printable } from '../printable.js'
import { withoutPassword } from '../url-secrets.js'

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
 * address), noting when the DNS forwarder would answer that client REFUSED, or answers the name
 * itself. `name` may be a URL or `host:port` (see checkDecision): its host is decided as the proxy
 * decides it, and the output says it came from it, and when the proxy refuses it as malformed.
 */
export function explainCheck(s: Snapshot, name: string, asked: string, json: boolean, stored?: StoredCopies): string {
  const client = canonicalIp(asked)                  // named as the log lines name it (::ffff:10.0.0.1 is 10.0.0.1)
  const { decision, ...notes } = checkDecision(s, name, client)
  // `check` decides with the copies serve keeps of the remote lists, and says which and from when
  const remote = stored !== undefined && stored.copies.length > 0
  if (json) return JSON.stringify({ ...decisionFields(decision, client, notes), ...remote ? { remote: remoteJson(stored) } : {} }, null, 2) + '\n'
  // the name is the user's, pasted from anywhere: an escape sequence in it is shown, not run by the terminal
  const text = printable(explainDecision(decision, client, notes))
  return remote ? text + `  remote:  ${copiesIn(stored, 'check')}\n${remoteLines(stored, '    ').join('\n')}\n` : text
}

/** The authority of an absolute URL (any scheme, as the proxy reads an absolute-form target). */
const ABSOLUTE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/

/** What `check` reads its input as: a name (undefined), a target the proxy takes, or one it refuses (400). */
export type CheckInput =
  | { readonly target: Target; readonly where: 'url' | 'connect' }
  | { readonly authority: string; readonly where: 'url' | 'connect'; readonly invalid: string }

/**
 * The target a pasted URL or `host:port` names, read by the proxy's parseAuthority: an absolute
 * URL's authority (`https://x.example/path`, userinfo dropped; its port is not decided), anything
 * with a colon or a bracket as `host:port` or `[v6]:port`, and an address alone. One the proxy
 * refuses as malformed comes with what is wrong (`invalid`). Undefined for a name (no colon, no
 * scheme): it is decided as DNS decides a query for it.
 */
export function targetOf(input: string): CheckInput | undefined {
  // an address alone (`::1`, `[fd00::1]`, `10.0.0.1`), as a responder pastes it from a line: the proxy's address literal
  const bare = input.startsWith('[') && input.endsWith(']') ? input.slice(1, -1) : input
  if (isIP(bare) !== 0) return { target: { host: bare, port: 0, ip: canonicalIp(bare) }, where: 'connect' }
  const abs = ABSOLUTE.exec(input)
  // the URL's port is not decided: any default does
  const [authority, where, port] = abs ? [abs[1]!.slice(abs[1]!.lastIndexOf('@') + 1), 'url' as const, 1] : [input, 'connect' as const, undefined]
  if (!abs && !input.includes(':') && !input.startsWith('[')) return undefined
  const target = parseAuthority(authority, port)
  return target ? { target, where } : { authority, where, invalid: authorityProblem(authority, port) }
}

/** The reason of the decision on a malformed target with no host in it (brackets, userinfo, a path). */
const NO_HOST = 'no host'

/** What `check` says besides the decision. */
export interface CheckNotes {
  /** The client is not in dns.allowClients: DNS answers it REFUSED. */
  readonly refused?: boolean
  /** The URL or host:port the name was taken from. */
  readonly from?: string
  /** What is wrong with a target the proxy refuses (400): the decision is then the one it logs, or none (action `invalid`). */
  readonly invalid?: string
  /** A name DNS answers itself (dns.dohCanary, dns.blockDdr) when the lists do not block it. */
  readonly dnsAnswer?: Bypass
}

/**
 * What `check` decides: the policy's decision on `name` asked by `client`, and whether DNS answers
 * that client REFUSED, or the name itself. A URL or `host:port` (a responder pastes them from
 * alerts) is decided as the proxy decides its host (an address literal is no name and passes), and
 * `from` is the input; one the proxy refuses as malformed has `invalid` (what is wrong), and the
 * decision the proxy logs for it (decideBadTarget), or, when it logs none, its host's own.
 */
export function checkDecision(s: Snapshot, name: string, client: string): { decision: Decision } & CheckNotes {
  const refused = !new CidrSet(s.config.dns.allowClients).has(client)
  const t = targetOf(name)
  if (t === undefined) {
    const decision = s.policy.decide(client, name, 'qname')
    // DNS answers these itself unless a list blocks them (and REFUSED to a client it does not serve)
    const dnsAnswer = refused || blocks(decision) ? undefined : bypassOf(decision.name, s.config)
    return { decision, refused, ...dnsAnswer && { dnsAnswer } }
  }
  if ('target' in t) return { decision: decideTarget(s, client, t.target, t.where), refused, from: withoutPassword(name) }
  const logged = decideBadTarget(s, client, t.authority, t.where)
  const host = badTargetHost(t.authority)
  const decision = logged ?? (host === undefined
    ? { action: 'pass', group: s.policy.groupOf(client), where: t.where, name, reason: NO_HOST }
    : s.policy.decide(client, host, t.where))
  return { decision, refused, from: withoutPassword(name), invalid: t.invalid }
}

/** A decision as `check --json` and `/api/check` give it. */
export interface DecisionFields {
  readonly name: string
  readonly client: string
  readonly group: string
  /** The decision's, or `invalid`: a target the proxy refuses (400) with no decision line. */
  readonly action: string
  reason: string
  readonly list: string | null
  readonly entry: { pattern: string; kind: string; source: string; allow: boolean } | null
  readonly sigma: unknown
  readonly unparseable: boolean
  readonly dnsRefused?: true
  /** The URL or host:port `name` was taken from. */
  readonly from?: string
  /** What is wrong with a target the proxy refuses as malformed. */
  readonly invalid?: string
  /** DNS answers the name itself: what, by which setting, why. */
  readonly dnsAnswer?: Bypass
}

/** A target the proxy refuses with no decision line: said as such (action `invalid`), the host's own decision after it. */
function refusedOnly(d: Decision, invalid: string | undefined): string | undefined {
  if (invalid === undefined || blocks(d)) return undefined
  return `invalid target (${invalid}): the proxy refuses it (400) and logs no decision; ${d.reason === NO_HOST ? 'no host to decide' : `the host alone: ${d.reason}`}`
}

/** The decision's fields (JSON), with what `check` notes besides (see CheckNotes). */
export function decisionFields(d: Decision, client: string, notes: CheckNotes = {}): DecisionFields {
  const only = refusedOnly(d, notes.invalid)
  return {
    name: d.name, client, group: d.group, action: only === undefined ? d.action : 'invalid', reason: only ?? d.reason,
    list: d.list ?? null,
    entry: d.entry ? { pattern: d.entry.pattern, kind: d.entry.kind, source: d.entry.source, allow: d.entry.allow } : null,
    sigma: d.sigma ?? null,
    unparseable: d.unparseable ?? false,
    ...notes.refused === true ? { dnsRefused: true as const } : {},
    ...notes.from === undefined ? {} : { from: notes.from },
    ...notes.invalid === undefined ? {} : { invalid: notes.invalid },
    ...notes.dnsAnswer === undefined ? {} : { dnsAnswer: notes.dnsAnswer },
  }
}

/** The decision and why, for a person (decisionFields: as JSON), with what `check` notes besides (see CheckNotes). */
export function explainDecision(d: Decision, client: string, notes: CheckNotes = {}): string {
  const { refused = false, from, invalid, dnsAnswer } = notes
  const only = refusedOnly(d, invalid)
  const lines = [
    `${d.name}${from === undefined ? '' : ` (from ${from})`}: ${only === undefined ? d.action.toUpperCase() : 'INVALID'}`,
    `  client:  ${client} (group ${d.group})`,
    `  reason:  ${only ?? d.reason}`,
  ]
  if (d.entry) lines.push(`  entry:   ${d.entry.pattern} (${d.entry.kind}) in list ${d.entry.list}, ${d.entry.source}`)
  if (d.sigma) lines.push(`  sigma:   ${d.sigma.id} "${d.sigma.title}" by ${d.sigma.author}`)
  if (invalid !== undefined && only === undefined) lines.push(`  target:  invalid (${invalid}): the proxy refuses it (400) and logs this decision`)
  if (refused) lines.push(`  dns:     REFUSED: ${client} is not in dns.allowClients, so DNS answers this client REFUSED whatever the name`)
  if (dnsAnswer) lines.push(`  dns:     ${dnsAnswer.reason}, not forwarded upstream`)
  if (only !== undefined || dnsAnswer) return lines.join('\n') + '\n'
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
