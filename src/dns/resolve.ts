import { isIP } from 'node:net'
import { AppError } from '../errors.js'
import { normalizeName } from '../match/normalize.js'
import type { Evidence } from '../observe/types.js'
import type { Config, Snapshot } from '../snapshot-types.js'
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

/**
 * Resolves the names the HTTP proxy must dial, through the configured upstreams (A and AAAA in
 * parallel). NXDOMAIN / NODATA give no addresses; a failure of both lookups rejects with the error.
 */
export function createResolver(opts: { getSnapshot: () => Snapshot; evidence: Evidence }): Resolver {
  let pool: UpstreamPool | undefined
  let dnsCfg: Config['dns'] | undefined
  const nowMs = (): number => Number(process.hrtime.bigint() / 1_000_000n)

  function lookup(name: string, type: number): Promise<Scan> {
    const dns = opts.getSnapshot().config.dns
    if (dns !== dnsCfg) {
      if (pool) pool.update(dns.upstreams)
      else pool = new UpstreamPool(dns.upstreams, opts.evidence, nowMs)
      dnsCfg = dns
    }
    const { buf, qEnd } = buildQuery(name, type)
    return new Promise((resolve, reject) => {
      pool!.forward(buf, qEnd, dns.timeout, (err, reply) => {
        const scan = reply && scanResponse(reply, true)
        if (err) reject(err)
        else if (!scan) reject(new AppError('UPSTREAM_FAILED', `malformed answer for ${name}`))
        else if (scan.rcode !== RCODE.NOERROR && scan.rcode !== RCODE.NXDOMAIN) {
          reject(new AppError('UPSTREAM_FAILED', `upstream answered rcode ${scan.rcode} for ${name}`))
        } else resolve(scan)
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
    },
  }
}
