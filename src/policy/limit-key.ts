import { formatV6, parseAddr } from './cidr.js'

/**
 * The prefix lengths by which the per-client limits count clients (config `limits`): an IPv6
 * host owns a whole /64 (SLAAC, privacy addresses), so counted per address it would get a fresh
 * budget with each address it gives itself.
 */
export interface LimitPrefixes {
  readonly ipv4Prefix: number
  readonly ipv6Prefix: number
}

/**
 * The key a per-client limit counts `ip` under: at the full length (/32, /128) the address in
 * its canonical form (IPv4-mapped IPv6 as IPv4, RFC 5952, no zone); shorter, its network with the
 * length, `192.0.2.0/24`, `2001:db8:1:2::/64`. IPv4-mapped IPv6 counts as IPv4, a link-local
 * IPv6 address by itself. Text that is not
 * an address comes back as it is. Only a grouped key has a "/" (see `isPrefix`).
 */
export function limitKey(ip: string, p: LimitPrefixes): string {
  const a = parseAddr(ip)
  if (!a) return ip
  if (a.family === 4) {
    const bits = p.ipv4Prefix                        // 8..32: the shift below is never by 32
    const w = (a.words[0]! & (0xffffffff << (32 - bits))) >>> 0
    const text = `${w >>> 24}.${(w >>> 16) & 255}.${(w >>> 8) & 255}.${w & 255}`
    return bits === 32 ? text : `${text}/${bits}`
  }
  // a link-local address (fe80::/10) is not its host's own /64: every host on the link is in
  // fe80::/64 (RFC 4291 §2.5.6), so it is counted by itself
  const bits = a.words[0]! >>> 22 === 0x3fa ? 128 : p.ipv6Prefix
  const g: number[] = []
  for (let i = 0; i < 8; i++) {
    const word = a.words[i >> 1]!
    const group = (i & 1) === 0 ? word >>> 16 : word & 0xffff
    const keep = Math.min(16, Math.max(0, bits - 16 * i))
    g.push(group & ((0xffff << (16 - keep)) & 0xffff))
  }
  const text = formatV6(g)
  return bits === 128 ? text : `${text}/${bits}`
}

/** Whether a key of `limitKey` names a prefix (a group of addresses), not one address. */
export function isPrefix(key: string): boolean {
  return key.includes('/')
}

/**
 * A limit warning's field naming the prefix its client was counted by, beside the address that
 * hit the limit (`client.ip`): `{ [field]: key }` when `key` is a prefix, else nothing.
 */
export function prefixField(field: string, key: string): Record<string, string> {
  return isPrefix(key) ? { [field]: key } : {}
}

/** Client addresses whose key a LimitKeys keeps at hand (then it starts again). */
const MAX_MEMO = 4096

/**
 * `limitKey` for a stream of client addresses (DNS queries, connections): an IPv4 address at /32
 * (the default) is its own key, returned as it is, with no lookup and no allocation; any other
 * address is worked out once and remembered.
 */
export class LimitKeys {
  readonly #memo = new Map<string, string>()
  readonly #v4whole: boolean

  constructor(readonly prefixes: LimitPrefixes) {
    this.#v4whole = prefixes.ipv4Prefix === 32
  }

  key(ip: string): string {
    if (this.#v4whole && !ip.includes(':')) return ip
    let k = this.#memo.get(ip)
    if (k === undefined) {
      if (this.#memo.size >= MAX_MEMO) this.#memo.clear()
      this.#memo.set(ip, k = limitKey(ip, this.prefixes))
    }
    return k
  }
}

/** `prev` while its prefixes are `p`'s (a reload that left them alone), else LimitKeys for `p`. */
export function keysFor(prev: LimitKeys | undefined, p: LimitPrefixes): LimitKeys {
  const q = prev?.prefixes
  return q && q.ipv4Prefix === p.ipv4Prefix && q.ipv6Prefix === p.ipv6Prefix ? prev : new LimitKeys(p)
}
