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

export type HeaderMap = Record<string, string | string[]>

/**
 * The headers to send on the next hop, from `raw` (name, value, name, value…): hop-by-hop
 * headers and those a Connection header names dropped, the proxy's own x-tunnelguard-* control
 * headers dropped in both directions, X-Forwarded-For kept only when `keepForwardedFor`, Via
 * appended, naming `version`, the HTTP version the message came in. Framing (Host,
 * Content-Length, Transfer-Encoding) is set by the caller.
 */
export function forwardHeaders(raw: readonly string[], keepForwardedFor: boolean, version: string): HeaderMap {
  const listed = new Set<string>()
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'connection') {
      for (const t of raw[i + 1]!.split(',')) listed.add(t.trim().toLowerCase())
    }
  }
  const out: HeaderMap = {}
  const vias: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    const value = raw[i + 1]!
    if (name === 'via') vias.push(value)
    if (HOP_BY_HOP.has(name) || listed.has(name) || name.startsWith('x-tunnelguard-')) continue
    if (name === 'x-forwarded-for' && !keepForwardedFor) continue
    const prev = out[name]
    out[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value]
  }
  out.via = [...vias, via(version)].join(', ')
  return out
}
