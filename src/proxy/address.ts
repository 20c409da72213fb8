import { isIP } from 'node:net'
import { CidrSet, canonicalIp, parseAddr, type Addr } from '../policy/cidr.js'

/** A parsed request target. `ip` is set (dialable, canonical) when the host is an address literal. */
export interface Target {
  readonly host: string
  readonly port: number
  readonly ip?: string
}

const AUTHORITY = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+))(?::(\d{1,5}))?$/
const NUMERIC_LABEL = /^(?:0x[0-9a-f]*|[0-9]+)$/i

/**
 * Strict `host:port` (IPv6 in brackets). Without `defaultPort` the port is required. Rejects
 * ports with leading zeros, port 0 and > 65535, userinfo, paths, nested brackets. IPv4 written
 * in any form a URL parser accepts (2130706433, 0177.0.0.1, 0x7f.1) becomes its dotted form.
 */
export function parseAuthority(s: string, defaultPort?: number): Target | undefined {
  const m = AUTHORITY.exec(s)
  if (!m) return undefined
  let port = defaultPort
  if (m[3] !== undefined) {
    if ((m[3].length > 1 && m[3][0] === '0') || Number(m[3]) > 65535 || Number(m[3]) === 0) return undefined
    port = Number(m[3])
  }
  if (port === undefined) return undefined
  if (m[1] !== undefined) {
    const a = isIP(m[1]) === 6 ? parseAddr(m[1]) : undefined
    if (!a) return undefined
    return { host: m[1], port, ip: a.family === 4 ? v4text(a.words[0]!) : canonicalIp(m[1]) }
  }
  const host = m[2]!.endsWith('.') ? m[2]!.slice(0, -1) : m[2]!
  const labels = host.split('.')
  // no host name: a label over 63 octets, a name over 253 (RFC 1035 §2.3.4), as a bad character is no host name
  if (host.length > 253 || labels.some(l => l.length > 63)) return undefined
  if (NUMERIC_LABEL.test(labels[labels.length - 1]!)) {
    const ip = parseIpv4Loose(host)
    return ip === undefined ? undefined : { host, port, ip }
  }
  return { host, port }
}

/**
 * What is wrong with an authority parseAuthority refused, in words for a 400 and for `check`: the
 * port (missing, not a number, a leading zero, out of range) or the host (no name, an IPv6
 * address out of brackets, a character no host name has). `defaultPort`: as given to parseAuthority.
 */
export function authorityProblem(s: string, defaultPort?: number): string {
  if (s.includes('@')) return 'userinfo ("user@") is no part of a target: write host:port'
  if (/[\/?#\s]/.test(s)) return 'a path, query or space is no part of a target: write host:port'
  let host: string
  let port: string | undefined
  if (s.startsWith('[')) {
    const end = s.indexOf(']')
    if (end < 0) return `"[" is not closed: write [IPv6]:port`
    host = s.slice(0, end + 1)
    const rest = s.slice(end + 1)
    if (rest !== '' && rest[0] !== ':') return `"${rest}" after ${host}: write [IPv6]:port`
    port = rest === '' ? undefined : rest.slice(1)
  } else {
    const colon = s.indexOf(':')
    if (colon >= 0 && s.indexOf(':', colon + 1) >= 0) {
      return isIP(s.slice(0, s.lastIndexOf(':'))) === 6 || isIP(s) === 6 ? 'an IPv6 address goes in brackets: write [IPv6]:port' : 'more than one ":": write host:port'
    }
    host = colon < 0 ? s : s.slice(0, colon)
    port = colon < 0 ? undefined : s.slice(colon + 1)
  }
  if (port === undefined && defaultPort === undefined) return 'no port: write host:port'
  if (port === '') return 'no port after ":"'
  if (port !== undefined && !/^\d+$/.test(port)) return `port "${port}" is not a number`
  if (port !== undefined && port.length > 1 && port[0] === '0') return `port ${port} has a leading zero`
  if (port !== undefined && (Number(port) === 0 || Number(port) > 65535)) return `port ${port} is out of range (1-65535)`
  if (host === '') return 'no host'
  if (host.startsWith('[')) return `host ${host} is no IPv6 address`
  const bad = /[^A-Za-z0-9._-]/.exec(host)
  if (bad) return `host "${host}" is no valid name (character "${bad[0]}")`
  const name = host.endsWith('.') ? host.slice(0, -1) : host
  if (name.length > 253) return `host "${host.slice(0, 40)}…" is no valid name (${name.length} characters; at most 253)`
  const long = name.split('.').find(l => l.length > 63)
  if (long !== undefined) return `host "${host.slice(0, 40)}…" is no valid name (a label of ${long.length} characters; at most 63)`
  return `host "${host}" is no valid name or IPv4 address`
}

/** The host as ECS `url.domain` holds it: an IPv6 literal in its brackets (RFC 2732). */
export function urlDomain(t: Target): string {
  return t.host.includes(':') ? `[${t.host}]` : t.host
}

/**
 * The ECS destination of the host a client named, as a decision line has it: an address literal
 * in `ip`, canonical and without brackets; a name in `domain` (ECS: destination.domain is a
 * name), with the address connected to (`ip`) when there is one; and the port.
 */
export function decisionDestination(t: Target, ip?: string): { readonly domain?: string; readonly ip?: string; readonly port: number } {
  return t.ip !== undefined ? { ip: t.ip, port: t.port } : { domain: t.host, ip, port: t.port }
}

/** The same as an operational line's dotted fields, the name as decided (`name`) when it is one. */
export function destinationFields(t: Target, name: string): Record<string, string> {
  return t.ip !== undefined ? { 'destination.ip': t.ip } : { 'destination.domain': name }
}

/**
 * A close line's destination, set to the host a request names: `destination.domain` or, for an
 * address, `destination.ip` (an earlier request's on the connection cleared), and the port.
 */
export function closeDestination(close: Record<string, unknown>, t: Target): void {
  close['destination.domain'] = t.ip === undefined ? t.host.toLowerCase() : undefined   // as the decision line has it
  close['destination.ip'] = t.ip
  close['destination.port'] = t.port
}

/** The destination of a host known only as text (a name decided on): an address in `ip`, canonical, else `domain`. */
export function destinationOfName(name: string): { readonly domain: string } | { readonly ip: string } {
  return isIP(name) !== 0 ? { ip: canonicalIp(name) } : { domain: name }
}

/**
 * The canonical address (as destination.ip has it) a host seen on a line names when it is an
 * address literal: IPv6 with or without its brackets, IPv4 in any form a URL parser reads
 * (`0x7f000001`, as parseAuthority takes it); undefined for a name.
 */
export function addressLiteral(host: string): string | undefined {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
  if (isIP(bare) !== 0) return canonicalIp(bare)
  return NUMERIC_LABEL.test(bare.slice(bare.lastIndexOf('.') + 1)) ? parseIpv4Loose(bare) : undefined
}

/** IPv4 as the WHATWG URL parser reads it: 1–4 parts, each decimal, 0x-hex or 0-octal; the last fills the rest. */
export function parseIpv4Loose(s: string): string | undefined {
  const parts = s.split('.')
  if (parts.length > 4) return undefined
  const nums: number[] = []
  for (const p of parts) {
    let n: number
    if (/^0x[0-9a-f]*$/i.test(p)) n = p.length === 2 ? 0 : parseInt(p.slice(2), 16)
    else if (/^0[0-7]+$/.test(p)) n = parseInt(p, 8)
    else if (/^(?:0|[1-9][0-9]*)$/.test(p)) n = Number(p)
    else return undefined
    nums.push(n)
  }
  const last = nums.pop()!
  if (nums.some(n => n > 255) || last >= 256 ** (4 - nums.length)) return undefined
  let v = last
  nums.forEach((n, i) => { v += n * 256 ** (3 - i) })
  return v4text(v)
}

function v4text(n: number): string {
  return `${n >>> 24 & 255}.${n >>> 16 & 255}.${n >>> 8 & 255}.${n & 255}`
}

/** Ranges never dialled unless `allowDestinations` lists them. */
const FORBIDDEN: readonly (readonly [string, string])[] = [
  ['0.0.0.0/8', 'unspecified'], ['10.0.0.0/8', 'private'], ['100.64.0.0/10', 'CGNAT'],
  ['127.0.0.0/8', 'loopback'], ['169.254.0.0/16', 'link-local (cloud metadata)'], ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'IETF protocol assignments'], ['192.168.0.0/16', 'private'], ['198.18.0.0/15', 'benchmarking'],
  ['224.0.0.0/4', 'multicast'], ['240.0.0.0/4', 'reserved or broadcast'],
  ['::/128', 'unspecified'], ['::1/128', 'loopback'], ['::/96', 'IPv4-compatible'],
  ['64:ff9b:1::/48', 'NAT64 (local use)'], ['100::/64', 'discard'], ['2001::/32', 'Teredo'], ['2001:2::/48', 'benchmarking'],
  ['2001:20::/28', 'ORCHIDv2 (not routable)'], ['2002::/16', '6to4'],
  ['fc00::/7', 'unique local (private)'], ['fe80::/10', 'link-local'], ['fec0::/10', 'site-local (deprecated)'],
  ['ff00::/8', 'multicast'],
]
const FORBIDDEN_SETS = FORBIDDEN.map(([c, label]) => [new CidrSet([c]), label, c] as const)

export interface SelfAddress { readonly address: string; readonly port: number }

type Listener = { readonly addr: Addr | 'any'; readonly port: number }

function listener(s: SelfAddress): Listener {
  const a = parseAddr(s.address)!
  return { addr: a.words.every(w => w === 0) ? 'any' : a, port: s.port }
}

/**
 * Decides whether an address may be dialled; built once per listener set. `self` are the
 * proxy's own listeners; `others`, read at each check, are the rest of this process's
 * listeners (admin, DNS, sinkhole capture), some of them started after the proxy.
 */
export class DestinationGuard {
  readonly #self: readonly Listener[]
  readonly #local: readonly Addr[]
  readonly #others: () => readonly SelfAddress[]
  #otherSeen: readonly SelfAddress[] = []
  #otherCount = 0
  #otherParsed: readonly Listener[] = []

  constructor(self: readonly SelfAddress[], localAddresses: readonly string[], others: () => readonly SelfAddress[] = () => []) {
    this.#self = self.map(listener)
    this.#local = localAddresses.map(x => parseAddr(x)).filter((a): a is Addr => a !== undefined)
    this.#others = others
  }

  /** The other listeners, parsed again only when the list has changed (it only grows). */
  #listeners(): readonly Listener[] {
    const o = this.#others()
    if (o !== this.#otherSeen || o.length !== this.#otherCount) {
      this.#otherSeen = o
      this.#otherCount = o.length
      this.#otherParsed = o.map(listener)
    }
    return this.#otherParsed
  }

  /**
   * Why `ip:port` must not be dialled, or undefined when it may. `name`: the name `ip` was
   * resolved from, which the reason then starts with ("x.example resolves to 127.0.0.1, which is …").
   */
  check(ip: string, port: number, allow: CidrSet, name?: string): string | undefined {
    const is = (what: string) => name === undefined ? `${what} is` : `${name} resolves to ${what}, which is`
    const parsed = parseAddr(ip)
    if (!parsed) return `${is(ip)} not an address`
    // a NAT64 address is the IPv4 address the gateway dials: the IPv4 rules apply to that
    const v4 = nat64(parsed)
    const a = v4 ?? translated(parsed)
    const shown = v4 ? `${ip} (NAT64 of ${v4text(v4.words[0]!)})` : ip
    for (const s of [...this.#self, ...this.#listeners()]) {
      if (s.port !== port) continue
      if (s.addr === 'any' ? (isLoopback(a) || this.#local.some(l => same(l, a))) : same(s.addr, a)) {
        return `${is(`${ip}:${port}`)} one of tunnelguard's own listeners`
      }
    }
    if (allow.hasAddr(a)) return undefined
    for (const [set, label, cidr] of FORBIDDEN_SETS) {
      // a NAT64 address is allowed by the IPv4 address it embeds (listing 64:ff9b::/96 would let every internal one through)
      if (set.hasAddr(a)) return `${is(shown)} ${label} (${cidr}); list ${v4 ? v4text(v4.words[0]!) : 'it'} in proxy.allowDestinations to allow`
    }
    return undefined
  }
}

/**
 * IPv4-translated IPv6 (::ffff:0:a.b.c.d, RFC 2765's SIIT) as the IPv4 address it embeds, as
 * parseAddr gives IPv4-mapped (::ffff:a.b.c.d): the destination rules see the IPv4 address.
 */
function translated(a: Addr): Addr {
  const w = a.words
  return a.family === 6 && w[0] === 0 && w[1] === 0 && w[2] === 0xffff0000 ? { family: 4, words: [w[3]!] } : a
}

const NAT64 = new CidrSet(['64:ff9b::/96'])

/**
 * The IPv4 address a NAT64 address of the well-known prefix embeds (RFC 6052: 64:ff9b::a.b.c.d),
 * or undefined. On a NAT64 network every IPv4-only site is such an address (DNS64 makes them), so
 * the prefix cannot be refused whole; nor allowed whole, as 64:ff9b::7f00:1 is 127.0.0.1 to the gateway.
 */
function nat64(a: Addr): Addr | undefined {
  return a.family === 6 && NAT64.hasAddr(a) ? { family: 4, words: [a.words[3]!] } : undefined
}

function same(x: Addr, y: Addr): boolean {
  return x.family === y.family && x.words.every((w, i) => w === y.words[i])
}

function isLoopback(a: Addr): boolean {
  return a.family === 4 ? a.words[0]! >>> 24 === 127 : same(a, parseAddr('::1')!)
}
