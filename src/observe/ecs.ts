import type { Decision, Outcome } from '../policy/types.js'
import { addressLiteral } from '../proxy/address.js'
import { destinationHost, type DecisionEvent } from './types.js'

type Fields = Record<string, unknown>

/** A block the proxy made by its own rules (policy names the setting) on a name no list matched: counted as `refused`. */
export function isRefusal(d: Pick<Decision, 'policy' | 'entry'>): boolean {
  return d.policy !== undefined && d.entry === undefined
}

/**
 * `event.kind`: the actions a responder must look at are alerts; a refusal by the proxy's own
 * safety rules (a port, an internal address) on a name no list matched is an event.
 */
export function eventKind(d: Pick<Decision, 'action' | 'policy' | 'entry'>): 'alert' | 'event' {
  if (isRefusal(d)) return 'event'
  const a = d.action
  return a === 'block' || a === 'sinkhole' || a === 'alert' ? 'alert' : 'event'
}

/**
 * ECS's categorization of a decision (`event.category`, `event.type`): network traffic, a DNS
 * exchange (protocol) or a connection, allowed or denied. What the client got decides: an alert
 * is answered as asked (allowed), a sinkhole capture is always closed (denied).
 */
export function eventType(message: DecisionEvent['message'], action: Outcome): readonly string[] {
  const denied = message === 'sinkhole.capture' || action === 'block' || action === 'sinkhole'
  return [message === 'dns.query' ? 'protocol' : 'connection', denied ? 'denied' : 'allowed']
}
/** `event.category` of every decision, and of the proxy's close line. */
export const CATEGORY: readonly string[] = ['network']

function isPlain(v: unknown): v is Fields {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * Merge `extra` into `into`, object by object (so extra.tunnelguard adds to ours). A dotted key
 * is the path it names (`tunnelguard.sni_status` → tunnelguard: { sni_status }), so that a line
 * has one layout, nested, and `jq .tunnelguard.sni_status` finds what `jq .tunnelguard.group` does.
 */
function merge(into: Fields, extra: Readonly<Fields>): void {
  for (const [key, v] of Object.entries(extra)) {
    const path = key.split('.')
    let at = into
    for (const p of path.slice(0, -1)) {
      const next = at[p]
      at = isPlain(next) ? next : (at[p] = {})
    }
    const k = path[path.length - 1]!
    const cur = at[k]
    if (isPlain(cur) && isPlain(v)) merge(cur, v)
    else at[k] = v
  }
}

/** ECS `related`: the host names a line is about (`hosts`), and every address seen on it (`ip`). */
export interface Related { readonly hosts: string[]; readonly ip: string[] }

/**
 * ECS `related.hosts`: every host name the line is about, so that one SIEM rule on it finds a
 * name whichever field holds it (a Host header or a CNAME target is in no other ECS field): the
 * name asked (DNS question, CONNECT host), the SNI, the URL host, the Host header and inner
 * CONNECT of a request in a tunnel, the name decided on (a CNAME or HTTPS target); lowercased,
 * each once, in that order. ECS `related.ip`: every address seen on the line (ECS: "all of the
 * IPs seen on your event"), so that one search for a machine's address finds the lines where it
 * asked as well as those where it was asked for: the client's (`client.ip`), the peer's that
 * named it (`source.ip`: a resolver or proxy in front), each address literal seen where a name
 * goes (`CONNECT 192.0.2.1:443`, `http://[2001:db8::1]/`, a Host header or SNI with an address:
 * no host name, canonical as destination.ip has it), then the address connected to; each once,
 * in that order. A DNS question and the names decided on it are names, whatever they read like.
 * Built only for a line that is written, from the names the event has.
 */
export function relatedOf(ev: DecisionEvent): Related {
  const r: Related = { hosts: [], ip: [ev.client.ip] }
  addIp(r.ip, ev.extra?.['source.ip'])
  if (ev.dns) addHost(r.hosts, ev.dns.name)
  addName(r, destinationHost(ev.destination))
  addName(r, ev.sni)
  addName(r, ev.urlDomain)
  addName(r, ev.extra?.['tunnelguard.host_header'])
  addName(r, ev.extra?.['tunnelguard.inner_connect'])
  if (ev.dns) addHost(r.hosts, ev.decision.name)
  else addName(r, ev.decision.name)
  addIp(r.ip, ev.destination?.ip)
  return r
}

function addIp(ips: string[], ip: unknown): void {
  if (typeof ip === 'string' && ip !== '' && !ips.includes(ip)) ips.push(ip)
}

function addHost(hosts: string[], n: string): void {
  if (n === '') return
  const h = n.toLowerCase()
  if (!hosts.includes(h)) hosts.push(h)
}

/** A name seen by the proxy: an address literal to `ip`, a name to `hosts`. */
function addName(r: Related, n: unknown): void {
  if (typeof n !== 'string' || n === '') return
  const ip = addressLiteral(n)
  if (ip === undefined) addHost(r.hosts, n)
  else addIp(r.ip, ip)
}

/** `related` as a line has it: no empty member (`ip` never is: the client's address is in it). */
function relatedFields(r: Related): Fields {
  return r.hosts.length > 0 ? { hosts: r.hosts, ip: r.ip } : { ip: r.ip }
}

/** A decision event as ECS fields, nested (`client: { ip, port }`), ready for one log line. */
export function toEcs(ev: DecisionEvent): Fields {
  const d = ev.decision
  const event: Fields = { action: d.action, kind: eventKind(d) }
  if (ev.outcome !== undefined) event.outcome = ev.outcome
  event.category = CATEGORY
  event.type = eventType(ev.message, d.action)
  event.duration = ev.durationNs
  const out: Fields = {
    message: ev.message,
    event,
    // port 0: not known (a client named by X-Forwarded-For), so not written
    client: ev.client.port === 0 ? { ip: ev.client.ip } : { ip: ev.client.ip, port: ev.client.port },
    network: { transport: ev.transport },
  }
  const tg: Fields = { group: d.group, matched_on: d.where, reason: d.reason }
  if (ev.dns) {
    const question: Fields = { name: ev.dns.name, type: ev.dns.type }
    if (ev.dns.class !== undefined) question.class = ev.dns.class
    out.dns = { question, response_code: ev.dns.rcode }
    if (d.name !== ev.dns.name) tg.matched_name = d.name
    if (ev.dns.upstream !== undefined) tg.upstream = ev.dns.upstream
    if (ev.dns.cacheHit !== undefined) tg.cache_hit = ev.dns.cacheHit
  } else {
    const asked = destinationHost(ev.destination) ?? ev.sni ?? ev.urlDomain
    if (d.name !== asked?.toLowerCase()) tg.matched_name = d.name
  }
  if (ev.destination) {
    const dst: Fields = {}
    // names as the decisions have them, lowercased (keyword fields match by case: a rule on
    // `destination.domain: *.ngrok-free.app` would miss `X.NGROK-FREE.APP`, and so would one on the SNI or URL host)
    if (ev.destination.domain !== undefined) dst.domain = ev.destination.domain.toLowerCase()
    if (ev.destination.ip !== undefined) dst.ip = ev.destination.ip
    if (ev.destination.port !== undefined) dst.port = ev.destination.port
    out.destination = dst
  }
  if (ev.sni !== undefined) out.tls = { client: { server_name: ev.sni.toLowerCase() } }
  if (ev.urlDomain !== undefined) out.url = { domain: ev.urlDomain.toLowerCase() }
  if (d.entry || d.list !== undefined) {
    const rule: Fields = {}
    if (d.entry) rule.name = d.entry.pattern
    if (d.list !== undefined) rule.ruleset = d.list
    if (d.sigma) {
      rule.id = d.sigma.id
      rule.author = d.sigma.author
      rule.description = d.sigma.title
    }
    out.rule = rule
  }
  if (d.unparseable) tg.unparseable = true
  if (d.policy !== undefined) tg.policy = d.policy
  out.tunnelguard = tg
  out.related = relatedFields(relatedOf(ev))
  if (ev.extra) merge(out, ev.extra)
  return out
}
