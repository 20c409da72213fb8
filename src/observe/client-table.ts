import { isIP } from 'node:net'
import { LRUCache } from 'lru-cache'
import { foldName } from '../match/normalize.js'
import { limitKey } from '../policy/limit-key.js'
import { OUTCOMES } from '../policy/types.js'
import { isRefusal } from './ecs.js'
import { destinationHost, type DecisionEvent } from './types.js'
import { WHERE_LABELS, whereIndex } from './where-label.js'

/**
 * The actions counted: the outcomes, and `refused` for a block the proxy made by its own rules
 * (event.kind event: no list matched), counted apart from tunnel attempts as `report` counts it.
 */
const ACTIONS: readonly string[] = [...OUTCOMES, 'refused']
/** Where an action's count is in `ClientEntry.counts` (the places' follow, in WHERE_LABELS order). */
const ACTION_AT = new Map<string, number>(ACTIONS.map((a, i) => [a, i]))
const REFUSED_AT = ACTION_AT.get('refused')!

/** The names a decision's line gave its client (ClientNames: DHCP lease, PTR), as they were when it was decided. */
export interface ClientNamesSeen {
  readonly hostname?: unknown
  readonly mac?: unknown
  readonly domain?: unknown
}

/** What the live view keeps about one name a client asked for. */
export interface NameEntry {
  count: number
  /** Names decided on instead of it (a CNAME target, an SNI) or seen behind it (the SNI of an address). */
  readonly matched: Set<string>
  /** Decisions whose matched name was past the client's budget of matched names. */
  otherMatched: number
}

/**
 * What the live view keeps about one client (bounded): one machine at one address, as in
 * `report`. The machine is the MAC the client's lines carried when the decision was made (the
 * lease held then), else the lease hostname; decisions with neither are the bare address's.
 */
export interface ClientEntry {
  readonly ip: string
  /** The MAC, else the hostname, else '' (the bare address). */
  readonly machine: string
  hostname: string | undefined
  readonly mac: string | undefined
  /** The latest PTR name seen with its decisions. */
  domain: string | undefined
  group: string
  firstSeen: number
  lastSeen: number
  /** Decisions by action (block, sinkhole, alert, allow, pass), then by where the name was seen (WHERE_LABELS). */
  readonly counts: Float64Array
  /** The name asked → its count and matched names; at most `maxNames` names, the rest counted in `otherNames`. */
  readonly names: Map<string, NameEntry>
  otherNames: number
  /** Matched names kept over all its names (at most `maxNames`). */
  matchedKept: number
  /** list → count */
  readonly lists: Map<string, number>
}

/** The JSON shape of `/api/clients`. */
export interface ClientView {
  readonly ip: string
  readonly hostname?: string
  readonly mac?: string
  readonly domain?: string
  readonly group: string
  readonly first_seen: string
  readonly last_seen: string
  readonly actions: Record<string, number>
  readonly names: { name: string; count: number; matched: string[]; other_matched: number }[]
  readonly other_names: number
  readonly lists: Record<string, number>
  readonly where: Record<string, number>
}

/** One client of `ClientTable.rows()`: its address, and its view as JSON, built when asked. */
export interface ClientRow {
  readonly ip: string
  /** `JSON.stringify` of its ClientView as it is now (the text is kept until the client's next decision). */
  json(): string
}

export interface ClientTable {
  /** One decision; `names` are the client's names on its line (none when no lease or PTR name is known). */
  record(ev: DecisionEvent, names?: ClientNamesSeen): void
  /** The entry of an address and machine ('' or absent: the bare address). */
  get(ip: string, machine?: string): ClientEntry | undefined
  /** Every client, most recently seen first. */
  list(): ClientView[]
  /**
   * Every client, most recently seen first, each view built only when its `json()` is called:
   * `/api/clients` reads as far as it needs (1000 rows by default) and builds the rows it sends.
   */
  rows(): Iterable<ClientRow>
  readonly size: number
}

export interface ClientTableOptions {
  readonly maxClients?: number
  readonly maxNames?: number
  /** Rows one IPv6 /64 may hold (a host there can give itself any number of addresses). */
  readonly maxPerPrefix?: number
  readonly clock?: () => number
}

/** The /64 an IPv6 client is in (a host owns a whole one, as limits.ipv6Prefix says); undefined for IPv4 and link-local. */
const V6_64 = { ipv4Prefix: 32, ipv6Prefix: 64 }
function prefixOf(ip: string): string | undefined {
  if (!ip.includes(':')) return undefined
  const k = limitKey(ip, V6_64)
  return k.includes('/') ? k : undefined
}

/** The non-zero counts of `keys`, read from `counts` from `at` on. */
function nonZero(keys: readonly string[], counts: Float64Array, at: number): Record<string, number> {
  const out: Record<string, number> = {}
  for (let i = 0; i < keys.length; i++) if (counts[at + i]! > 0) out[keys[i]!] = counts[at + i]!
  return out
}

const str = (v: unknown): string | undefined => typeof v === 'string' && v !== '' ? v : undefined

/** The view of an entry, as `/api/clients` shows it. */
function viewOf(c: ClientEntry): ClientView {
  const names: { hostname?: string; mac?: string; domain?: string } = {}
  if (c.hostname !== undefined) names.hostname = c.hostname
  if (c.mac !== undefined) names.mac = c.mac
  if (c.domain !== undefined) names.domain = c.domain
  return {
    ip: c.ip, ...names, group: c.group,
    first_seen: new Date(c.firstSeen).toISOString(), last_seen: new Date(c.lastSeen).toISOString(),
    actions: nonZero(ACTIONS, c.counts, 0),
    names: [...c.names].map(([name, n]) => ({ name, count: n.count, matched: [...n.matched].sort(), other_matched: n.otherMatched }))
      .sort((a, b) => b.count - a.count || (a.name < b.name ? -1 : 1)),
    other_names: c.otherNames,
    lists: Object.fromEntries(c.lists), where: nonZero(WHERE_LABELS, c.counts, ACTIONS.length),
  }
}

/**
 * A table's entry, and a row of `rows()`: its JSON is kept once built, until its next decision
 * (a table read again and again, most of whose clients are quiet, is serialized once).
 */
class Entry implements ClientEntry, ClientRow {
  hostname: string | undefined
  domain: string | undefined = undefined
  readonly counts = new Float64Array(ACTIONS.length + WHERE_LABELS.length)
  readonly names = new Map<string, NameEntry>()
  otherNames = 0
  matchedKept = 0
  readonly lists = new Map<string, number>()
  /** The JSON of its view, built since its last decision (undefined: none). */
  text: string | undefined = undefined
  constructor(readonly ip: string, readonly machine: string, hostname: string | undefined, readonly mac: string | undefined,
    public group: string, public firstSeen: number, public lastSeen: number) {
    this.hostname = hostname
  }

  json(): string {
    return this.text ??= JSON.stringify(viewOf(this))
  }
}

/** The table's key: the address alone, or with its machine (an address has no space in it). */
const keyOf = (ip: string, machine: string) => machine === '' ? ip : `${ip} ${machine}`

/**
 * The name a decision was asked about, as `report` reads it from the line: the DNS question,
 * else the CONNECT host, the SNI, the URL or Host domain; case and a trailing dot folded.
 */
function askedOf(ev: DecisionEvent): string {
  return foldName(ev.dns?.name ?? destinationHost(ev.destination) ?? ev.sni ?? ev.urlDomain ?? ev.decision.name)
}

/**
 * A live per-client table of decided events, least recently seen evicted first. An IPv6 /64 holds
 * at most `maxPerPrefix` rows, its oldest row making room for its newest: one host rotating
 * through its /64's addresses (privacy addresses, or thousands added by hand) would otherwise
 * push every other client out of the table.
 */
export function createClientTable(opts: ClientTableOptions = {}): ClientTable {
  const maxNames = opts.maxNames ?? 50
  const maxPerPrefix = opts.maxPerPrefix ?? 64
  const clock = opts.clock ?? Date.now
  /** The rows of each IPv6 /64, oldest first. */
  const byPrefix = new Map<string, Set<string>>()
  const table = new LRUCache<string, Entry>({
    max: opts.maxClients ?? 10_000,
    dispose: (c, key) => {
      const p = prefixOf(c.ip)
      const rows = p === undefined ? undefined : byPrefix.get(p)
      if (rows === undefined) return
      rows.delete(key)
      if (rows.size === 0) byPrefix.delete(p!)
    },
  })
  // the entry recorded last: a run of events from one client (the common case) skips the LRU
  // lookup and hashing the client's address string anew. It is always the most recent entry
  // (nothing else touches recency), so it is never the one evicted.
  let last: Entry | undefined

  function matched(c: ClientEntry, n: NameEntry, m: string): void {
    if (n.matched.has(m)) return
    if (c.matchedKept >= maxNames) n.otherMatched++
    else {
      n.matched.add(m)
      c.matchedKept++
    }
  }

  return {
    record(ev, seen) {
      const now = clock()
      const d = ev.decision
      const ip = ev.client.ip
      const mac = str(seen?.mac)
      const hostname = str(seen?.hostname)
      const machine = mac ?? hostname ?? ''
      let c = last !== undefined && last.ip === ip && last.machine === machine ? last : table.get(keyOf(ip, machine))
      if (!c) {
        c = new Entry(ip, machine, hostname, mac, d.group, now, now)
        const key = keyOf(ip, machine)
        const p = prefixOf(ip)
        if (p !== undefined) {
          let rows = byPrefix.get(p)
          if (rows === undefined) byPrefix.set(p, rows = new Set())
          if (rows.size >= maxPerPrefix) table.delete(rows.values().next().value!)   // its oldest row (dispose takes it out of rows)
          rows.add(key)
        }
        table.set(key, c)
      }
      last = c
      c.text = undefined
      if (hostname !== undefined) c.hostname = hostname
      const domain = str(seen?.domain)
      if (domain !== undefined) c.domain = domain
      c.lastSeen = now
      c.group = d.group
      c.counts[isRefusal(d) ? REFUSED_AT : ACTION_AT.get(d.action)!]! += 1
      c.counts[ACTIONS.length + whereIndex(ev.message, d.where)]! += 1
      if (d.list !== undefined) c.lists.set(d.list, (c.lists.get(d.list) ?? 0) + 1)
      const asked = askedOf(ev)
      let n = c.names.get(asked)
      if (n === undefined) {
        if (c.names.size >= maxNames) { c.otherNames++; return }
        n = { count: 0, matched: new Set(), otherMatched: 0 }
        c.names.set(asked, n)
      }
      n.count++
      // the name decided on when it is not the one asked, and the SNI behind an address (as report shows them)
      const decided = foldName(d.name)
      if (decided !== asked) matched(c, n, decided)
      if (ev.sni !== undefined && isIP(asked) !== 0) {
        const sni = foldName(ev.sni)
        if (sni !== asked && sni !== decided) matched(c, n, sni)
      }
    },
    get: (ip, machine = '') => table.peek(keyOf(ip, machine)),
    list: () => Array.from(table.values(), viewOf),
    rows: () => table.values(),
    get size() { return table.size },
  }
}
