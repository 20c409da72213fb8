// Who the DNS forwarder answers: dns.allowClients, and the resolvers in front (dns.trustEdnsFrom)
// whose EDNS options name the machines they ask for.
import type { Evidence } from '../observe/types.js'
import { CidrSet } from '../policy/cidr.js'
import type { Config } from '../snapshot-types.js'
import { ednsClient, isLoopbackIp } from './client-options.js'
import { WindowedNotice } from './rate-limit.js'
import type { Query } from './wire.js'

export interface Client {
  readonly ip: string
  /** 0 when not known: a client named by a resolver in front (its Client Subnet option carries no port). */
  readonly port: number
  readonly transport: 'udp' | 'tcp'
  /** Its hardware address, when a trusted resolver in front named it (ECS notation). */
  readonly mac?: string
  /** The resolver in front (dns.trustEdnsFrom) that named this client by its address; absent when the client is the sender. */
  readonly via?: { readonly ip: string; readonly port: number }
}

const MAX_ACCESS_MEMO = 65_536
/** A client outside allowClients is logged at most once per this window, with its count (at most 100 clients named per window, the rest summed). */
export const REFUSED_LOG_WINDOW_MS = 10_000

/** Whether `set` has `ip`, remembered in `memo` (cleared when full). */
function memoHas(memo: Map<string, boolean>, set: CidrSet, ip: string): boolean {
  let ok = memo.get(ip)
  if (ok === undefined) {
    if (memo.size >= MAX_ACCESS_MEMO) memo.clear()
    ok = set.has(ip)
    memo.set(ip, ok)
  }
  return ok
}

/** dns.allowClients and dns.trustEdnsFrom, each address's answer remembered; the refused clients' notice. */
export class ClientAccess {
  private allow = new CidrSet([])
  private readonly allowMemo = new Map<string, boolean>()
  /** dns.trustEdnsFrom; undefined when empty (the common case: no lookup per query). */
  private trust: CidrSet | undefined
  private readonly trustMemo = new Map<string, boolean>()
  /** Clients outside allowClients: logged once per client per window, with the count. */
  readonly refused: WindowedNotice

  constructor(evidence: Evidence) {
    const reason = 'not in dns.allowClients'
    this.refused = new WindowedNotice(REFUSED_LOG_WINDOW_MS,
      (client, n) => evidence.warn('dns client refused', { 'client.ip': client, refused: n, reason }),
      (clients, n) => evidence.warn('dns client refused', { clients, refused: n, reason }))
  }

  /** Take a new dns section's sets (the memos start over). */
  configure(dns: Config['dns']): void {
    this.allow = new CidrSet(dns.allowClients)
    this.allowMemo.clear()
    this.trust = dns.trustEdnsFrom.length > 0 ? new CidrSet(dns.trustEdnsFrom) : undefined
    this.trustMemo.clear()
  }

  allowed(ip: string): boolean {
    return memoHas(this.allowMemo, this.allow, ip)
  }

  /** Whether the sender `ip` is a resolver in front whose EDNS options name its clients (dns.trustEdnsFrom). */
  trusted(ip: string): boolean {
    return this.trust !== undefined && memoHas(this.trustMemo, this.trust, ip)
  }

  /**
   * The client a trusted resolver's query speaks for: the machine its EDNS options name (address
   * and MAC, or the MAC alone), or the resolver itself when they name none.
   */
  named(msg: Buffer, q: Query, from: Client): Client {
    // a sender on this host: a loopback address in its Client Subnet option is a machine here too
    const e = ednsClient(msg, q, isLoopbackIp(from.ip))
    if (e === undefined) return from
    if (e.ip === undefined || e.ip === from.ip) return { ...from, mac: e.mac }
    return { ip: e.ip, port: 0, transport: from.transport, mac: e.mac, via: { ip: from.ip, port: from.port } }
  }
}
