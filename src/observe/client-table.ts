import { LRUCache } from 'lru-cache'
import type { DecisionEvent } from './types.js'

/** What the live view keeps about one client (bounded). */
export interface ClientEntry {
  readonly ip: string
  group: string
  firstSeen: number
  lastSeen: number
  readonly actions: Record<string, number>
  /** name → count, at most `maxNames` names; the rest are counted in `otherNames`. */
  readonly names: Map<string, number>
  otherNames: number
  /** list → count */
  readonly lists: Record<string, number>
  /** where the names were seen (qname, cname, connect, sni, host, url) → count */
  readonly where: Record<string, number>
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

function bump(r: Record<string, number>, k: string): void {
  r[k] = (r[k] ?? 0) + 1
}

/** A live per-client table of decided events, least recently seen evicted first. */
export function createClientTable(opts: ClientTableOptions = {}): ClientTable {
  const maxNames = opts.maxNames ?? 50
  const clock = opts.clock ?? Date.now
  const table = new LRUCache<string, ClientEntry>({ max: opts.maxClients ?? 10_000 })

  return {
    record(ev) {
      const now = clock()
      const d = ev.decision
      let c = table.get(ev.client.ip)
      if (!c) {
        c = {
          ip: ev.client.ip, group: d.group, firstSeen: now, lastSeen: now,
          actions: {}, names: new Map(), otherNames: 0, lists: {}, where: {},
        }
        table.set(ev.client.ip, c)
      }
      c.lastSeen = now
      c.group = d.group
      bump(c.actions, d.action)
      bump(c.where, d.where)
      if (d.list !== undefined) bump(c.lists, d.list)
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
          actions: { ...c.actions },
          names: [...c.names].map(([name, count]) => ({ name, count })).sort((a, b) => b.count - a.count || (a.name < b.name ? -1 : 1)),
          other_names: c.otherNames,
          lists: { ...c.lists }, where: { ...c.where },
        })
      }
      return out
    },
    get size() { return table.size },
  }
}
