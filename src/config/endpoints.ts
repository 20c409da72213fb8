/**
 * The config's address forms, parsed: HOST:PORT, upstream and syslog URLs, the parent proxy URL,
 * and whether a URL's credentials decode. The schema checks by them; the listeners and clients
 * listen and connect by them.
 */
import { isIP } from 'node:net'

/** An upstream URL's parts: the IP to connect to, its port, and (tls:// only) the name its certificate must carry. */
export interface UpstreamParts {
  readonly proto: 'udp' | 'tcp' | 'tls'
  readonly host: string
  readonly port: number
  readonly servername?: string
}

const UPSTREAM_FORMS = 'udp://IP[:PORT], tcp://IP[:PORT] or tls://IP[:PORT][#SERVERNAME] (IPv6 in brackets)'
const TLS_EXAMPLE = 'tls://1.1.1.1#cloudflare-dns.com'
const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i

/**
 * "udp://1.2.3.4:53", "tcp://[::1]", "tls://1.1.1.1#cloudflare-dns.com" → its parts (port 53 by
 * default, 853 for tls://), or why it is not an upstream URL. The host is an IP address: names are
 * not resolved (that would need an upstream to find the upstream); a tls:// upstream's name goes
 * after `#` (SERVERNAME, a DNS name or an IP address the certificate must carry).
 */
export function parseUpstreamUrl(s: string): UpstreamParts | string {
  const m = /^(udp|tcp|tls):\/\/(?:\[([^\]]*)\]|([^:/#[\]]*))(?::(\d{1,5}))?(?:#(.*))?$/.exec(s)
  if (!m) return `not an upstream URL; write ${UPSTREAM_FORMS}`
  const proto = m[1] as UpstreamParts['proto']
  const name = m[5]
  if (m[2] !== undefined ? isIP(m[2]) !== 6 : isIP(m[3]!) !== 4) {
    if (m[3] === undefined || !DNS_NAME.test(m[3]) || /^[\d.]+$/.test(m[3])) return `not an upstream URL; write ${UPSTREAM_FORMS}`
    // a name where the IP goes: not looked up (no bootstrap resolution)
    const fix = proto === 'tls' ? `write the server's IP address and the name after #: tls://IP#${m[3]}, e.g. ${TLS_EXAMPLE}` : `write ${proto}://IP`
    return `"${m[3]}" is a name: an upstream is an IP address (names are not looked up; there is no bootstrap resolver); ${fix}`
  }
  const port = m[4] === undefined ? (proto === 'tls' ? 853 : 53) : Number(m[4])
  if (port < 1 || port > 65535) return `${m[4]} is not a port (1-65535)`
  if (name === undefined) return { proto, host: m[2] ?? m[3]!, port }
  if (proto !== 'tls') return `a server name (#${name}) is for tls:// upstreams only; write ${proto}://${m[2] === undefined ? m[3] : `[${m[2]}]`}${m[4] === undefined ? '' : `:${m[4]}`} or tls://…#${name}`
  if (!DNS_NAME.test(name) && isIP(name) === 0) return `"${name}" is not a server name; write the name the server's certificate carries, e.g. ${TLS_EXAMPLE}`
  return { proto, host: m[2] ?? m[3]!, port, servername: name }
}

/** udp://IP[:PORT], tcp://IP[:PORT] or tls://IP[:PORT][#SERVERNAME], IPv6 in brackets. */
export function isUpstreamUrl(s: string): boolean {
  return typeof parseUpstreamUrl(s) !== 'string'
}

/** A syslog URL's parts: the transport, the host (a name or an IP, without brackets) and the port. */
export interface SyslogParts {
  readonly transport: 'udp' | 'tcp'
  readonly host: string
  readonly port: number
}

const SYSLOG_FORMS = 'udp://HOST:PORT or tcp://HOST:PORT (port 1-65535, IPv6 in brackets), e.g. udp://127.0.0.1:514'

/**
 * "udp://127.0.0.1:514", "tcp://[::1]:6514", "tcp://logs.example:601" → its parts, or why it is
 * not a syslog URL: the one rule alerts.syslog.url is checked by and the syslog output connects by.
 */
export function parseSyslogUrl(s: string): SyslogParts | string {
  const m = /^(udp|tcp):\/\/(?:\[([0-9a-fA-F:.]+)\]|([^:/[\]]+)):(\d{1,5})$/.exec(s)
  if (!m) return `${JSON.stringify(s)} is not a syslog URL; write ${SYSLOG_FORMS}`
  const port = Number(m[4])
  if (port < 1 || port > 65535) return `${m[4]} is not a port (1-65535); write e.g. ${m[1]}://${m[2] === undefined ? m[3] : `[${m[2]}]`}:514`
  return { transport: m[1] as SyslogParts['transport'], host: (m[2] ?? m[3])!, port }
}

/**
 * Whether a URL's user name and password percent-decode (basicAuth decodes them; `%zz` would
 * throw). Text that is no URL passes: the URL checks beside this one say what is wrong with it.
 */
export function credentialsDecode(url: string): boolean {
  if (!URL.canParse(url)) return true
  const u = new URL(url)
  try {
    decodeURIComponent(u.username)
    decodeURIComponent(u.password)
    return true
  } catch {
    return false
  }
}

/** http://[user[:password]@]host[:port] with nothing after the authority: an HTTP proxy (CONNECT is spoken to it in clear). */
export function isParentUrl(s: string): boolean {
  if (!/^http:\/\//i.test(s) || !URL.canParse(s)) return false
  const u = new URL(s)
  return u.pathname === '/' && u.search === '' && u.hash === ''
}

/** "127.0.0.1:1053" → { host, port }; "[::1]:53" → { host: '::1', port: 53 }. */
export function splitHostPort(s: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(s)
  if (!m) return undefined
  const port = Number(m[3])
  if (port > 65535) return undefined
  if (m[1] !== undefined) return isIP(m[1]) === 6 ? { host: m[1], port } : undefined
  return { host: m[2]!, port }
}
