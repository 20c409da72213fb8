import { isIP } from 'node:net'

/** An address as four 32-bit words (IPv4 uses only the last, with family 4). */
export interface Addr { readonly family: 4 | 6; readonly words: readonly number[] }
export interface Cidr { readonly family: 4 | 6; readonly words: readonly number[]; readonly prefix: number; readonly text: string }

function v4words(s: string): number[] | undefined {
  const p = s.split('.')
  if (p.length !== 4) return undefined
  let n = 0
  for (const x of p) {
    if (!/^\d{1,3}$/.test(x) || Number(x) > 255) return undefined
    n = n * 256 + Number(x)
  }
  return [n >>> 0]
}

function v6words(text: string): number[] | undefined {
  let s = text
  const lastColon = s.lastIndexOf(':')
  if (s.includes('.', lastColon)) {                  // embedded IPv4 (::ffff:1.2.3.4) → two hex groups
    const w = v4words(s.slice(lastColon + 1))
    if (!w) return undefined
    s = s.slice(0, lastColon + 1) + (w[0]! >>> 16).toString(16) + ':' + (w[0]! & 0xffff).toString(16)
  }
  const halves = s.split('::')
  if (halves.length > 2) return undefined
  const part = (h: string) => (h === '' ? [] : h.split(':').map(x => (/^[0-9a-fA-F]{1,4}$/.test(x) ? parseInt(x, 16) : NaN)))
  const head = part(halves[0]!)
  const rest = halves.length === 2 ? part(halves[1]!) : []
  const fill = 8 - head.length - rest.length
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined
  const g = [...head, ...new Array<number>(halves.length === 2 ? fill : 0).fill(0), ...rest]
  if (g.some(x => Number.isNaN(x))) return undefined
  const w: number[] = []
  for (let i = 0; i < 8; i += 2) w.push(((g[i]! << 16) | g[i + 1]!) >>> 0)
  return w
}

/** Parse an address; IPv4-mapped IPv6 (::ffff:a.b.c.d) comes back as IPv4. */
export function parseAddr(s: string): Addr | undefined {
  const fam = isIP(s)
  if (fam === 4) return { family: 4, words: v4words(s)! }
  if (fam !== 6) return undefined
  const w = v6words(s.replace(/%.*$/, ''))
  if (!w) return undefined
  if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff) return { family: 4, words: [w[3]!] }
  return { family: 6, words: w }
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
