import type { Decision } from '../policy/types.js'
import type { Snapshot } from '../snapshot-types.js'

/** `tunnelguard check` output: the decision and why, for a person or as JSON. */
export function explainDecision(d: Decision, client: string, json: boolean): string {
  if (json) {
    return JSON.stringify({
      name: d.name, client, group: d.group, action: d.action, reason: d.reason,
      list: d.list ?? null,
      entry: d.entry ? { pattern: d.entry.pattern, kind: d.entry.kind, source: d.entry.source, allow: d.entry.allow } : null,
      sigma: d.sigma ?? null,
      unparseable: d.unparseable ?? false,
    }, null, 2) + '\n'
  }
  const lines = [
    `${d.name}: ${d.action.toUpperCase()}`,
    `  client:  ${client} (group ${d.group})`,
    `  reason:  ${d.reason}`,
  ]
  if (d.entry) lines.push(`  entry:   ${d.entry.pattern} (${d.entry.kind}) in list ${d.entry.list}, ${d.entry.source}`)
  if (d.sigma) lines.push(`  sigma:   ${d.sigma.id} "${d.sigma.title}" by ${d.sigma.author}`)
  return lines.join('\n') + '\n'
}

/** `tunnelguard lists` output: what was loaded, counts, warnings. */
export function describeLists(s: Snapshot, json: boolean): string {
  if (json) {
    return JSON.stringify({ config: s.config.source, lists: s.lists, warnings: s.warnings }, null, 2) + '\n'
  }
  const lines = [`config: ${s.config.source}`]
  const w = Math.max(4, ...s.lists.map(l => l.name.length))
  lines.push(`${'list'.padEnd(w)}  action    entries  allows  sources`)
  for (const l of s.lists) {
    lines.push(`${l.name.padEnd(w)}  ${l.action.padEnd(8)}  ${String(l.entries).padStart(7)}  ${String(l.allows).padStart(6)}  ${l.sources.join(', ')}`)
  }
  lines.push(`${s.policy.entries} entries in all; ${s.warnings.length} warning${s.warnings.length === 1 ? '' : 's'}`)
  for (const x of s.warnings) lines.push(`  warning: ${x.source}: ${x.message}`)
  return lines.join('\n') + '\n'
}
