import { parseAddr, parseCidr, cidrContains, type Cidr } from './cidr.js'
import type { GroupAction } from './types.js'

export interface GroupSpec {
  readonly name: string
  readonly clients: readonly string[]
  readonly actions: Readonly<Record<string, GroupAction>>
}

interface Group { readonly name: string; readonly cidrs: readonly Cidr[]; readonly actions: ReadonlyMap<string, GroupAction> }

export const DEFAULT_GROUP = 'default'
const NO_ACTIONS: ReadonlyMap<string, GroupAction> = new Map()
const MEMO_MAX = 65_536

/** Client address → group (first match wins), memoized per address. */
export class Groups {
  readonly #groups: readonly Group[]
  readonly #memo = new Map<string, Group | null>()
  /** The client asked about last, and its group: a decision asks twice, and a run of queries comes from one client. */
  #last: string | undefined
  #lastGroup: Group | null = null

  constructor(specs: readonly GroupSpec[]) {
    this.#groups = specs.map(g => ({
      name: g.name,
      cidrs: g.clients.map(c => {
        const p = parseCidr(c)
        if (!p) throw new TypeError(`group ${g.name}: not a CIDR: ${c}`)
        return p
      }),
      actions: new Map(Object.entries(g.actions)),
    }))
  }

  #find(client: string): Group | null {
    if (this.#groups.length === 0) return null
    if (client === this.#last) return this.#lastGroup
    let g = this.#memo.get(client)
    if (g !== undefined) {
      this.#last = client
      this.#lastGroup = g
      return g
    }
    g = null
    const a = parseAddr(client)
    if (a) {
      for (const cand of this.#groups) {
        if (cand.cidrs.some(c => cidrContains(c, a))) { g = cand; break }
      }
    }
    if (this.#memo.size >= MEMO_MAX) this.#memo.clear()
    this.#memo.set(client, g)
    this.#last = client
    this.#lastGroup = g
    return g
  }

  nameOf(client: string): string {
    return this.#find(client)?.name ?? DEFAULT_GROUP
  }

  /** The group's per-list overrides (empty for the default group). */
  actionsOf(client: string): ReadonlyMap<string, GroupAction> {
    return this.#find(client)?.actions ?? NO_ACTIONS
  }
}
