import { SEVERITY, type Decision, type Where } from '../policy/types.js'
import type { Snapshot } from '../snapshot-types.js'
import type { Target } from './address.js'
import type { ProxyCtx, ProxySets } from './context.js'
import { interleaveFamilies } from './upstream.js'

/** The policy's decision on a target host; an address literal is not a name and passes. */
export function decideTarget(snap: Snapshot, client: string, t: Target, where: Where): Decision {
  if (t.ip !== undefined) {
    return { action: 'pass', group: snap.policy.groupOf(client), where, name: t.ip, reason: 'an address, not a name' }
  }
  return snap.policy.decide(client, t.host, where)
}

/**
 * The decision on the host of a target parseAuthority refused, when it blocks: a host that cannot
 * be normalized is blocked, fail closed (README, Precedence), and a listed one keeps its list's
 * decision, so that the attempt has its decision line. Undefined when no host is seen (brackets,
 * userinfo) or it passes (then the target alone is bad: a port missing or out of range).
 */
export function decideBadTarget(snap: Snapshot, client: string, s: string, where: Where): Decision | undefined {
  const host = badTargetHost(s)
  const d = host === undefined ? undefined : snap.policy.decide(client, host, where)
  return d && blocks(d) ? d : undefined
}

/** The host decideBadTarget decides in a target parseAuthority refused: none for brackets, userinfo, a path. */
export function badTargetHost(s: string): string | undefined {
  return /^([^:[\]@/\s]+)(?::\d*)?$/.exec(s)?.[1]
}

/** The more severe of two decisions (the first on a tie). */
export function worse(a: Decision, b: Decision | undefined): Decision {
  return b !== undefined && SEVERITY[b.action] > SEVERITY[a.action] ? b : a
}

/**
 * A refusal's reason as the client sees it (403 body and X-Tunnelguard-Reason): the name, the entry
 * and its list, without the list file's path on this machine, which only the log line carries (as
 * the DNS side's EDE text does).
 */
export function clientReason(d: Decision): string {
  return d.entry ? `${d.action}: ${d.name} matches ${d.entry.pattern} in list ${d.list}` : d.reason
}

/** Why a request's client is refused (its 403, and a reload's decision on its open tunnels). */
export function clientRefusal(ip: string): string {
  return `client ${ip} is not in proxy.allowClients`
}

/** Why a CONNECT's port is refused (its 403, and a reload's decision on its open tunnels). */
export function portRefusal(port: number, ports: readonly number[]): string {
  return `CONNECT to port ${port} is not allowed (proxy.connectPorts: ${ports.join(', ')})`
}

export function blocks(d: Decision): boolean {
  return d.action === 'block' || d.action === 'sinkhole'
}

/**
 * A block the proxy decides itself (a port or an internal address refused, a malformed ClientHello),
 * in the Decision shape; `policy` names the setting that refused it. When a list matched the name
 * too (`listed`: an alert, in a group that only alerts), the refusal keeps that match: its entry,
 * list and Sigma rule, and its reason after the refusal's, so that the attempt is counted for its
 * list like any other.
 */
export function denial(snap: Snapshot, client: string, name: string, where: Where, reason: string,
  policy?: string, listed?: Decision): Decision {
  const d: Decision = { action: 'block', group: snap.policy.groupOf(client), where, name, reason, policy }
  if (!listed?.entry || listed.action === 'allow') return d
  return { ...d, name: listed.name, where: listed.where, reason: `${reason}; ${listed.reason}`, entry: listed.entry, list: listed.list, sigma: listed.sigma }
}

export type Route =
  | { readonly ok: true; readonly ip?: string; readonly ips?: readonly string[]; readonly cname?: Decision; readonly cnames: readonly string[] }
  | { readonly ok: false; readonly status: 403 | 502; readonly reason: string; readonly cnames: readonly string[] }

/** The worst decision on the names of a CNAME chain (undefined for no chain). */
function chainDecision(snap: Snapshot, client: string, cnames: readonly string[]): Decision | undefined {
  let worst: Decision | undefined
  for (const c of cnames) {
    const d = snap.policy.decide(client, c, 'cname')
    if (worst === undefined || SEVERITY[d.action] > SEVERITY[worst.action]) worst = d
  }
  return worst
}

/**
 * Where to dial: the address literal, or the name resolved once through `resolve` (the address
 * checked is the address dialled). The answer's CNAME chain is decided (`cname`, the worst one).
 * Every address of the answer must be a permitted destination; `ips` are all of them, in the
 * order they are dialled (interleaveFamilies: IPv6 first, then IPv4, and so on, RFC 8305 §4), and
 * `ip` is the first. Through a parent proxy the parent
 * resolves and dials the name: it is resolved here for its CNAME chain (a custom domain pointed
 * at a tunnel service) and its addresses are checked as they are direct, but a failure to resolve
 * it here (a name only the parent's resolver knows) does not stop the request.
 */
export async function route(ctx: ProxyCtx, snap: Snapshot, sets: ProxySets, client: string, t: Target, name: string): Promise<Route> {
  if (t.ip !== undefined) {
    const bad = ctx.guard.check(t.ip, t.port, sets.allowDest)
    return bad ? { ok: false, status: 403, reason: bad, cnames: [] } : { ok: true, ip: t.ip, ips: [t.ip], cnames: [] }
  }
  let answer: { addresses: string[]; cnames: string[] }
  try {
    answer = await ctx.resolve(name)
  } catch (e) {
    if (sets.parent) return { ok: true, cnames: [] }
    return { ok: false, status: 502, reason: `cannot resolve ${name}: ${(e as Error).message}`, cnames: [] }
  }
  const cnames = answer.cnames
  const cname = chainDecision(snap, client, cnames)
  if (cname && blocks(cname)) return { ok: true, cname, cnames }
  if (!sets.parent && answer.addresses.length === 0) return { ok: false, status: 502, reason: `${name} has no addresses`, cnames }
  const ips = interleaveFamilies(answer.addresses)  // the order they are dialled in (RFC 8305 §4)
  // through a parent too: a name that resolves here to an address the proxy may not reach is
  // refused as it is direct (a public name pointed at 127.0.0.1 or 169.254.169.254 would otherwise
  // reach the parent's loopback or the metadata service, where the address itself is refused)
  for (const ip of ips) {
    const bad = ctx.guard.check(ip, t.port, sets.allowDest, name)
    if (bad) return { ok: false, status: 403, reason: bad, cnames }
  }
  // (through a parent, `ips` are what a reload checks an open tunnel against; none is dialled here, and no `ip`)
  return sets.parent ? { ok: true, ips, cname, cnames } : { ok: true, ip: ips[0], ips, cname, cnames }
}

/**
 * The CNAME chain of a name the proxy does not dial (an SNI that differs from the CONNECT host):
 * an edge routes on the SNI, so a custom domain CNAMEd to a tunnel service is caught here. A name
 * that does not resolve has no chain to decide (it was decided itself); why it did not (SERVFAIL,
 * no answer) is returned for the log. The owner of the name controls its DNS, and the edge routes
 * without it: failing closed here would stop nothing an NXDOMAIN does not let through anyway.
 */
export async function chainOf(ctx: Pick<ProxyCtx, 'resolve'>, snap: Snapshot, client: string, name: string): Promise<{ cname?: Decision; cnames: readonly string[]; error?: string }> {
  try {
    const { cnames } = await ctx.resolve(name)
    return { cname: chainDecision(snap, client, cnames), cnames }
  } catch (e) {
    return { cnames: [], error: (e as Error).message }
  }
}
