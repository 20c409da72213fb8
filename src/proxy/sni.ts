/**
 * TLS ClientHello parser: finds the SNI host names without terminating TLS.
 *
 * The hello is reassembled across TLS records (a handshake message may be split over any number
 * of records, the split anywhere, including inside the SNI) and across TCP segments (call again
 * with more bytes while the result is `partial`). Strict where strictness stops evasion: every
 * record before the end of the hello must be a handshake record, no zero-length or oversized
 * records, one server_name extension at most with one host_name of printable ASCII, lengths
 * consistent.
 */

/** Default cap on the bytes read before the hello is complete (post-quantum hellos are ~2 KB). */
export const MAX_HELLO_BYTES = 32_768
const MAX_RECORD = 16_384
const SNI_EXT = 0x0000
const ECH_EXT = 0xfe0d

export type HelloResult =
  /** Not complete: at least `need` bytes in total are required before parsing can progress. */
  | { readonly kind: 'partial'; readonly need: number }
  /** The first byte is not a TLS handshake record (plain HTTP, SSLv2-compatible hello, other protocol). */
  | { readonly kind: 'not-tls' }
  /** Looks like TLS but is not a well-formed ClientHello (or is larger than the cap): fail closed. */
  | { readonly kind: 'invalid'; readonly reason: string }
  /** A ClientHello: `names` are the host_name entries of its SNI (empty: no SNI extension). */
  | { readonly kind: 'hello'; readonly names: readonly string[]; readonly ech: boolean; readonly length: number }

const invalid = (reason: string): HelloResult => ({ kind: 'invalid', reason })

/** Parse what has arrived so far. `max` bounds the total bytes the hello may take. */
export function parseClientHello(buf: Buffer, max = MAX_HELLO_BYTES): HelloResult {
  if (buf.length === 0) return { kind: 'partial', need: 1 }
  const first = buf[0]!
  // Another TLS record type first (an alert, change_cipher_spec, application data, heartbeat) is
  // TLS without a ClientHello to decide on: Go's TLS server skips a warning alert sent before the
  // hello, and would route on the SNI of the hello after it. No plain protocol starts with these
  // control bytes, so whatever follows, fail closed.
  if (first >= 0x14 && first <= 0x18 && first !== 0x16) return invalid(`TLS record type ${first} before the ClientHello`)
  if (first !== 0x16) return { kind: 'not-tls' }
  const parts: Buffer[] = []
  let have = 0
  let off = 0
  for (;;) {
    if (off + 5 > buf.length) return partial(off + 5, max)
    if (buf[off] !== 0x16) return invalid(`record type ${buf[off]} before the ClientHello was complete`)
    if (buf[off + 1] !== 3) return invalid('record version is not TLS')
    const len = buf.readUInt16BE(off + 3)
    if (len === 0) return invalid('zero-length handshake record')
    if (len > MAX_RECORD) return invalid(`record length ${len} over 2^14`)
    if (off + 5 + len > buf.length) return partial(off + 5 + len, max)
    parts.push(buf.subarray(off + 5, off + 5 + len))
    have += len
    off += 5 + len
    if (have < 4) continue
    const hs = parts.length === 1 ? parts[0]! : Buffer.concat(parts)
    if (hs[0] !== 1) return invalid(`handshake type ${hs[0]} is not ClientHello`)
    const need = 4 + hs.readUIntBE(1, 3)
    if (need > max) return invalid(`ClientHello of ${need} bytes over the ${max}-byte cap`)
    if (have < need) continue
    // another handshake message in the hello's last record (a second hello, say) would reach the
    // server undecided: no client sends one before the server's answer
    if (have > need) return invalid('handshake bytes after the ClientHello in its record')
    const r = parseHelloBody(hs.subarray(4, need))
    return typeof r === 'string' ? invalid(r) : { kind: 'hello', ...r, length: off }
  }
}

function partial(need: number, max: number): HelloResult {
  return need > max ? invalid(`ClientHello over the ${max}-byte cap`) : { kind: 'partial', need }
}

/** The ClientHello body (after the 4-byte handshake header); a string is the reason it is invalid. */
function parseHelloBody(b: Buffer): { names: string[]; ech: boolean } | string {
  let p = 2 + 32                                         // legacy_version, random
  if (p + 1 > b.length) return 'truncated ClientHello'
  const sid = b[p]!
  if (sid > 32) return 'session id longer than 32 bytes'
  p += 1 + sid
  if (p + 2 > b.length) return 'truncated ClientHello'
  const suites = b.readUInt16BE(p)
  if (suites === 0 || suites % 2 !== 0) return 'bad cipher suites length'
  p += 2 + suites
  if (p + 1 > b.length) return 'truncated ClientHello'
  p += 1 + b[p]!                                          // compression methods
  if (p > b.length) return 'truncated ClientHello'
  const names: string[] = []
  if (p === b.length) return { names, ech: false }        // no extensions at all
  if (p + 2 > b.length) return 'truncated extensions'
  const extEnd = p + 2 + b.readUInt16BE(p)
  if (extEnd !== b.length) return 'extensions length does not match the ClientHello'
  p += 2
  let sniSeen = false
  let ech = false
  while (p < extEnd) {
    if (p + 4 > extEnd) return 'truncated extension header'
    const type = b.readUInt16BE(p)
    const len = b.readUInt16BE(p + 2)
    p += 4
    if (p + len > extEnd) return 'extension runs past the ClientHello'
    if (type === ECH_EXT) ech = true
    if (type === SNI_EXT) {
      if (sniSeen) return 'two server_name extensions'
      sniSeen = true
      const r = parseSni(b.subarray(p, p + len), names)
      if (r) return r
    }
    p += len
  }
  return { names, ech }
}

/** The server_name extension body: a list of (type, name); host_name (0) entries are collected. */
function parseSni(e: Buffer, names: string[]): string | undefined {
  if (e.length < 2 || e.readUInt16BE(0) !== e.length - 2) return 'bad server_name list length'
  let p = 2
  while (p < e.length) {
    if (p + 3 > e.length) return 'truncated server_name entry'
    const type = e[p]!
    const len = e.readUInt16BE(p + 1)
    p += 3
    if (p + len > e.length) return 'server_name entry runs past the extension'
    if (type === 0) {
      if (len === 0) return 'empty SNI host_name'
      // RFC 6066 allows one name of a type: TLS servers (Go, OpenSSL) refuse a list of several, and
      // each name would cost a lookup here
      if (names.length > 0) return 'more than one SNI host_name'
      // a host name is printable ASCII: control bytes (a newline to forge report rows), spaces and
      // bytes past 0x7e are no server's name
      for (let i = p; i < p + len; i++) if (e[i]! < 0x21 || e[i]! > 0x7e) return 'SNI host_name with a byte outside printable ASCII'
      names.push(e.toString('latin1', p, p + len))
    }
    p += len
  }
  if (names.length === 0) return 'server_name extension without a host_name'
  return undefined
}
