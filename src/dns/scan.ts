import { formatV6 } from '../policy/cidr.js'
import { dropClientOptions, isClientOption } from './client-options.js'
import { HEADER, TC, TYPE_OPT, readName, skipName } from './wire.js'

const TYPE_A = 1
const TYPE_CNAME = 5
const TYPE_SOA = 6
const TYPE_SRV = 33
const TYPE_DNAME = 39
const TYPE_AAAA = 28
const TYPE_SVCB = 64
const TYPE_HTTPS = 65

/** The largest TTL there is: one with the top bit set is read as 0 (RFC 2181 §8), never as 68 years. */
export const MAX_TTL = 0x7fffffff

/** What the forwarder learns from walking an upstream reply once, without re-encoding it. */
export interface Scan {
  /** The response code, with its upper 8 bits from the OPT record when there is one (RFC 6891 §6.1.3: BADVERS is 16). */
  readonly rcode: number
  readonly truncated: boolean
  readonly answers: number
  /**
   * The names an answer leads to, in the answer section, in order (lowercase): CNAME and DNAME
   * targets, HTTPS/SVCB target names, SRV targets (where the client connects).
   */
  readonly targets: string[]
  /** Offsets of the TTL field of every record except OPT (for the cache's countdown). */
  readonly ttlOffsets: number[]
  /** The smallest TTL of those records (seconds), or -1 when there are none. */
  readonly minTtl: number
  /** Negative-caching TTL from an SOA in the authority section: min(SOA TTL, MINIMUM), or -1. */
  readonly negativeTtl: number
  /** A and AAAA addresses in the answer section, when asked for. */
  readonly addresses: string[]
  /** The OPT record's RDATA (start and end; -1 without one), and whether it holds a client's option (isClientOption). */
  readonly optRdata: number
  readonly optEnd: number
  readonly clientOptions: boolean
}

/** IPv6 text (RFC 5952) of the 16 bytes at `off`. */
function ipv6(buf: Buffer, off: number): string {
  const g: number[] = []
  for (let i = 0; i < 16; i += 2) g.push(buf.readUInt16BE(off + i))
  return formatV6(g)
}

/** Where the target name of a record of `type` starts, or -1 for a type without one. */
function targetAt(type: number, rdata: number): number {
  switch (type) {
    case TYPE_CNAME: case TYPE_DNAME: return rdata
    case TYPE_SVCB: case TYPE_HTTPS: return rdata + 2      // after SvcPriority
    case TYPE_SRV: return rdata + 6                         // after priority, weight and port
    default: return -1
  }
}

/** Walk every record of a reply. Undefined when the reply is malformed (it is then not served). */
export function scanResponse(buf: Buffer, wantAddresses = false): Scan | undefined {
  if (buf.length < HEADER) return undefined
  const flags = buf.readUInt16BE(2)
  const qd = buf.readUInt16BE(4)
  const an = buf.readUInt16BE(6)
  const ns = buf.readUInt16BE(8)
  const ar = buf.readUInt16BE(10)
  let pos = HEADER
  for (let i = 0; i < qd; i++) {
    pos = skipName(buf, pos)
    if (pos < 0 || pos + 4 > buf.length) return undefined
    pos += 4
  }
  const targets: string[] = []
  const ttlOffsets: number[] = []
  const addresses: string[] = []
  let minTtl = -1
  let negativeTtl = -1
  let optRdata = -1
  let optEnd = -1
  let clientOptions = false
  const total = an + ns + ar
  for (let i = 0; i < total; i++) {
    const p = skipName(buf, pos)
    if (p < 0 || p + 10 > buf.length) return undefined
    const type = buf.readUInt16BE(p)
    const raw = buf.readUInt32BE(p + 4)
    const ttl = raw > MAX_TTL ? 0 : raw
    const rdata = p + 10
    const end = rdata + buf.readUInt16BE(p + 8)
    if (end > buf.length) return undefined
    if (type !== TYPE_OPT) {
      ttlOffsets.push(p + 4)
      if (minTtl < 0 || ttl < minTtl) minTtl = ttl
    } else {
      // one OPT, owned by the root, in the additional section, its options whole (RFC 6891 §6.1.1):
      // else the reply is malformed (a client such as dig refuses it; it is not served or cached)
      if (i < an + ns || optRdata >= 0 || p !== pos + 1) return undefined
      for (let o = rdata; o < end; o += 4 + buf.readUInt16BE(o + 2)) {
        if (o + 4 > end || o + 4 + buf.readUInt16BE(o + 2) > end) return undefined
        if (isClientOption(buf.readUInt16BE(o))) clientOptions = true
      }
      optRdata = rdata
      optEnd = end
    }
    if (i < an) {
      const at = targetAt(type, rdata)
      if (at >= 0) {
        const t = readName(buf, at)
        if (!t || t.end > end) return undefined
        if (t.name !== '') targets.push(t.name)           // an SVCB target "." means the owner itself, an SRV's "no service"
      } else if (wantAddresses && type === TYPE_A && end - rdata === 4) {
        addresses.push(`${buf[rdata]}.${buf[rdata + 1]}.${buf[rdata + 2]}.${buf[rdata + 3]}`)
      } else if (wantAddresses && type === TYPE_AAAA && end - rdata === 16) {
        addresses.push(ipv6(buf, rdata))
      }
    } else if (i < an + ns && type === TYPE_SOA) {
      const m = skipName(buf, rdata)
      const r = m < 0 ? -1 : skipName(buf, m)
      if (r < 0 || r + 20 > end) return undefined
      const minimum = buf.readUInt32BE(r + 16)
      negativeTtl = Math.min(ttl, minimum > MAX_TTL ? 0 : minimum)
    }
    pos = end
  }
  return {
    // the OPT's TTL field starts with the extended rcode: 6 octets before its RDLENGTH's end
    rcode: optRdata < 0 ? flags & 0xf : (buf[optRdata - 6]! << 4) | (flags & 0xf), truncated: (flags & TC) !== 0, answers: an,
    targets, ttlOffsets, minTtl, negativeTtl, addresses, optRdata, optEnd, clientOptions,
  }
}

/**
 * A reply without the EDNS options that belong to one client (isClientOption: a COOKIE, NSID,
 * Client Subnet or MAC option the query did not carry upstream, withoutClientOptions): an
 * upstream that adds them would hand them, through the cache, to every client, and a client that
 * checks cookies (RFC 7873 §5.3) would take the answer for a spoof. `reply` itself when it has none;
 * else a copy, and the scan's TTL offsets past the OPT record moved to match.
 */
export function withoutReplyClientOptions(reply: Buffer, scan: Scan): Buffer {
  if (!scan.clientOptions) return reply
  const out = dropClientOptions(reply, scan.optRdata, scan.optEnd)
  const removed = reply.length - out.length
  const offs = scan.ttlOffsets
  for (let k = 0; k < offs.length; k++) if (offs[k]! > scan.optRdata) offs[k]! -= removed
  return out
}
