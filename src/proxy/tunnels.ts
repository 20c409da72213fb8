import { performance } from 'node:perf_hooks'
import type { Decision, Where } from '../policy/types.js'
import type { Snapshot } from '../snapshot-types.js'
import type { Target } from './address.js'
import type { Peer } from './context.js'
import { blocks, decideTarget, worse } from './decide.js'

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
  /** The decision it was let through on, then the one the last reload made. */
  last: Decision
  /** The snapshot `last` was made with. */
  snap: Snapshot
  /** The new decision blocks (block, sinkhole): write its line and close both sides. */
  close(d: Decision): void
  /** The new decision is an alert the tunnel was not let through on: write its line. */
  alert(d: Decision): void
}

/** What one pass did: the tunnels it looked at, closed and alerted on, and how long it took (ms). */
export interface Redecided { readonly tunnels: number; readonly closed: number; readonly alerted: number; readonly tookMs: number }

/** The worse of the decisions on everything the tunnel was decided on, by `snap`'s policy. */
export function decideAgain(snap: Snapshot, t: OpenTunnel): Decision {
  const ip = t.client.ip
  let d = decideTarget(snap, ip, t.target, 'connect')
  for (const [name, where] of t.names) d = worse(d, snap.policy.decide(ip, name, where))
  if (t.seen) for (const name of t.seen) d = worse(d, snap.policy.decide(ip, name, 'host'))
  return d
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
 * not hold up the event loop. A tunnel whose decision now blocks is closed; one that now alerts
 * (on a match it was not let through on) gets an alert line and stays open.
 */
export class Tunnels {
  private readonly open = new Set<OpenTunnel>()
  /** The pass running: a newer one (a reload during a pass) takes over, with the newest snapshot. */
  private pass = 0

  constructor(private readonly getSnapshot: () => Snapshot, private readonly sliceMs = SLICE_MS,
    private readonly now: () => number = () => performance.now()) {}

  get size(): number { return this.open.size }

  /**
   * Register a tunnel let through; the function returned removes it (call it when the tunnel
   * closes). A reload since its decision (while its name resolved or its hello was read) is
   * applied at once: that reload's pass did not see it.
   */
  add(t: OpenTunnel): () => void {
    this.open.add(t)
    this.apply(t, this.getSnapshot())
    return () => { this.open.delete(t) }
  }

  /**
   * Decide every open tunnel again with the current snapshot. Resolves with what it did, or
   * undefined when a newer pass took over before it was done.
   */
  redecide(): Promise<Redecided | undefined> {
    const pass = ++this.pass
    const started = this.now()
    const all = [...this.open]
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
          if (this.open.has(t)) {
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
    const d = decideAgain(snap, t)
    const before = t.last
    t.last = d
    if (blocks(d)) {
      this.open.delete(t)
      t.close(d)
      return 'closed'
    }
    if (d.action !== 'alert' || sameMatch(d, before)) return undefined
    t.alert(d)
    return 'alerted'
  }
}
