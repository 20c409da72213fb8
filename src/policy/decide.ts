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

/**
 * The labels of a DNS name as the DNS reader writes it (a dot or backslash inside a label escaped
 * with a backslash), each as written.
 */
function labelsOf(raw: string): string[] {
  const out: string[] = []
  let start = 0
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i)
    if (c === 92) i++                                   // \. or \\: part of the label
    else if (c === 46) { out.push(raw.slice(start, i)); start = i + 1 }
  }
  if (start < raw.length) out.push(raw.slice(start))
  return out
}

/**
 * A DNS name that is no host name (an RFC 2317 label `0/25`, a DNS-SD instance with spaces, a `*`,
 * a dot inside a label): its longest suffix that is one, normalized ('' when none is), and the
 * label above that suffix, as written.
 */
function hostSuffix(raw: string): { under: string; label: string; why: string } {
  const labels = labelsOf(raw.charCodeAt(raw.length - 1) === 46 && raw.charCodeAt(raw.length - 2) !== 92 ? raw.slice(0, -1) : raw)
  let under = ''
  for (let i = labels.length - 1; i > 0; i--) {
    const n = normalizeName(labels.slice(i).join('.'))
    if (!n.ok) return { under, label: labels[i]!, why: n.reason }
    under = n.name
  }
  // the whole name does not normalize (the caller asks only about such a name): its first label is what is wrong
  return { under, label: labels[0]!, why: (normalizeName(raw) as { reason: string }).reason }
}

/**
 * A label no list holds (a list's names are normalized: `*` is none of their characters): a name
 * under S is looked up as `*.S`, so that S and `*.S` entries and those above S match it, and an
 * `=S` entry does not, as for any name under S.
 */
const SOME_LABEL = '*'

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
    if (norm.ok) return decideName(client, group, norm.name, norm.name, where)
    // DNS names need not be host names (RFC 2181 §11): one is decided as a name under its longest
    // suffix that is one, so a listed suffix still blocks it. A proxy's host must be a host name.
    if (where === 'qname' || where === 'cname') {
      const { under, label, why: wrong } = hostSuffix(raw)
      const d = decideName(client, group, under === '' ? SOME_LABEL : `${SOME_LABEL}.${under}`, raw, where)
      const why = `not a host name (${wrong} in "${label}"): decided as a name under ${under === '' ? 'the root' : under}`
      return { ...d, unparseable: true, ...d.action === 'pass' && d.entry === undefined && { reason: `not listed; ${why}` } }
    }
    return {
      action: 'block', group, where, name: raw, unparseable: true,
      reason: `unparseable name (${norm.reason}): blocked, fail closed`,
    }
  }

  /** The decision on the normalized `name`; `shown`: the name the decision and its reason give. */
  function decideName(client: string, group: string, name: string, shown: string, where: Where): Decision {
    const matches = matcher.lookup(name)
    if (matches.length === 0) return { action: 'pass', group, where, name: shown, reason: 'not listed' }
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
        action: 'allow', group, where, name: shown, entry: allow, list: allow.list, sigma: allow.sigma,
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
        action: bestAction, group, where, name: shown, entry: best, list: best.list, sigma: best.sigma,
        reason: `${bestAction}: ${shown}${tail}`, tail: own ? tail : undefined,
      }
    }
    return {
      action: 'pass', group, where, name: shown, entry: off, list: off!.list,
      reason: `matches ${off!.pattern} in list ${off!.list}, but that list is off for group ${group}`,
    }
  }

  return { decide, groupOf: c => groups.nameOf(c), entries: matcher.size }
}
