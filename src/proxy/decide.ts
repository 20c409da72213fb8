import { SEVERITY, type Decision, type Where } from '../policy/types.js'
import type { Snapshot } from '../snapshot-types.js'
import type { Target } from './address.js'
import type { ProxyCtx, ProxySets } from './context.js'

/** The policy's decision on a target host; an address literal is not a name and passes. */
export function decideTarget(snap: Snapshot, client: string, t: Target, where: Where): Decision {
  if (t.ip !== undefined) {
    return { action: 'pass', group: snap.policy.groupOf(client), where, name: t.ip, reason: 'an address, not a name' }
  }
  return snap.policy.decide(client, t.host, where)
}

/** The more severe of two decisions (the first on a tie). */
export function worse(a: Decision, b: Decision | undefined): Decision {
  return b !== undefined && SEVERITY[b.action] > SEVERITY[a.action] ? b : a
}

export function blocks(d: Decision): boolean {
  return d.action === 'block' || d.action === 'sinkhole'
}

/** A block the proxy decides itself (unsafe destination, malformed SNI, …), in the Decision shape. */
export function denial(snap: Snapshot, client: string, name: string, where: Where, reason: string): Decision {
  return { action: 'block', group: snap.policy.groupOf(client), where, name, reason }
}

export type Route =
  | { readonly ok: true; readonly ip?: string; readonly cname?: Decision; readonly cnames: readonly string[] }
  | { readonly ok: false; readonly status: 403 | 502; readonly reason: string; readonly cnames: readonly string[] }

/**
 * Where to dial: the address literal, or the name resolved once through `resolve` (the address
 * checked is the address dialled). The answer's CNAME chain is decided (`cname`, the worst one).
 * Every address of the answer must be a permitted destination. Through a parent proxy a name is
 * not resolved here: the parent dials it.
 */
export async function route(ctx: ProxyCtx, snap: Snapshot, sets: ProxySets, client: string, t: Target, name: string): Promise<Route> {
  if (t.ip !== undefined) {
    const bad = ctx.guard.check(t.ip, t.port, sets.allowDest)
    return bad ? { ok: false, status: 403, reason: bad, cnames: [] } : { ok: true, ip: t.ip, cnames: [] }
  }
  if (sets.parent) return { ok: true, cnames: [] }
  let answer: { addresses: string[]; cnames: string[] }
  try {
    answer = await ctx.resolve(name)
  } catch (e) {
    return { ok: false, status: 502, reason: `cannot resolve ${name}: ${(e as Error).message}`, cnames: [] }
  }
  const cnames = answer.cnames
  let cname: Decision | undefined
  for (const c of cnames) {
    const d = snap.policy.decide(client, c, 'cname')
    if (cname === undefined || SEVERITY[d.action] > SEVERITY[cname.action]) cname = d
  }
  if (cname && blocks(cname)) return { ok: true, cname, cnames }
  if (answer.addresses.length === 0) return { ok: false, status: 502, reason: `${name} has no addresses`, cnames }
  for (const ip of answer.addresses) {
    const bad = ctx.guard.check(ip, t.port, sets.allowDest)
    if (bad) return { ok: false, status: 403, reason: `${name} resolves to ${bad}`, cnames }
  }
  return { ok: true, ip: answer.addresses[0], cname, cnames }
}
