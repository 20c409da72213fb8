/**
 * TLS 1.3 HelloRetryRequest (RFC 8446 4.1.4): a server that cannot use the client's key shares
 * answers the first ClientHello with a ServerHello whose random is a fixed value, and the client
 * sends a second ClientHello. That one must repeat the first's server_name (4.1.2), but not every
 * server checks (OpenSSL's s_server switches to the second's name), so a tunnel that the first
 * hello's SNI opened could reach a listed name with the second's. The proxy therefore watches
 * the server's first bytes and, on a retry request, reads and decides the second hello too.
 */

/** ServerHello.random of a HelloRetryRequest: SHA-256 of "HelloRetryRequest". */
const HRR_RANDOM = Buffer.from('cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c', 'hex')
/** The handshake bytes that tell: type (1), length (3), legacy_version (2), random (32). */
const NEED = 38
/** Server bytes looked at, at most, before deciding it is not a retry request. */
export const MAX_PEEK = 4096

/**
 * Is the server's first flight a HelloRetryRequest? Undefined while too few bytes have come. The
 * handshake bytes are taken across records (a ServerHello split over tiny records still counts);
 * anything other than handshake records, or a message other than ServerHello, is no retry request.
 */
export function isRetryRequest(b: Buffer): boolean | undefined {
  const hs: Buffer[] = []
  let have = 0
  let off = 0
  while (have < NEED) {
    if (off >= b.length) return b.length >= MAX_PEEK ? false : undefined
    if (b[off] !== 0x16) return false
    if (off + 5 > b.length) return undefined
    const end = Math.min(off + 5 + b.readUInt16BE(off + 3), b.length)
    hs.push(b.subarray(off + 5, end))
    have += end - off - 5
    if (hs.length === 1 && have > 0 && b[off + 5] !== 2) return false      // not a ServerHello
    off = end
  }
  const h = Buffer.concat(hs)
  return h[0] === 2 && h.subarray(6, 38).equals(HRR_RANDOM)
}
