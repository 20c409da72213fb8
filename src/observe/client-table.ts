import { LRUCache } from 'lru-cache'
import { OUTCOMES as ACTIONS, WHERES } from '../policy/types.js'
import type { DecisionEvent } from './types.js'

/** Where an action's count is in `ClientEntry.counts`, and a place's (after the actions). */
const ACTION_AT = new Map<string, number>(ACTIONS.map((a, i) => [a, i]))
const WHERE_AT = new Map<string, number>(WHERES.map((w, i) => [w, ACTIONS.length + i]))

/** What the live view keeps about one client (bounded). */
export interface ClientEntry {
  readonly ip: string
  group: string
  firstSeen: number
  lastSeen: number
  /** Decisions by action (block, sinkhole, alert, allow, pass), then by where the name was seen (qname, cname, connect, sni, host, url). */
  readonly counts: Float64Array
  /** name → count, at most `maxNames` names; the rest are counted in `otherNames`. */
  readonly names: Map<string, number>
  otherNames: number
  /** list → count */
  readonly lists: Map<string, number>
}

/** The JSON shape of `/api/clients`. */
export interface ClientView {
  readonly ip: string
  readonly group: string
  readonly first_seen: string
  readonly last_seen: string
  readonly actions: Record<string, number>
  readonly names: { name: string; count: number }[]
  readonly other_names: number
  readonly lists: Record<string, number>
  readonly where: Record<string, number>
}

export interface ClientTable {
  record(ev: DecisionEvent): void
  get(ip: string): ClientEntry | undefined
  /** Every client, most recently seen first. */
  list(): ClientView[]
  readonly size: number
}

export interface ClientTableOptions {
  readonly maxClients?: number
  readonly maxNames?: number
  readonly clock?: () => number
}

/** The non-zero counts of `keys`, read from `counts` from `at` on. */
function nonZero(keys: readonly string[], counts: Float64Array, at: number): Record<string, number> {
  const out: Record<string, number> = {}
  for (let i = 0; i < keys.length; i++) if (counts[at + i]! > 0) out[keys[i]!] = counts[at + i]!
  return out
}

/** A live per-client table of decided events, least recently seen evicted first. */
export function createClientTable(opts: ClientTableOptions = {}): ClientTable {
  const maxNames = opts.maxNames ?? 50
  const clock = opts.clock ?? Date.now
  const table = new LRUCache<string, ClientEntry>({ max: opts.maxClients ?? 10_000 })
  // the entry recorded last: a run of events from one client (the common case) skips the LRU
  // lookup and hashing the client's address string anew. It is always the most recent entry
  // (nothing else touches recency), so it is never the one evicted.
  let last: ClientEntry | undefined

  return {
    record(ev) {
      const now = clock()
      const d = ev.decision
      const ip = ev.client.ip
      let c = last !== undefined && last.ip === ip ? last : table.get(ip)
      if (!c) {
        c = {
          ip, group: d.group, firstSeen: now, lastSeen: now,
          counts: new Float64Array(ACTIONS.length + WHERES.length), names: new Map(), otherNames: 0, lists: new Map(),
        }
        table.set(ip, c)
      }
      last = c
      c.lastSeen = now
      c.group = d.group
      c.counts[ACTION_AT.get(d.action)!]! += 1
      c.counts[WHERE_AT.get(d.where)!]! += 1
      if (d.list !== undefined) c.lists.set(d.list, (c.lists.get(d.list) ?? 0) + 1)
      const n = c.names.get(d.name)
      if (n !== undefined) c.names.set(d.name, n + 1)
      else if (c.names.size < maxNames) c.names.set(d.name, 1)
      else c.otherNames++
    },
    get: ip => table.peek(ip),
    list() {
      const out: ClientView[] = []
      for (const c of table.values()) {
        out.push({
          ip: c.ip, group: c.group,
          first_seen: new Date(c.firstSeen).toISOString(), last_seen: new Date(c.lastSeen).toISOString(),
          actions: nonZero(ACTIONS, c.counts, 0),
          names: [...c.names].map(([name, count]) => ({ name, count })).sort((a, b) => b.count - a.count || (a.name < b.name ? -1 : 1)),
          other_names: c.otherNames,
          lists: Object.fromEntries(c.lists), where: nonZero(WHERES, c.counts, ACTIONS.length),
        })
      }
      return out
    },
    get size() { return table.size },
  }
}
