import { isIP } from 'node:net'
import { canonicalIp, formatV6 } from '../policy/cidr.js'

/** Result of looking for a PROXY protocol (v1 or v2) header at the start of a connection. */
export type ProxyHeader =
  | { readonly kind: 'partial' }
  /** No PROXY header: the bytes are the client's own. */
  | { readonly kind: 'none' }
  | { readonly kind: 'invalid'; readonly reason: string }
  /** A header; `source` is absent for LOCAL / UNKNOWN (keep the peer). `length` bytes are consumed. */
  | { readonly kind: 'header'; readonly length: number; readonly source?: { readonly ip: string; readonly port: number } }

const V2_SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex')
const V1_PREFIX = Buffer.from('PROXY ')
const V1_MAX = 107

/** Parse a PROXY v1/v2 header from the first bytes of a connection. */
export function parseProxyHeader(buf: Buffer): ProxyHeader {
  const n = Math.min(buf.length, 12)
  if (buf.subarray(0, n).equals(V2_SIG.subarray(0, n))) return n < 12 ? { kind: 'partial' } : parseV2(buf)
  const m = Math.min(buf.length, 6)
  if (buf.subarray(0, m).equals(V1_PREFIX.subarray(0, m))) return m < 6 ? { kind: 'partial' } : parseV1(buf)
  return { kind: 'none' }
}

function parseV1(buf: Buffer): ProxyHeader {
  const end = buf.indexOf('\r\n')
  if (end < 0) return buf.length >= V1_MAX ? { kind: 'invalid', reason: 'PROXY v1 line too long' } : { kind: 'partial' }
  if (end + 2 > V1_MAX) return { kind: 'invalid', reason: 'PROXY v1 line too long' }
  const f = buf.toString('latin1', 6, end).split(' ')
  if (f[0] === 'UNKNOWN') return { kind: 'header', length: end + 2 }
  const fam = f[0] === 'TCP4' ? 4 : f[0] === 'TCP6' ? 6 : 0
  if (f.length !== 5 || fam === 0 || isIP(f[1]!) !== fam || isIP(f[2]!) !== fam || !port(f[3]!) || !port(f[4]!)) {
    return { kind: 'invalid', reason: 'malformed PROXY v1 line' }
  }
  return { kind: 'header', length: end + 2, source: { ip: canonicalIp(f[1]!), port: Number(f[3]) } }
}

function port(s: string): boolean {
  return /^(?:0|[1-9]\d{0,4})$/.test(s) && Number(s) <= 65535
}

function parseV2(buf: Buffer): ProxyHeader {
  if (buf.length < 16) return { kind: 'partial' }
  const verCmd = buf[12]!
  const fam = buf[13]!
  const len = buf.readUInt16BE(14)
  if (verCmd >> 4 !== 2 || (verCmd & 15) > 1) return { kind: 'invalid', reason: 'bad PROXY v2 version or command' }
  if (buf.length < 16 + len) return { kind: 'partial' }
  const length = 16 + len
  if ((verCmd & 15) === 0) return { kind: 'header', length }            // LOCAL: health check from the proxy itself
  // families UNSPEC, INET, INET6, UNIX and transports UNSPEC, STREAM, DGRAM; any other value "must
  // be rejected as invalid by receivers" (the PROXY protocol, 2.2)
  if (fam >> 4 > 3 || (fam & 15) > 2) return { kind: 'invalid', reason: `bad PROXY v2 address family or transport (0x${fam.toString(16).padStart(2, '0')})` }
  const a = buf.subarray(16, length)
  if (fam >> 4 === 1) {
    if (len < 12) return { kind: 'invalid', reason: 'short PROXY v2 IPv4 address block' }
    return { kind: 'header', length, source: { ip: [...a.subarray(0, 4)].join('.'), port: a.readUInt16BE(8) } }
  }
  if (fam >> 4 === 2) {
    if (len < 36) return { kind: 'invalid', reason: 'short PROXY v2 IPv6 address block' }
    const groups: number[] = []
    for (let i = 0; i < 16; i += 2) groups.push(a.readUInt16BE(i))
    return { kind: 'header', length, source: { ip: canonicalIp(formatV6(groups)), port: a.readUInt16BE(32) } }
  }
  return { kind: 'header', length }                                     // UNSPEC / unix: keep the peer
}
