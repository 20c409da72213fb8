/**
 * The EDNS options that belong to one client (Client Subnet, COOKIE, NSID, dnsmasq's MAC address
 * options): taken out of a query before it goes upstream and is shared through the cache, and read
 * for the machine a trusted resolver in front names (ednsClient).
 */
import { canonicalIp, formatV6 } from '../policy/cidr.js'
import type { Query } from './wire.js'

/** A loopback address as the listeners and ednsClient write it (IPv4-mapped ones as IPv4): 127/8 or ::1. */
export const isLoopbackIp = (ip: string): boolean => ip.startsWith('127.') || ip === '::1'

/**
 * EDNS options that belong to one client and must not reach others through a shared answer:
 * Client Subnet, COOKIE, and NSID (an upstream answers it only to the client that asked, RFC 5001).
 */
const OPT_NSID = 3
const OPT_ECS = 8
const OPT_COOKIE = 10
/**
 * edns-tcp-keepalive (RFC 7828): about one TCP connection, the client's to this server or the
 * upstream's to this one; never sent on (over UDP it is forbidden, §3.2.1/§3.2.2).
 */
const OPT_KEEPALIVE = 11
/** dnsmasq's `--add-mac`: the asking machine's hardware address, six octets (a private-use code, read by Pi-hole too). */
const OPT_MAC = 65001
/** dnsmasq's `--add-mac=text` (`aa:bb:cc:dd:ee:ff`, 17 octets) and `--add-mac=base64` (8 octets): Nominum's device-ID code. */
const OPT_MAC_TEXT = 65073
export const isClientOption = (code: number): boolean =>
  code === OPT_ECS || code === OPT_COOKIE || code === OPT_NSID || code === OPT_MAC || code === OPT_MAC_TEXT || code === OPT_KEEPALIVE

/**
 * The query as it goes upstream: without the EDNS options that belong to its client (Client
 * Subnet, RFC 7871; COOKIE, RFC 7873; NSID, RFC 5001; dnsmasq's MAC address options; TCP
 * keepalive, RFC 7828, which is about its own connection). The answer
 * is cached and shared with every client that asks the same question, and an upstream echoes
 * them: another client would get this one's cookie (and take the answer for a spoof), an answer
 * made for this one's subnet, or the upstream's NSID it did not ask for (while the next asker that
 * does ask would not get it). A machine's address and MAC, which a resolver in front of this one
 * adds for it (ednsClient), are the network's own and do not leave it. `msg` itself when it has
 * none of them. Its options are well formed: parseQuery checked them.
 */
export function withoutClientOptions(msg: Buffer, q: Query): Buffer {
  if (q.optRdata < 0) return msg
  let found = false
  for (let o = q.optRdata; o < q.optEnd; o += 4 + msg.readUInt16BE(o + 2)) {
    const code = msg.readUInt16BE(o)
    if (isClientOption(code)) found = true
  }
  return found ? dropClientOptions(msg, q.optRdata, q.optEnd) : msg
}

/**
 * A copy of `msg` without the client options (isClientOption) of the OPT record whose RDATA is
 * `optRdata`..`optEnd` (its options well formed), its RDLENGTH set to match: for a query going
 * upstream (withoutClientOptions) and a reply coming back (scan.ts withoutReplyClientOptions).
 */
export function dropClientOptions(msg: Buffer, optRdata: number, optEnd: number): Buffer {
  const out = Buffer.allocUnsafe(msg.length)
  let n = msg.copy(out, 0, 0, optRdata)
  for (let o = optRdata; o < optEnd;) {
    const next = o + 4 + msg.readUInt16BE(o + 2)
    if (!isClientOption(msg.readUInt16BE(o))) n += msg.copy(out, n, o, next)
    o = next
  }
  out.writeUInt16BE(n - optRdata, optRdata - 2)   // RDLENGTH
  n += msg.copy(out, n, optEnd)
  return out.subarray(0, n)
}

/** The machine a resolver in front of this one names in a query's EDNS options (ednsClient). */
export interface EdnsClient {
  /** From Client Subnet with the whole address (a /32 or /128): RFC 5952 text, IPv4-mapped as IPv4. */
  readonly ip?: string
  /** From dnsmasq's MAC option, in ECS's notation (`AA-BB-CC-DD-EE-FF`). */
  readonly mac?: string
}

const HEX = '0123456789ABCDEF'
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
const MAC_TEXT = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/i

function macText(octets: ArrayLike<number>): string {
  let s = ''
  for (let i = 0; i < 6; i++) s += (i ? '-' : '') + HEX[octets[i]! >> 4] + HEX[octets[i]! & 15]
  return s
}

/** dnsmasq's base64 MAC: six octets as eight characters of the standard alphabet, no padding. */
function macBase64(text: string): string | undefined {
  const out: number[] = []
  for (let i = 0; i < 8; i += 4) {
    let n = 0
    for (let j = 0; j < 4; j++) {
      const v = B64.indexOf(text[i + j]!)
      if (v < 0) return undefined
      n = n * 64 + v
    }
    out.push(n >> 16, (n >> 8) & 255, n & 255)
  }
  return macText(out)
}

/** Client Subnet with a whole address and scope 0 (RFC 7871 §6), as text; undefined for anything else. */
function ecsAddress(msg: Buffer, o: number, len: number, fromLoopback: boolean): string | undefined {
  if (len < 4 || msg[o + 3] !== 0) return undefined
  const family = msg.readUInt16BE(o)
  const source = msg[o + 2]
  const a = o + 4
  let ip: string
  if (family === 1 && source === 32 && len === 8) {
    ip = `${msg[a]}.${msg[a + 1]}.${msg[a + 2]}.${msg[a + 3]}`
    if (msg[a] === 0) return undefined                              // 0.0.0.0/8: no machine
  } else if (family === 2 && source === 128 && len === 20) {
    const g: number[] = []
    for (let i = 0; i < 16; i += 2) g.push(msg.readUInt16BE(a + i))
    ip = canonicalIp(formatV6(g))                                   // IPv4-mapped comes back as IPv4
    if (ip === '::') return undefined
  } else return undefined
  // a loopback address is the resolver's own machine: it names a client only when that machine is this one
  if (!fromLoopback && isLoopbackIp(ip)) return undefined
  return ip
}

/**
 * The machine a resolver in front of this one says a query is from, read from the options it
 * adds: EDNS Client Subnet with the whole address (dnsmasq `--add-subnet=32,128`, dnsdist
 * `useClientSubnet` with `setECSSourcePrefixV4(32)`, Pi-hole) and dnsmasq's MAC address
 * (`--add-mac`, `--add-mac=text`, `--add-mac=base64`). A shorter prefix names a network, not a
 * machine, and is not taken. The caller trusts the sender (dns.trustEdnsFrom); `fromLoopback`:
 * the sender is on this host, so a loopback address in the option is a machine here. undefined
 * when neither is there. The options are well formed: parseQuery checked them.
 */
export function ednsClient(msg: Buffer, q: Query, fromLoopback: boolean): EdnsClient | undefined {
  let ip: string | undefined
  let mac: string | undefined
  for (let o = q.optRdata; o >= 0 && o < q.optEnd; o += 4 + msg.readUInt16BE(o + 2)) {
    const code = msg.readUInt16BE(o)
    const len = msg.readUInt16BE(o + 2)
    const data = o + 4
    if (code === OPT_ECS) ip = ecsAddress(msg, data, len, fromLoopback) ?? ip
    else if (code === OPT_MAC && len === 6) mac = macText(msg.subarray(data, data + 6))
    else if (code === OPT_MAC_TEXT && (len === 17 || len === 8)) {
      const text = msg.toString('latin1', data, data + len)
      const m = len === 8 ? macBase64(text) : MAC_TEXT.test(text) ? text.toUpperCase().replaceAll(':', '-') : undefined
      mac = m ?? mac
    }
  }
  return ip === undefined && mac === undefined ? undefined : { ip, mac }
}
