import { cidrContains, parseAddr, type Cidr } from '../policy/cidr.js'
import type { ReportEvent } from './fields.js'

/** What the report knows about one name a client asked for. */
export interface NameStat {
  count: number
  first: number
  last: number
  readonly actions: Record<string, number>
  /** "list: entry" hit by this name */
  readonly hits: Set<string>
  /** the last list and entry added to hits (most events repeat them) */
  lastList?: string
  lastEntry?: string
  readonly where: Set<string>
  /** Names decided on instead of this one (CNAME targets, SNIs) or seen behind it (the SNI of an address), first seen first. */
  readonly matched: Set<string>
  /** Decisions whose matched name was beyond the per-name limit. */
  otherMatched: number
}

/**
 * What the report knows about one client: one machine at one address. The machine is the MAC
 * its lines name (client.mac, from the DHCP lease held at the time, or --leases), else the lease
 * hostname; lines of the address that name neither are the bare address's own client. An
 * address handed from one machine to another is thus two clients, each with its own decisions.
 */
export interface ClientStat {
  readonly ip: string
  /** The MAC, else the hostname, else '' (the bare address). */
  readonly machine: string
  /** The hostname (a MAC's latest), MAC and latest PTR name seen on its lines (or from --leases). */
  hostname?: string
  mac?: string
  domain?: string
  /** The times of the lines hostname and domain were taken from. */
  hostnameAt: number
  domainAt: number
  first: number
  last: number
  total: number
  readonly actions: Record<string, number>
  readonly where: Record<string, number>
  /** list → entry → count */
  readonly lists: Map<string, Map<string, number>>
  readonly names: Map<string, NameStat>
  /** Decisions about names beyond the per-client limit. */
  otherNames: number
}

export interface Filters {
  readonly since?: number
  readonly until?: number
  readonly client?: Cidr
  readonly list?: string
  /** Keep only these actions. */
  readonly actions?: ReadonlySet<string>
}

export interface Counts {
  lines: number
  decisions: number
  /** Decisions the filters left out. */
  filtered: number
  skipped: number
  malformed: number
}

/** Code-point order (locale-independent, so reports are the same everywhere). */
export function byText(a: string, b: string): number {
  return Number(a > b) - Number(a < b)
}

/**
 * A copy of a string that is a slice of a read buffer, so that a key kept for the whole
 * report does not keep the whole buffer alive (V8 slices point into their parent).
 */
export function own(s: string): string {
  return JSON.parse(JSON.stringify(s)) as string
}

function bump(r: Record<string, number>, k: string): void {
  r[k] = (r[k] ?? 0) + 1
}

/** How many other lists a --list filter that matched nothing names in its note. */
const MAX_LISTS_SEEN = 20

/** Per-client aggregation of decisions; memory grows with clients and (bounded) names only. */
export class Aggregator {
  /** address → machine → client */
  readonly clients = new Map<string, Map<string, ClientStat>>()
  /** The client added to last: runs of one client's lines skip the lookups. */
  #last: ClientStat | undefined
  readonly counts: Counts = { lines: 0, decisions: 0, filtered: 0, skipped: 0, malformed: 0 }
  /** With a list filter: whether a decision read names it (whatever the other filters say), and the other lists they name (the first MAX_LISTS_SEEN). */
  listMet = false
  readonly listsSeen = new Set<string>()
  readonly #filters: Filters
  readonly #maxNames: number
  readonly #maxMatched: number

  constructor(filters: Filters = {}, maxNames = 1000, maxMatched = 10) {
    this.#filters = filters
    this.#maxNames = maxNames
    this.#maxMatched = maxMatched
  }

  #matched(n: NameStat, m: string): void {
    if (n.matched.has(m)) return
    if (n.matched.size >= this.#maxMatched) n.otherMatched++
    else n.matched.add(own(m))
  }

  #keep(e: ReportEvent): boolean {
    const f = this.#filters
    if (f.since !== undefined && e.time < f.since) return false
    if (f.until !== undefined && e.time > f.until) return false
    if (f.list !== undefined && e.list !== f.list) return false
    if (f.actions && !f.actions.has(e.action)) return false
    if (f.client) {
      const a = parseAddr(e.ip)
      if (!a || !cidrContains(f.client, a)) return false
    }
    return true
  }

  /** The client of a line: its address and machine. */
  #client(e: ReportEvent): ClientStat {
    const machine = e.mac ?? e.hostname ?? ''
    const l = this.#last
    if (l !== undefined && l.ip === e.ip && l.machine === machine) return l
    let byMachine = this.clients.get(e.ip)
    if (!byMachine) {
      byMachine = new Map()
      this.clients.set(own(e.ip), byMachine)
    }
    let c = byMachine.get(machine)
    if (!c) {
      const m = own(machine)
      c = {
        ip: own(e.ip), machine: m, mac: e.mac === undefined ? undefined : m, hostnameAt: -Infinity, domainAt: -Infinity,
        first: e.time, last: e.time, total: 0, actions: {}, where: {}, lists: new Map(), names: new Map(), otherNames: 0,
      }
      byMachine.set(m, c)
    }
    this.#last = c
    return c
  }

  add(e: ReportEvent): void {
    this.counts.decisions++
    const list = this.#filters.list
    if (list !== undefined && e.list !== undefined) {
      if (e.list === list) this.listMet = true
      else if (this.listsSeen.size < MAX_LISTS_SEEN) this.listsSeen.add(own(e.list))
    }
    if (!this.#keep(e)) { this.counts.filtered++; return }
    const c = this.#client(e)
    // a MAC's hostname and an address's PTR name can change: the latest line's (by time, not file order)
    if (e.hostname !== undefined && e.time >= c.hostnameAt) {
      if (e.hostname !== c.hostname) c.hostname = own(e.hostname)
      c.hostnameAt = e.time
    }
    if (e.domain !== undefined && e.time >= c.domainAt) {
      if (e.domain !== c.domain) c.domain = own(e.domain)
      c.domainAt = e.time
    }
    if (e.time < c.first) c.first = e.time
    if (e.time > c.last) c.last = e.time
    c.total++
    bump(c.actions, e.action)
    bump(c.where, e.where)
    if (e.list !== undefined) {
      let entries = c.lists.get(e.list)
      if (!entries) { entries = new Map(); c.lists.set(own(e.list), entries) }
      const entry = e.entry ?? '?'
      const had = entries.get(entry)
      entries.set(had === undefined ? own(entry) : entry, (had ?? 0) + 1)
    }
    let n = c.names.get(e.name)
    if (!n) {
      if (c.names.size >= this.#maxNames) { c.otherNames++; return }
      n = { count: 0, first: e.time, last: e.time, actions: {}, hits: new Set(), where: new Set(), matched: new Set(), otherMatched: 0 }
      c.names.set(own(e.name), n)
    }
    n.count++
    if (e.time < n.first) n.first = e.time
    if (e.time > n.last) n.last = e.time
    bump(n.actions, e.action)
    n.where.add(e.where)
    if (e.matched !== undefined) this.#matched(n, e.matched)
    if (e.sni !== undefined) this.#matched(n, e.sni)
    if (e.list !== undefined && (e.list !== n.lastList || e.entry !== n.lastEntry)) {
      n.hits.add(own(`${e.list}: ${e.entry ?? '?'}`))
      n.lastList = own(e.list)
      n.lastEntry = e.entry === undefined ? undefined : own(e.entry)
    }
  }

  /** Clients, most decisions first (then by address, then machine: the bare address first). */
  sorted(): ClientStat[] {
    return [...this.clients.values()].flatMap(m => [...m.values()])
      .sort((a, b) => b.total - a.total || byText(a.ip, b.ip) || byText(a.machine, b.machine))
  }
}

/** A client's names, most asked first (then by name). */
export function sortedNames(c: ClientStat): [string, NameStat][] {
  return [...c.names].sort((a, b) => b[1].count - a[1].count || byText(a[0], b[0]))
}
