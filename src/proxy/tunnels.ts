import { performance } from 'node:perf_hooks'
import type { CidrSet } from '../policy/cidr.js'
import type { Decision, Where } from '../policy/types.js'
import { LiveSet } from '../live-set.js'
import type { Snapshot } from '../snapshot-types.js'
import type { Target } from './address.js'
import { setsOf, type Peer } from './context.js'
import { blocks, clientRefusal, decideTarget, denial, portRefusal, worse } from './decide.js'

/** Time one slice of a re-decision pass may take before it yields to the event loop (ms). */
export const SLICE_MS = 5

/** One open CONNECT tunnel: what it was let through on, and how to act on a new decision. */
export interface OpenTunnel {
  readonly client: Peer
  /** The CONNECT target: its host is decided again (an address literal passes, as at the CONNECT). */
  readonly target: Target
  /** The other names decided when it opened: the SNI (`sni`), the CNAME chains (`cname`). */
  readonly names: readonly (readonly [string, Where])[]
  /**
   * A plain-HTTP tunnel's names (the CONNECT host's and those its requests named so far, decided
   * as `host`): the tunnel's own set, which grows as its requests come.
   */
  readonly seen?: ReadonlySet<string>
  /**
   * The addresses checked against proxy.allowDestinations when it opened (all those of the name,
   * as a new CONNECT checks them; not resolved again); none for a name a parent proxy resolves.
   */
  readonly ips?: readonly string[]
  /** The decision it was let through on, then the one the last reload made. */
  last: Decision
  /** The snapshot `last` was made with. */
  snap: Snapshot
  /**
   * The new decision blocks (block, sinkhole, or a refusal by the proxy's own settings): write its
   * line and close both sides. `error`: the refusal's `error.message`, when a new CONNECT's line has one.
   */
  close(d: Decision, error?: string): void
  /** The new decision is an alert the tunnel was not let through on: write its line. */
  alert(d: Decision): void
  /** Tunnels' own: its slot among the open ones (set by `add`). */
  slot?: number
}

/** What one pass did: the tunnels it looked at, closed and alerted on, and how long it took (ms). */
export interface Redecided { readonly tunnels: number; readonly closed: number; readonly alerted: number; readonly tookMs: number }

/** Why an address may not be dialled (DestinationGuard.check), or undefined. */
export type CheckDestination = (ip: string, port: number, allow: CidrSet, name?: string) => string | undefined

/** A tunnel's new decision; `error`: the `error.message` its line gets (a destination refused, as at a new CONNECT). */
export interface Redecision { readonly decision: Decision; readonly error?: string }

/**
 * The tunnel decided again with `snap`: the worse of the decisions on everything it was decided
 * on, by the policy (lists, and the group the config puts its client in); when no list blocks, the
 * proxy's own settings as a new CONNECT meets them: the client in proxy.allowClients, the port in
 * proxy.connectPorts, each address in proxy.allowDestinations (`check`; not checked without it).
 * A refusal keeps a list's alert match, as at a new CONNECT (denial).
 */
export function decideAgain(snap: Snapshot, t: OpenTunnel, check?: CheckDestination): Redecision {
  const ip = t.client.ip
  const first = decideTarget(snap, ip, t.target, 'connect')
  let d = first
  for (const [name, where] of t.names) d = worse(d, snap.policy.decide(ip, name, where))
  if (t.seen) for (const name of t.seen) d = worse(d, snap.policy.decide(ip, name, 'host'))
  // a list's block says more than a setting's
  if (blocks(d)) return { decision: d }
  const listed = d
  const refused = (name: string, why: string, policy: string, error?: string): Redecision =>
    ({ decision: denial(snap, ip, name, 'connect', why, policy, listed), error })
  const sets = setsOf(snap)
  if (!sets.allowClients.has(ip)) return refused(first.name, clientRefusal(ip), 'proxy.allowClients')
  const { port } = t.target
  const ports = snap.config.proxy.connectPorts
  if (!ports.includes(port)) return refused(t.target.ip ?? t.target.host, portRefusal(port, ports), 'proxy.connectPorts')
  if (check && t.ips) {
    // a name's addresses are checked under its name, an address literal's alone (as route does)
    const name = t.target.ip === undefined ? first.name : undefined
    for (const a of t.ips) {
      const bad = check(a, port, sets.allowDest, name)
      if (bad !== undefined) return refused(first.name, bad, 'proxy.allowDestinations', bad)
    }
  }
  return { decision: d }
}

/** Whether two decisions are the same match (action, name, list and entry): an alert said once is not said again. */
function sameMatch(a: Decision, b: Decision): boolean {
  return a.action === b.action && a.name === b.name && a.list === b.list && a.entry?.pattern === b.entry?.pattern
}

/**
 * The open CONNECT tunnels of a proxy, each with what it was decided on, so that a reload's new
 * snapshot applies to them too (a tunnel lives as long as its client likes: an ngrok agent's
 * session never goes idle). Added when a tunnel is let through, removed when it closes; looked at
 * only at a reload (`redecide`), a slice of SLICE_MS at a time, so that ten thousand tunnels do
 * not hold up the event loop. A tunnel whose decision now blocks (a list, or a setting that
 * would refuse it as a new CONNECT: decideAgain) is closed; one that now alerts (on a match it
 * was not let through on) gets an alert line and stays open.
 */
export class Tunnels {
  private readonly open = new LiveSet<OpenTunnel>()
  /** The pass running: a newer one (a reload during a pass) takes over, with the newest snapshot. */
  private pass = 0

  private readonly sliceMs: number
  private readonly now: () => number
  private readonly check: CheckDestination | undefined

  /** `check`: the destination rule (the proxy's DestinationGuard); `sliceMs` and `now` for tests. */
  constructor(private readonly getSnapshot: () => Snapshot,
    o: { check?: CheckDestination; sliceMs?: number; now?: () => number } = {}) {
    this.check = o.check
    this.sliceMs = o.sliceMs ?? SLICE_MS
    this.now = o.now ?? (() => performance.now())
  }

  get size(): number { return this.open.size }

  /**
   * Register a tunnel let through; the function returned removes it (call it when the tunnel
   * closes). A reload since its decision (while its name resolved or its hello was read) is
   * applied at once: that reload's pass did not see it.
   */
  add(t: OpenTunnel): () => void {
    const slot = t.slot = this.open.add(t)
    this.apply(t, this.getSnapshot())
    return () => { this.open.remove(slot, t) }
  }

  /**
   * Decide every open tunnel again with the current snapshot. Resolves with what it did, or
   * undefined when a newer pass took over before it was done.
   */
  redecide(): Promise<Redecided | undefined> {
    const pass = ++this.pass
    const started = this.now()
    const all = this.open.values()
    let closed = 0
    let alerted = 0
    let i = 0
    return new Promise(resolve => {
      const slice = (): void => {
        if (pass !== this.pass) return resolve(undefined)
        const snap = this.getSnapshot()
        const until = this.now() + this.sliceMs
        while (i < all.length) {
          const t = all[i++]!
          if (this.open.holds(t.slot!, t)) {
            const did = this.apply(t, snap)
            if (did === 'closed') closed++
            else if (did === 'alerted') alerted++
          }
          if (i < all.length && this.now() >= until) return void setImmediate(slice)
        }
        resolve({ tunnels: all.length, closed, alerted, tookMs: this.now() - started })
      }
      slice()
    })
  }

  /** Decide `t` with `snap` (once per snapshot) and act on it. */
  private apply(t: OpenTunnel, snap: Snapshot): 'closed' | 'alerted' | undefined {
    if (t.snap === snap) return undefined
    t.snap = snap
    const { decision: d, error } = decideAgain(snap, t, this.check)
    const before = t.last
    t.last = d
    if (blocks(d)) {
      this.open.remove(t.slot!, t)
      t.close(d, error)
      return 'closed'
    }
    if (d.action !== 'alert' || sameMatch(d, before)) return undefined
    t.alert(d)
    return 'alerted'
  }
}
