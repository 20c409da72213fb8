import { isIP } from 'node:net'

/** An address as four 32-bit words (IPv4 uses only the last, with family 4). */
export interface Addr { readonly family: 4 | 6; readonly words: readonly number[] }
export interface Cidr { readonly family: 4 | 6; readonly words: readonly number[]; readonly prefix: number; readonly text: string }

// Both parsers see only text that node's isIP() has accepted.
function v4words(s: string): number[] {
  let n = 0
  for (const x of s.split('.')) n = n * 256 + Number(x)
  return [n >>> 0]
}

function v6words(text: string): number[] {
  let s = text
  const lastColon = s.lastIndexOf(':')
  if (s.includes('.', lastColon)) {                  // embedded IPv4 (::ffff:1.2.3.4) → two hex groups
    const w = v4words(s.slice(lastColon + 1))[0]!
    s = s.slice(0, lastColon + 1) + (w >>> 16).toString(16) + ':' + (w & 0xffff).toString(16)
  }
  const [head, tail] = s.split('::') as [string, string?]
  const part = (h: string) => (h === '' ? [] : h.split(':').map(x => parseInt(x, 16)))
  const a = part(head)
  const b = tail === undefined ? [] : part(tail)
  const g = [...a, ...new Array<number>(8 - a.length - b.length).fill(0), ...b]
  const w: number[] = []
  for (let i = 0; i < 8; i += 2) w.push(((g[i]! << 16) | g[i + 1]!) >>> 0)
  return w
}

// the last two addresses parsed: a proxied connection asks about its client and its target
// several times each (allowClients, trust, group, destination guard)
let memoText0 = ''
let memoAddr0: Addr | undefined
let memoText1 = ''
let memoAddr1: Addr | undefined

/** Parse an address; IPv4-mapped IPv6 (::ffff:a.b.c.d) comes back as IPv4. The result is shared: never mutate it. */
export function parseAddr(s: string): Addr | undefined {
  if (s === memoText0) return memoAddr0
  if (s === memoText1) return memoAddr1
  const a = parseAddrText(s)
  memoText1 = memoText0
  memoAddr1 = memoAddr0
  memoText0 = s
  memoAddr0 = a
  return a
}

function parseAddrText(s: string): Addr | undefined {
  const fam = isIP(s)
  if (fam === 4) return { family: 4, words: v4words(s)! }
  if (fam !== 6) return undefined
  const w = v6words(s.replace(/%.*$/, ''))
  if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff) return { family: 4, words: [w[3]!] }
  return { family: 6, words: w }
}

/** Eight IPv6 groups as RFC 5952 text: lowercase, no leading zeros, the longest run of two or more zero groups (the first of equals) as "::". */
export function formatV6(g: readonly number[]): string {
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > bestLen) { best = i; bestLen = j - i }
    i = j === i ? i + 1 : j
  }
  const hex = (a: readonly number[]): string => a.map(x => x.toString(16)).join(':')
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`
}

/**
 * An address in the one form the evidence uses, so that a client is one client whichever
 * listener, header or family named it: IPv4-mapped IPv6 (a dual-stack listener's IPv4 client,
 * `::ffff:192.0.2.1`) as IPv4, IPv6 per RFC 5952 (a PROXY v2 header's groups, an X-Forwarded-For
 * written out in full), no zone. Text that is not an address comes back as it is.
 */
export function canonicalIp(s: string): string {
  if (!s.includes(':')) return s                     // IPv4 as node and isIP() give it
  const a = parseAddr(s)
  if (!a) return s
  const w = a.words
  if (a.family === 4) return `${w[0]! >>> 24}.${(w[0]! >>> 16) & 255}.${(w[0]! >>> 8) & 255}.${w[0]! & 255}`
  const g: number[] = []
  for (const x of w) g.push(x >>> 16, x & 0xffff)
  return formatV6(g)
}

/** IPv6 client addresses whose canonical form `canonicalIps` keeps at hand (then it starts again). */
const MAX_CANONICAL = 4096

/**
 * canonicalIp for a stream of client addresses (one per DNS query): IPv4 as it is, IPv6 parsed
 * once per address and remembered. A link-local client's address comes with its zone
 * (`fe80::1%eth0`); without this, its queries and its tunnels would be two clients.
 */
export function canonicalIps(): (ip: string) => string {
  const memo = new Map<string, string>()
  return ip => {
    if (!ip.includes(':')) return ip
    let c = memo.get(ip)
    if (c === undefined) {
      if (memo.size >= MAX_CANONICAL) memo.clear()
      memo.set(ip, c = canonicalIp(ip))
    }
    return c
  }
}

/** "10.0.0.0/8", "fc00::/7", or a bare address (a /32 or /128). */
export function parseCidr(s: string): Cidr | undefined {
  const slash = s.indexOf('/')
  const a = parseAddr(slash < 0 ? s : s.slice(0, slash))
  if (!a) return undefined
  const max = a.family === 4 ? 32 : 128
  let prefix = max
  if (slash >= 0) {
    const p = s.slice(slash + 1)
    if (!/^\d{1,3}$/.test(p)) return undefined
    prefix = Number(p)
    // an IPv4-mapped IPv6 CIDR (::ffff:10.0.0.0/104) becomes its IPv4 form
    if (a.family === 4 && s.includes(':')) prefix -= 96
    if (prefix < 0 || prefix > max) return undefined
  }
  return { family: a.family, words: a.words, prefix, text: s }
}

export function cidrContains(c: Cidr, a: Addr): boolean {
  if (c.family !== a.family) return false
  let bits = c.prefix
  for (let i = 0; i < c.words.length && bits > 0; i++) {
    const take = bits >= 32 ? 32 : bits
    const mask = take === 32 ? 0xffffffff : ~(0xffffffff >>> take)
    if (((c.words[i]! ^ a.words[i]!) & mask) !== 0) return false
    bits -= take
  }
  return true
}

/** A fixed set of CIDRs; `has(ip)` on a textual address (unparseable → false). */
export class CidrSet {
  readonly cidrs: readonly Cidr[]
  constructor(list: readonly string[]) {
    this.cidrs = list.map(s => {
      const c = parseCidr(s)
      if (!c) throw new TypeError(`not a CIDR: ${s}`)
      return c
    })
  }
  has(ip: string): boolean {
    const a = parseAddr(ip)
    return a !== undefined && this.hasAddr(a)
  }
  hasAddr(a: Addr): boolean {
    for (const c of this.cidrs) if (cidrContains(c, a)) return true
    return false
  }
}
