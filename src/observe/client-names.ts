import { LRUCache } from 'lru-cache'
import type { Config } from '../snapshot-types.js'
import { LeaseFiles } from './lease-files.js'
import { pickLease, type Lease, type LeaseIndex } from './leases.js'
import { createPtrResolver, type PtrResolver } from './ptr.js'
import type { Evidence } from './types.js'

/** PTR lookups in flight at most; past that, a client's lookup waits for one of its later lines. */
export const MAX_PTR_IN_FLIGHT = 64
/** A failed PTR lookup (timeout, SERVFAIL) is tried again after this, or after `ptrTtl` if shorter. */
export const PTR_RETRY_MS = 30_000

/** What is known about one client address while PTR lookups are on. */
interface Slot {
  /** The PTR name; kept while a refresh is in flight or after a failed one. */
  domain: string | undefined
  /** When to look the PTR up again (clock ms). */
  expires: number
  pending: boolean
  /** The lease generation `leases` was read from, so that a re-read file is seen. */
  gen: number
  leases: readonly Lease[] | undefined
}

/**
 * Names for client addresses, added to the ECS `client` object of every decision line:
 * `client.hostname` and `client.mac` from the DHCP lease valid at the time, `client.domain`
 * from a PTR lookup. Nothing here blocks a line: a PTR lookup starts on a client's first line
 * and its answer is on the lines after it.
 */
export interface ClientNames {
  /** Add what is known about `ip` to `client`: at most one Map lookup; nothing when off. */
  annotate(client: Record<string, unknown>, ip: string): void
  /** Follow the config's `clients` section (at start, and on every reload); resolves once lease files are read. */
  configure(config: Config): Promise<void>
  close(): void
}

export interface ClientNamesOptions {
  /** Where warnings go and what the PTR upstreams count on (called when first needed). */
  readonly evidence: () => Evidence
  /** ms since the epoch: the time a lease must cover. Date.now when absent. */
  readonly clock?: () => number
}

export function createClientNames(opts: ClientNamesOptions): ClientNames {
  const clock = opts.clock ?? Date.now
  // leases
  let index: LeaseIndex | undefined
  let gen = 0
  let files: LeaseFiles | undefined
  let leaseKey = ''
  // PTR
  let cache: LRUCache<string, Slot> | undefined
  let ptr: PtrResolver | undefined
  let ttl = 0
  let inFlight = 0

  function lookup(ip: string, slot: Slot): void {
    if (inFlight >= MAX_PTR_IN_FLIGHT) return
    inFlight++
    slot.pending = true
    const wait = ttl
    ptr!.lookup(ip, (err, name) => {
      inFlight--
      slot.pending = false
      if (err) slot.expires = clock() + Math.min(wait, PTR_RETRY_MS)
      else {
        slot.domain = name
        slot.expires = clock() + wait
      }
    })
  }

  function leasesOf(ip: string): readonly Lease[] | undefined {
    // a dual-stack listener names IPv4 clients as ::ffff:a.b.c.d; lease files do not
    return index!.get(ip) ?? (ip.startsWith('::ffff:') ? index!.get(ip.slice(7)) : undefined)
  }

  return {
    annotate(client, ip) {
      if (cache === undefined && index === undefined) return
      const now = clock()
      let list: readonly Lease[] | undefined
      let domain: string | undefined
      if (cache !== undefined) {
        let slot = cache.get(ip)
        if (slot === undefined) {
          slot = { domain: undefined, expires: 0, pending: false, gen: -1, leases: undefined }
          cache.set(ip, slot)
        }
        if (index !== undefined && slot.gen !== gen) {
          slot.leases = leasesOf(ip)
          slot.gen = gen
        }
        if (!slot.pending && slot.expires <= now) lookup(ip, slot)
        if (index !== undefined) list = slot.leases
        domain = slot.domain
      } else list = leasesOf(ip)
      const lease = pickLease(list, now)
      if (lease !== undefined) {
        if (lease.hostname !== undefined) client.hostname = lease.hostname
        if (lease.mac !== undefined) client.mac = lease.mac
      }
      if (domain !== undefined) client.domain = domain
    },

    async configure(config) {
      const c = config.clients
      if (c.ptr) {
        if (cache?.max !== c.ptrMaxEntries) cache = new LRUCache<string, Slot>({ max: c.ptrMaxEntries })
        ttl = c.ptrTtl
        const dns = config.dns
        if (ptr) ptr.update(dns.upstreams, dns.timeout, dns.forwardZones, dns.tlsCa)
        else ptr = createPtrResolver({ evidence: opts.evidence(), upstreams: dns.upstreams, timeoutMs: dns.timeout, zones: dns.forwardZones, tlsCa: dns.tlsCa })
      } else {
        cache = undefined
        ptr?.close()
        ptr = undefined
      }
      const key = JSON.stringify([c.leases, c.leaseCheck])
      if (key === leaseKey) return
      leaseKey = key
      files?.stop()
      files = undefined
      if (c.leases.length === 0) {
        index = undefined
        gen++
        return
      }
      // the old index serves until the new files are read
      const lf: LeaseFiles = new LeaseFiles({
        files: c.leases, checkMs: c.leaseCheck,
        onIndex: i => { index = i; gen++ },
        warn: (m, f) => opts.evidence().warn(m, f),
        info: (m, f) => opts.evidence().info(m, f),
      })
      files = lf
      await lf.start()
    },

    close() {
      files?.stop()
      files = undefined
      ptr?.close()
      ptr = undefined
    },
  }
}
