import { isIP } from 'node:net'
import { canonicalIp } from '../policy/cidr.js'
import type { ConfigProblem } from './errors.js'
import { splitHostPort } from './endpoints.js'
import type { ParsedConfig } from './schema.js'

/**
 * Why no `sinkhole.listen` address can receive the connections that follow a sinkhole, or
 * undefined when one can (or none is configured). DNS answers a sinkholed A with sinkhole.ipv4 and
 * AAAA with sinkhole.ipv6, so clients connect there: a listener receives them when it is on that
 * address, or on the wildcard of its family (`::` also takes IPv4, as Node listens dual-stack) and
 * the address is a real one: 0.0.0.0 and `::` send clients nowhere (to themselves, in fact). A
 * listener named by a host name cannot be compared, so it counts as able.
 */
export function sinkholeCaptureProblem(s: Pick<ParsedConfig['sinkhole'], 'ipv4' | 'ipv6' | 'listen'>): string | undefined {
  if (s.listen.length === 0) return undefined
  const v4 = s.ipv4 === '0.0.0.0' ? undefined : s.ipv4
  const v6 = canonicalIp(s.ipv6) === '::' ? undefined : canonicalIp(s.ipv6)
  const hosts = s.listen.map(l => splitHostPort(l)!.host)
  const receives = (host: string): boolean => {
    if (isIP(host) === 0) return true
    const h = canonicalIp(host)
    if (h === '0.0.0.0') return v4 !== undefined
    if (h === '::') return v4 !== undefined || v6 !== undefined
    return h === v4 || h === v6
  }
  if (hosts.some(receives)) return undefined
  const nowhere = [v4 === undefined ? '0.0.0.0' : '', v6 === undefined ? '::' : ''].filter(Boolean)
  const own = [...new Set(hosts.map(canonicalIp).filter(h => h !== '0.0.0.0' && h !== '::'))]
  const own4 = own.find(h => isIP(h) === 4)
  const own6 = own.find(h => isIP(h) === 6)
  const set = [own4 && `sinkhole.ipv4: ${own4}`, own6 && `sinkhole.ipv6: "${own6}"`].filter(Boolean)
  const wild6 = hosts.some(h => canonicalIp(h) === '::')
  const fix = set.length > 0
    ? `set ${set.join(' or ')}, the listener's own address (one clients can reach)`
    : `set sinkhole.ipv4${wild6 ? ' (or sinkhole.ipv6)' : ''} to an address of this host that clients can reach (a listener on ${wild6 ? '::' : '0.0.0.0'} takes it)`
  return `nothing will reach the capture listener${s.listen.length === 1 ? '' : 's'} on ${s.listen.join(', ')}: `
    + `DNS answers sinkholed names with ${s.ipv4} (sinkhole.ipv4) and ${s.ipv6} (sinkhole.ipv6), so clients connect there`
    + `${nowhere.length === 0 ? '' : ` (${nowhere.join(' and ')} lead${nowhere.length === 1 ? 's' : ''} nowhere)`}; ${fix}`
}

/**
 * What each log level above info leaves out of the evidence: the lists' decisions (block, sinkhole,
 * alert: event.kind alert) are at warn, the rest (allow, pass, the proxy's own refusals) at info.
 */
const LOST: Readonly<Record<string, string>> = {
  warn: 'only the lists\' decisions are written (block, sinkhole, alert: at warn); the lines of allows, of passes (log.queries: all) and of the proxy\'s own refusals (a port, an internal address: at info) are not',
  error: 'no decision line is written, not even an alert\'s',
}

/** The warning of a config that listens on nothing (dropped when `--dns` or `--proxy` give it listeners). */
export const NO_LISTENERS = 'dns.listen, proxy.listen and sinkhole.listen are all empty: serve would answer no query and proxy nothing; give dns.listen or proxy.listen an address'

/** What a valid config should not be left as, though it runs: each with the path it is about. */
export function configWarnings(c: ParsedConfig): ConfigProblem[] {
  const out: ConfigProblem[] = []
  const sinkhole = sinkholeCaptureProblem(c.sinkhole)
  if (sinkhole !== undefined) out.push({ path: ['sinkhole', 'listen'], message: sinkhole })
  if (c.log.level !== 'info' && c.log.level !== 'debug' && c.log.level !== 'trace') {
    const lost = LOST[c.log.level] ?? LOST.error!
    out.push({ path: ['log', 'level'], message: `at ${c.log.level}, ${lost}: which machine asked for what is not recorded; set log.level: info (the default)` })
  }
  c.dns.listen.forEach((l, i) => {
    const hp = splitHostPort(l)!
    if (canonicalIp(hp.host) !== '::') return
    // an IPv4 listener on the same port that other machines reach (loopback takes only this host);
    // an IPv4-mapped address ([::ffff:10.0.0.1]) listens on its IPv4 address
    const v4 = c.dns.listen.some(o => {
      const x = splitHostPort(o)!
      const ip = canonicalIp(x.host)
      return x.port === hp.port && isIP(ip) === 4 && !ip.startsWith('127.')
    })
    if (!v4) {
      out.push({
        path: ['dns', 'listen', i],
        message: `${l} takes IPv6 clients only (a DNS listener on an IPv6 address is IPv6-only, as unbound's and BIND's are, unlike proxy.listen); `
          + `IPv4 clients get no answer and move on to their next resolver: add "0.0.0.0:${hp.port}" (or an IPv4 address of this host) to dns.listen`,
      })
    }
  })
  // `lists:` left out is the shipped lists; written empty, it is none: every name passes
  if (c.lists !== undefined && Object.keys(c.lists).length === 0) {
    out.push({ path: ['lists'], message: 'lists: {} names no list: nothing is blocked, sinkholed or alerted on; leave lists: out for the shipped lists, or name one (ngrok: { files: [blocklists/ngrok.txt], action: sinkhole })' })
  }
  if (c.dns.listen.length === 0 && c.proxy.listen.length === 0 && c.sinkhole.listen.length === 0) {
    out.push({ path: ['dns', 'listen'], message: NO_LISTENERS })
  }
  return out
}
