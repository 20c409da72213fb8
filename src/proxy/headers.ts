/** Headers that belong to one hop and never cross the proxy (RFC 9110 §7.6.1, plus the proxy ones). */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
  'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'content-length', 'via',
])

/** This hop's Via entry for a message received as HTTP/`version` (RFC 9110 §7.6.3: the version received, not sent). */
export function via(version: string): string {
  return version === '1.0' ? VIA_10 : VIA_11
}
const VIA_10 = '1.0 tunnelguard'
const VIA_11 = '1.1 tunnelguard'

/**
 * Header fields as node's `rawHeaders` has them and as node's http.request and writeHead take
 * them: name, value, name, value…, each field a line of its own, in order, names as they were
 * sent (HTTP names are case-insensitive, but legacy origins and clients, and anything comparing
 * captures, see the case; squid and tinyproxy relay names as sent).
 */
export type RawHeaders = string[]

/**
 * The headers to send on the next hop, from `raw` (name, value, name, value…), in their order and
 * with their names as sent, repeated fields kept as separate lines: hop-by-hop headers and those a
 * Connection header names dropped, the proxy's own x-tunnelguard-* control headers dropped in both
 * directions, X-Forwarded-For and Forwarded kept only when `keepForwardedFor` (from a trusted peer), Via appended (one field, where
 * the first Via was, or last), naming `version`, the HTTP version the message came in. Framing
 * (Host, Content-Length, Transfer-Encoding) is the caller's, in `framing` (name, value…, names in
 * their usual case): each goes where the message had that field, in its case, or else last.
 */
export function forwardHeaders(raw: readonly string[], keepForwardedFor: boolean, version: string, framing: readonly string[] = []): RawHeaders {
  const listed = new Set<string>()
  const vias: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    if (name === 'connection') {
      for (const t of raw[i + 1]!.split(',')) listed.add(t.trim().toLowerCase())
    } else if (name === 'via') vias.push(raw[i + 1]!)
  }
  const frame = new Map<string, string>()
  for (let i = 0; i < framing.length; i += 2) frame.set(framing[i]!.toLowerCase(), framing[i + 1]!)
  const placed = new Set<string>()
  const out: RawHeaders = []
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    const lower = name.toLowerCase()
    const set = lower === 'via' ? [...vias, via(version)].join(', ') : frame.get(lower)
    if (set !== undefined) {
      if (!placed.has(lower)) out.push(name, set)
      placed.add(lower)
      continue
    }
    if (HOP_BY_HOP.has(lower) || listed.has(lower) || lower.startsWith('x-tunnelguard-')) continue
    if ((lower === 'x-forwarded-for' || lower === 'forwarded') && !keepForwardedFor) continue
    out.push(name, raw[i + 1]!)
  }
  if (!placed.has('via')) out.push('Via', via(version))
  for (let i = 0; i < framing.length; i += 2) {
    if (!placed.has(framing[i]!.toLowerCase())) out.push(framing[i]!, framing[i + 1]!)
  }
  return out
}

/** Give the first field named `name` (lower case; there is one) `value`, and drop the others of that name. */
export function replaceField(headers: RawHeaders, name: string, value: string): void {
  let seen = false
  for (let i = 0; i < headers.length;) {
    if (headers[i]!.toLowerCase() !== name) i += 2
    else if (seen) headers.splice(i, 2)
    else {
      headers[i + 1] = value
      seen = true
      i += 2
    }
  }
}
