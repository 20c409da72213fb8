import { isIP } from 'node:net'
import { LRUCache } from 'lru-cache'
import { AppError } from '../errors.js'
import { normalizeName } from '../match/normalize.js'
import type { Evidence } from '../observe/types.js'
import type { Config, Snapshot } from '../snapshot-types.js'
import { answerTtl } from './cache.js'
import { scanResponse, type Scan } from './scan.js'
import { UpstreamPool } from './upstreams.js'
import { RCODE, RD } from './wire.js'

const TYPE_A = 1
const TYPE_AAAA = 28

export interface Resolved {
  readonly addresses: string[]
  /** The CNAME (and HTTPS/SVCB) targets met on the way, for the caller to decide. */
  readonly cnames: string[]
}

export interface Resolver {
  resolve(name: string): Promise<Resolved>
  close(): void
}

/** A standard query (RD, EDNS 1232) for `name`/`type`, ID 0 (the pool writes a random one). */
export function buildQuery(name: string, type: number): { buf: Buffer; qEnd: number } {
  const labels = name === '' ? [] : name.split('.')
  const nameLen = labels.reduce((n, l) => n + l.length + 1, 1)
  const qEnd = 12 + nameLen + 4
  const buf = Buffer.alloc(qEnd + 11)
  buf.writeUInt16BE(RD, 2)
  buf.writeUInt16BE(1, 4)
  buf.writeUInt16BE(1, 10)
  let p = 12
  for (const l of labels) {
    buf[p++] = l.length
    p += buf.write(l, p, 'ascii')
  }
  buf[p++] = 0
  buf.writeUInt16BE(type, p)
  buf.writeUInt16BE(1, p + 2)
  buf.writeUInt16BE(41, qEnd + 1)          // OPT: root owner, type 41, UDP size 1232
  buf.writeUInt16BE(1232, qEnd + 3)
  return { buf, qEnd }
}

/** What the resolver keeps of an answer. */
type Answer = Pick<Scan, 'addresses' | 'targets'>

/** Answers kept at most (name and type each), least recently used dropped first. */
const MAX_ANSWERS = 4096

/** How long (ms) an answer may be kept: as long as the DNS cache keeps it (answerTtl), within dns.cache's clamps; 0: not at all. */
function keepFor(scan: Scan, dns: Config['dns']): number {
  const ttl = answerTtl(scan)
  if (ttl < 0) return 0
  return Math.min(Math.max(ttl * 1000, dns.cache.minTtl), dns.cache.maxTtl)
}

/**
 * Resolves the names the HTTP proxy must dial or check, through the configured upstreams (A and
 * AAAA in parallel). NXDOMAIN / NODATA give no addresses; a failure of both lookups rejects with
 * the error. Answers are kept for their TTL (clamped as the DNS cache clamps), so that tunnels to
 * one name do not each ask the upstreams; the caller decides the names every time.
 */
export function createResolver(opts: { getSnapshot: () => Snapshot; evidence: Evidence; clock?: () => number }): Resolver {
  let pool: UpstreamPool | undefined
  let dnsCfg: Config['dns'] | undefined
  const nowMs = opts.clock ?? ((): number => Number(process.hrtime.bigint() / 1_000_000n))
  const answers = new LRUCache<string, { answer: Answer; until: number }>({ max: MAX_ANSWERS })

  function lookup(name: string, type: number): Promise<Answer> {
    const dns = opts.getSnapshot().config.dns
    if (dns !== dnsCfg) {
      if (pool) pool.update(dns.upstreams, dns.timeout, dns.forwardZones, dns.tlsCa)
      else pool = new UpstreamPool(dns.upstreams, opts.evidence, nowMs, {}, dns.forwardZones, dns.tlsCa)
      dnsCfg = dns
      answers.clear()                                // other upstreams or clamps: ask again
    }
    const key = `${type} ${name}`
    const kept = answers.get(key)
    if (kept !== undefined) {
      if (kept.until > nowMs()) return Promise.resolve(kept.answer)
      answers.delete(key)
    }
    const { buf, qEnd } = buildQuery(name, type)
    return new Promise((resolve, reject) => {
      pool!.forward(buf, qEnd, dns.timeout, (err, reply) => {
        const scan = reply && scanResponse(reply, true)
        if (err) reject(err)
        else if (!scan) reject(new AppError('UPSTREAM_FAILED', `malformed answer for ${name}`))
        else if (scan.rcode !== RCODE.NOERROR && scan.rcode !== RCODE.NXDOMAIN) {
          reject(new AppError('UPSTREAM_FAILED', `upstream answered rcode ${scan.rcode} for ${name}`))
        } else {
          const answer = { addresses: scan.addresses, targets: scan.targets }
          const ms = keepFor(scan, dns)
          if (ms > 0) answers.set(key, { answer, until: nowMs() + ms })
          resolve(answer)
        }
      })
    })
  }

  return {
    async resolve(raw: string): Promise<Resolved> {
      if (isIP(raw)) return { addresses: [raw], cnames: [] }
      const norm = normalizeName(raw)
      if (!norm.ok) throw new AppError('NAME_INVALID', `cannot resolve "${raw}": ${norm.reason}`)
      const [a, aaaa] = await Promise.allSettled([lookup(norm.name, TYPE_A), lookup(norm.name, TYPE_AAAA)])
      if (a.status === 'rejected' && aaaa.status === 'rejected') throw a.reason
      const addresses: string[] = []
      const cnames: string[] = []
      for (const r of [a, aaaa]) {
        if (r.status !== 'fulfilled') continue
        addresses.push(...r.value.addresses)
        for (const t of r.value.targets) if (!cnames.includes(t)) cnames.push(t)
      }
      return { addresses, cnames }
    },
    close(): void {
      pool?.close()
      pool = undefined
      dnsCfg = undefined
      answers.clear()
    },
  }
}
