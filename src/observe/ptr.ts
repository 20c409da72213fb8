import dnsPacket from 'dns-packet'
import { buildQuery } from '../dns/resolve.js'
import { UpstreamPool, type ForwardZones } from '../dns/upstreams.js'
import { normalizeName } from '../match/normalize.js'
import { parseAddr } from '../policy/cidr.js'
import type { Evidence } from './types.js'

const TYPE_PTR = 12

/** The reverse-lookup name of an address: 10.0.0.5 → 5.0.0.10.in-addr.arpa; IPv6 by nibbles under ip6.arpa. */
export function arpaName(ip: string): string | undefined {
  const a = parseAddr(ip)
  if (!a) return undefined
  const w = a.words
  if (a.family === 4) return `${w[0]! & 255}.${(w[0]! >>> 8) & 255}.${(w[0]! >>> 16) & 255}.${w[0]! >>> 24}.in-addr.arpa`
  const nibbles: string[] = []
  for (let i = 3; i >= 0; i--) {
    for (let s = 0; s < 32; s += 4) nibbles.push(((w[i]! >>> s) & 15).toString(16))
  }
  return `${nibbles.join('.')}.ip6.arpa`
}

/**
 * The name a PTR reply gives: the first PTR record's target, normalized; undefined for a
 * negative answer (NXDOMAIN, no PTR, a target that is not a host name). Throws on a reply that
 * is not an answer (SERVFAIL, REFUSED, …) or cannot be decoded.
 */
export function ptrFromReply(reply: Buffer): string | undefined {
  const msg = dnsPacket.decode(reply)
  const rcode = (msg as { rcode?: string }).rcode
  if (rcode === 'NXDOMAIN') return undefined
  if (rcode !== 'NOERROR') throw new Error(`rcode ${rcode}`)
  for (const rr of msg.answers!) {           // decode always sets answers ([] when none)
    if (rr.type !== 'PTR') continue
    const n = normalizeName(rr.data)
    return n.ok && n.name !== '' ? n.name : undefined
  }
  return undefined
}

/** Says how a lookup ended: an error, or the name (undefined: none). */
export type PtrCallback = (err: Error | undefined, name?: string) => void

export interface PtrResolver {
  /** Ask the upstreams for the PTR of `ip`; `cb` is called once, within the DNS timeout. */
  lookup(ip: string, cb: PtrCallback): void
  /** Follow a config change (upstreams and forward zones, timeout, the private CA of tls:// upstreams). */
  update(upstreams: readonly string[], timeoutMs: number, zones?: ForwardZones, tlsCa?: string): void
  close(): void
}

/**
 * PTR lookups through tunnelguard's own upstreams (an UpstreamPool of its own, same failover):
 * a forward zone for the reverse names (`10.in-addr.arpa`) takes them to the servers that hold them.
 */
export function createPtrResolver(opts: { evidence: Evidence; upstreams: readonly string[]; timeoutMs: number; zones?: ForwardZones; tlsCa?: string }): PtrResolver {
  const nowMs = (): number => Number(process.hrtime.bigint() / 1_000_000n)
  const pool = new UpstreamPool(opts.upstreams, opts.evidence, nowMs, {}, opts.zones, opts.tlsCa)
  let timeoutMs = opts.timeoutMs
  return {
    lookup(ip, cb) {
      const name = arpaName(ip)
      if (name === undefined) { cb(undefined, undefined); return }
      const { buf, qEnd } = buildQuery(name, TYPE_PTR)
      pool.forward(buf, qEnd, timeoutMs, (err, reply) => {
        if (err) { cb(err); return }
        let found: string | undefined
        try {
          found = ptrFromReply(reply!)
        } catch (e) {
          cb(e as Error)
          return
        }
        cb(undefined, found)
      })
    },
    update(upstreams, t, zones, tlsCa) {
      pool.update(upstreams, 0, zones, tlsCa)
      timeoutMs = t
    },
    close: () => pool.close(),
  }
}
