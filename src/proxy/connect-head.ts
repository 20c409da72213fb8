/** A CONNECT request head read straight from the socket, without node's http server. */
export interface ConnectHead {
  /** The request target as sent (`host:port`), checked later by parseAuthority. */
  readonly url: string
  /** The headers the CONNECT path reads (the client a trusted peer names); duplicates joined with ", " as node joins them. */
  readonly headers: { readonly 'x-forwarded-for'?: string; readonly forwarded?: string }
  /** Bytes of the head, CRLFCRLF included: what follows is the tunnel's first data. */
  readonly length: number
}

const CRLFCRLF = Buffer.from('\r\n\r\n')
/**
 * The most header fields a request head may have (Apache's default). The http server keeps one
 * more than this and refuses a head that reaches it (431); this parser leaves such a head to
 * the server, so both paths see every field or refuse the head. (Node itself keeps the first
 * 1000 and drops the rest silently, which would hide a trusted proxy's X-Forwarded-For or Forwarded.)
 */
export const MAX_HEADER_FIELDS = 100
const START = /^CONNECT ([A-Za-z0-9._:[\]-]+) HTTP\/1\.1$/
/** One header field line, `name: value` (the value without the whitespace around it). */
export const FIELD = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/

/**
 * The fast path of the proxy's front door: `buf` (the first bytes a client sent) read as a
 * CONNECT head of the plainest form: `CONNECT target HTTP/1.1`, then `name: value` fields of
 * printable ASCII, complete within `maxBytes`, no body framing. Anything else (another method,
 * a head still incomplete, obs-fold, control or non-ASCII bytes, Content-Length or
 * Transfer-Encoding, HTTP/1.0, more than MAX_HEADER_FIELDS fields) gives undefined and goes to node's http server (llhttp), which
 * then decides it as it always has: this parser accepts a subset of what llhttp accepts and
 * never answers a client itself.
 */
export function parseConnectHead(buf: Buffer, maxBytes: number): ConnectHead | undefined {
  if (buf.length < 16 || buf[0] !== 0x43 /* C */) return undefined
  const end = buf.indexOf(CRLFCRLF)
  if (end < 0 || end + 4 > maxBytes) return undefined
  for (let i = 0; i < end; i++) {
    const c = buf[i]!
    if (c >= 0x20 && c <= 0x7e) continue
    if (c === 0x0d && buf[i + 1] === 0x0a && buf[i + 2] !== 0x20 && buf[i + 2] !== 0x09) {
      i++                                            // a line break not followed by obs-fold
      continue
    }
    if (c === 0x09 && i > 0 && buf[i - 1] !== 0x0a) continue
    return undefined
  }
  const lines = buf.toString('latin1', 0, end).split('\r\n')
  const start = START.exec(lines[0]!)
  if (!start || lines.length - 1 > MAX_HEADER_FIELDS) return undefined
  let xff: string | undefined
  let fwd: string | undefined
  for (let i = 1; i < lines.length; i++) {
    const f = FIELD.exec(lines[i]!)
    if (!f) return undefined
    const name = f[1]!.toLowerCase()
    if (name === 'content-length' || name === 'transfer-encoding') return undefined
    if (name === 'x-forwarded-for') xff = xff === undefined ? f[2]! : `${xff}, ${f[2]!}`
    else if (name === 'forwarded') fwd = fwd === undefined ? f[2]! : `${fwd}, ${f[2]!}`
  }
  const headers: { 'x-forwarded-for'?: string; forwarded?: string } = {}
  if (xff !== undefined) headers['x-forwarded-for'] = xff
  if (fwd !== undefined) headers.forwarded = fwd
  return { url: start[1]!, headers, length: end + 4 }
}
