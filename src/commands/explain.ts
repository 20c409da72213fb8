import { CidrSet } from '../policy/cidr.js'
import type { Decision } from '../policy/types.js'
import type { Snapshot } from '../snapshot-types.js'
import { allWarnings } from '../snapshot.js'

/**
 * `tunnelguard check` and `/api/check`: the decision for `name` asked by `client` (an IP
 * address), noting when the DNS forwarder would answer that client REFUSED.
 */
export function explainCheck(s: Snapshot, name: string, client: string, json: boolean): string {
  const refused = !new CidrSet(s.config.dns.allowClients).has(client)
  return explainDecision(s.policy.decide(client, name, 'qname'), client, json, refused)
}

/** The decision and why, for a person or as JSON; `refused`: the client is not in dns.allowClients. */
export function explainDecision(d: Decision, client: string, json: boolean, refused = false): string {
  if (json) {
    return JSON.stringify({
      name: d.name, client, group: d.group, action: d.action, reason: d.reason,
      list: d.list ?? null,
      entry: d.entry ? { pattern: d.entry.pattern, kind: d.entry.kind, source: d.entry.source, allow: d.entry.allow } : null,
      sigma: d.sigma ?? null,
      unparseable: d.unparseable ?? false,
      ...refused ? { dnsRefused: true } : {},
    }, null, 2) + '\n'
  }
  const lines = [
    `${d.name}: ${d.action.toUpperCase()}`,
    `  client:  ${client} (group ${d.group})`,
    `  reason:  ${d.reason}`,
  ]
  if (d.entry) lines.push(`  entry:   ${d.entry.pattern} (${d.entry.kind}) in list ${d.entry.list}, ${d.entry.source}`)
  if (d.sigma) lines.push(`  sigma:   ${d.sigma.id} "${d.sigma.title}" by ${d.sigma.author}`)
  if (refused) lines.push(`  dns:     REFUSED: ${client} is not in dns.allowClients, so DNS answers this client REFUSED whatever the name`)
  return lines.join('\n') + '\n'
}

/** `tunnelguard lists` output: what was loaded, counts, warnings. */
export function describeLists(s: Snapshot, json: boolean): string {
  if (json) {
    return JSON.stringify({ config: s.config.source, lists: s.lists, warnings: allWarnings(s) }, null, 2) + '\n'
  }
  const lines = [`config: ${s.config.source}`]
  const w = Math.max(4, ...s.lists.map(l => l.name.length))
  lines.push(`${'list'.padEnd(w)}  action    entries  allows  sources`)
  for (const l of s.lists) {
    lines.push(`${l.name.padEnd(w)}  ${l.action.padEnd(8)}  ${String(l.entries).padStart(7)}  ${String(l.allows).padStart(6)}  ${l.sources.join(', ')}`)
  }
  const warnings = allWarnings(s)
  lines.push(`${s.policy.entries} entries in all; ${warnings.length} warning${warnings.length === 1 ? '' : 's'}`)
  for (const x of warnings) lines.push(`  warning: ${x.source}: ${x.message}`)
  return lines.join('\n') + '\n'
}
