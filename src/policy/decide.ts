import type { Entry, Matcher } from '../match/types.js'
import { normalizeName } from '../match/normalize.js'
import type { Policy } from '../snapshot-types.js'
import { Groups, type GroupSpec } from './groups.js'
import { SEVERITY, type Action, type Decision, type Outcome, type Where } from './types.js'

export interface PolicyInput {
  readonly matcher: Matcher
  readonly listActions: Readonly<Record<string, Action>>
  readonly groups: readonly GroupSpec[]
}

/** Build the pure decision function over a matcher, list defaults and client groups. */
export function createPolicy(input: PolicyInput): Policy {
  const groups = new Groups(input.groups)
  const listActions = new Map(Object.entries(input.listActions))
  const { matcher } = input

  function decide(client: string, raw: string, where: Where): Decision {
    const group = groups.nameOf(client)
    const norm = normalizeName(raw)
    if (!norm.ok) {
      return {
        action: 'block', group, where, name: raw, unparseable: true,
        reason: `unparseable name (${norm.reason}): blocked, fail closed`,
      }
    }
    const name = norm.name
    const matches = matcher.lookup(name)
    if (matches.length === 0) return { action: 'pass', group, where, name, reason: 'not listed' }
    const overrides = groups.actionsOf(client)
    let best: Entry | undefined
    let bestAction: Outcome = 'pass'
    let allow: Entry | undefined
    let off: Entry | undefined
    for (const e of matches) {
      const act = overrides.get(e.list) ?? listActions.get(e.list)
      if (act === undefined || act === 'off') { off ??= e; continue }
      if (e.allow) { allow ??= e; continue }
      if (SEVERITY[act] > SEVERITY[bestAction]) { best = e; bestAction = act }
    }
    if (allow) {
      return {
        action: 'allow', group, where, name, entry: allow, list: allow.list, sigma: allow.sigma,
        reason: `allowed by ${allow.pattern} in list ${allow.list} (${allow.source})`,
      }
    }
    if (best) {
      const via = overrides.has(best.list) ? `group ${group}` : `list ${best.list}`
      return {
        action: bestAction, group, where, name, entry: best, list: best.list, sigma: best.sigma,
        reason: `${bestAction}: ${name} matches ${best.pattern} in list ${best.list} (${best.source}); action from ${via}`
          + (best.sigma ? `; Sigma rule ${best.sigma.id} "${best.sigma.title}" by ${best.sigma.author}` : ''),
      }
    }
    return {
      action: 'pass', group, where, name, entry: off, list: off!.list,
      reason: `matches ${off!.pattern} in list ${off!.list}, but that list is off for group ${group}`,
    }
  }

  return { decide, groupOf: c => groups.nameOf(c), entries: matcher.size }
}
