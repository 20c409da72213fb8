import type { Outcome } from '../policy/types.js'
import { JsonBytes, bytes } from './json-bytes.js'
import type { DecisionEvent } from './types.js'

type Fields = Record<string, unknown>

/** `event.kind`: the actions a responder must look at are alerts. */
export function eventKind(action: Outcome): 'alert' | 'event' {
  return action === 'block' || action === 'sinkhole' || action === 'alert' ? 'alert' : 'event'
}

function isPlain(v: unknown): v is Fields {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Merge `extra` into `into`, object by object (so extra.tunnelguard adds to ours). */
function merge(into: Fields, extra: Readonly<Fields>): void {
  for (const [k, v] of Object.entries(extra)) {
    const cur = into[k]
    if (isPlain(cur) && isPlain(v)) merge(cur, v)
    else into[k] = v
  }
}

/** A decision event as ECS fields, nested (`client: { ip, port }`), ready for one log line. */
export function toEcs(ev: DecisionEvent): Fields {
  const d = ev.decision
  const out: Fields = {
    message: ev.message,
    event: { action: d.action, kind: eventKind(d.action), duration: ev.durationNs },
    client: { ip: ev.client.ip, port: ev.client.port },
    network: { transport: ev.transport },
  }
  const tg: Fields = { group: d.group, matched_on: d.where, reason: d.reason }
  if (ev.dns) {
    out.dns = { question: { name: ev.dns.name, type: ev.dns.type }, response_code: ev.dns.rcode }
    if (d.name !== ev.dns.name) tg.matched_name = d.name
    if (ev.dns.upstream !== undefined) tg.upstream = ev.dns.upstream
    if (ev.dns.cacheHit !== undefined) tg.cache_hit = ev.dns.cacheHit
  } else {
    const asked = ev.destination?.domain ?? ev.sni ?? ev.urlDomain
    if (d.name !== asked) tg.matched_name = d.name
  }
  if (ev.destination) {
    const dst: Fields = {}
    if (ev.destination.domain !== undefined) dst.domain = ev.destination.domain
    if (ev.destination.ip !== undefined) dst.ip = ev.destination.ip
    if (ev.destination.port !== undefined) dst.port = ev.destination.port
    out.destination = dst
  }
  if (ev.sni !== undefined) out.tls = { client: { server_name: ev.sni } }
  if (ev.urlDomain !== undefined) out.url = { domain: ev.urlDomain }
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
  out.tunnelguard = tg
  if (ev.extra) merge(out, ev.extra)
  return out
}

const K = {
  message: bytes('"message":'),
  action: bytes(',"event":{"action":'),
  kind: bytes(',"kind":'),
  duration: bytes(',"duration":'),
  client: bytes('},"client":'),
  ip: bytes('{"ip":'),
  port: bytes(',"port":'),
  transport: bytes(',"network":{"transport":'),
  dnsName: bytes(',"dns":{"question":{"name":'),
  dnsType: bytes(',"type":'),
  rcode: bytes('},"response_code":'),
  destination: bytes(',"destination":{'),
  destDomain: bytes(',"domain":'),
  destIp: bytes(',"ip":'),
  destPort: bytes(',"port":'),
  tls: bytes(',"tls":{"client":{"server_name":'),
  url: bytes(',"url":{"domain":'),
  rule: bytes(',"rule":{'),
  ruleName: bytes(',"name":'),
  ruleset: bytes(',"ruleset":'),
  ruleId: bytes(',"id":'),
  ruleAuthor: bytes(',"author":'),
  ruleDescription: bytes(',"description":'),
  group: bytes(',"tunnelguard":{"group":'),
  matchedOn: bytes(',"matched_on":'),
  reason: bytes(',"reason":'),
  matchedName: bytes(',"matched_name":'),
  upstream: bytes(',"upstream":'),
  cacheHit: bytes(',"cache_hit":'),
  unparseable: bytes(',"unparseable":true'),
  close1: bytes('}'),
  close2: bytes('}}'),
}

/**
 * `,"key":` opening an object's member: the first member of an object (`first`) goes without
 * its comma. Returns false, for the next member.
 */
function member(w: JsonBytes, key: Uint8Array, first: boolean): false {
  w.rawFrom(key, first ? 1 : 0)
  return false
}

/**
 * The text of `JSON.stringify(toEcs(ev))` without its opening brace, written as UTF-8 into `w`: a
 * blocked query logs a line, and building the ECS objects to stringify them, or the line as a
 * string to encode it, cost more than the rest of the query. For events without `extra` (toEcs
 * merges that); `client` is the client object's JSON when names were added to it. The test holds
 * the two equal over generated events.
 */
export function writeEcsBody(w: JsonBytes, ev: DecisionEvent, client?: string): void {
  const d = ev.decision
  w.raw(K.message); w.str(ev.message)
  w.raw(K.action); w.str(d.action); w.raw(K.kind); w.str(eventKind(d.action)); w.raw(K.duration); w.num(ev.durationNs)
  w.raw(K.client)
  if (client === undefined) { w.raw(K.ip); w.str(ev.client.ip); w.raw(K.port); w.num(ev.client.port); w.raw(K.close1) } else w.json(client)
  w.raw(K.transport); w.str(ev.transport); w.raw(K.close1)
  const dns = ev.dns
  if (dns) {
    w.raw(K.dnsName); w.str(dns.name); w.raw(K.dnsType); w.str(dns.type); w.raw(K.rcode); w.str(dns.rcode); w.raw(K.close1)
  }
  const dst = ev.destination
  if (dst) {
    w.raw(K.destination)
    let first = true
    if (dst.domain !== undefined) { first = member(w, K.destDomain, first); w.str(dst.domain) }
    if (dst.ip !== undefined) { first = member(w, K.destIp, first); w.str(dst.ip) }
    if (dst.port !== undefined) { member(w, K.destPort, first); w.num(dst.port) }
    w.raw(K.close1)
  }
  if (ev.sni !== undefined) { w.raw(K.tls); w.str(ev.sni); w.raw(K.close2) }
  if (ev.urlDomain !== undefined) { w.raw(K.url); w.str(ev.urlDomain); w.raw(K.close1) }
  if (d.entry || d.list !== undefined) {
    w.raw(K.rule)
    let first = true
    if (d.entry) { first = member(w, K.ruleName, first); w.str(d.entry.pattern) }
    if (d.list !== undefined) { first = member(w, K.ruleset, first); w.str(d.list) }
    const sigma = d.sigma
    if (sigma) {
      if (sigma.id !== undefined) { first = member(w, K.ruleId, first); w.str(sigma.id) }
      if (sigma.author !== undefined) { first = member(w, K.ruleAuthor, first); w.str(sigma.author) }
      if (sigma.title !== undefined) { member(w, K.ruleDescription, first); w.str(sigma.title) }
    }
    w.raw(K.close1)
  }
  w.raw(K.group); w.str(d.group); w.raw(K.matchedOn); w.str(d.where); w.raw(K.reason); w.str(d.reason)
  if (dns) {
    if (d.name !== dns.name) { w.raw(K.matchedName); w.str(d.name) }
    if (dns.upstream !== undefined) { w.raw(K.upstream); w.str(dns.upstream) }
    if (dns.cacheHit !== undefined) { w.raw(K.cacheHit); w.bool(dns.cacheHit) }
  } else if (d.name !== (dst?.domain ?? ev.sni ?? ev.urlDomain)) {
    w.raw(K.matchedName); w.str(d.name)
  }
  if (d.unparseable) w.raw(K.unparseable)
  w.raw(K.close2)
}

const scratch = new JsonBytes()

/** `writeEcsBody` as a string. */
export function ecsBody(ev: DecisionEvent, client?: string): string {
  scratch.reset()
  writeEcsBody(scratch, ev, client)
  return scratch.toString()
}
