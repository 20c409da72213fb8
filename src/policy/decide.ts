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

/** A match's reason after the name: the entry, its list and source, where the action came from. */
function tailOf(e: Entry, via: string): string {
  return ` matches ${e.pattern} in list ${e.list} (${e.source}); action from ${via}`
    + (e.sigma ? `; Sigma rule ${e.sigma.id} "${e.sigma.title}" by ${e.sigma.author}` : '')
}

/** Build the pure decision function over a matcher, list defaults and client groups. */
export function createPolicy(input: PolicyInput): Policy {
  const groups = new Groups(input.groups)
  const listActions = new Map(Object.entries(input.listActions))
  const { matcher } = input
  // one tail string per entry, built on its first match (a blocked query would otherwise build it
  // from seven pieces each time, and the log writer flatten and scan it)
  const tails = new WeakMap<Entry, string>()

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
      // with the action from the entry's own list, the tail depends on the entry alone: kept
      const own = !overrides.has(best.list)
      let tail = own ? tails.get(best) : undefined
      if (tail === undefined) {
        tail = tailOf(best, own ? `list ${best.list}` : `group ${group}`)
        if (own) tails.set(best, tail)
      }
      return {
        action: bestAction, group, where, name, entry: best, list: best.list, sigma: best.sigma,
        reason: `${bestAction}: ${name}${tail}`, tail: own ? tail : undefined,
      }
    }
    return {
      action: 'pass', group, where, name, entry: off, list: off!.list,
      reason: `matches ${off!.pattern} in list ${off!.list}, but that list is off for group ${group}`,
    }
  }

  return { decide, groupOf: c => groups.nameOf(c), entries: matcher.size }
}
