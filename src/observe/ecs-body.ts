/**
 * A decision event's ECS line written straight as UTF-8 bytes (`writeEcsBody`, and `ecsBody` its
 * string): the same text as `JSON.stringify(toEcs(ev))` (ecs.ts), from pre-encoded pieces.
 */
import type { Entry, SigmaRef } from '../match/types.js'
import { OUTCOMES, WHERES, type Outcome } from '../policy/types.js'
import { CATEGORY, eventKind, eventType, relatedOf } from './ecs.js'
import { JsonBytes, bytes } from './json-bytes.js'
import { destinationHost, type DecisionEvent, type EventOutcome } from './types.js'

const MESSAGES: readonly DecisionEvent['message'][] = ['dns.query', 'proxy.connect', 'proxy.http', 'sinkhole.capture']
const TRANSPORTS: readonly DecisionEvent['transport'][] = ['udp', 'tcp']

/** A pre-encoded piece for each value of `keys`. */
function table<T extends string>(keys: readonly T[], text: (k: T) => string): Readonly<Record<T, Uint8Array>> {
  return Object.fromEntries(keys.map(k => [k, bytes(text(k))])) as Record<T, Uint8Array>
}

type Heads = Readonly<Record<DecisionEvent['message'], Readonly<Record<Outcome, Uint8Array>>>>
/**
 * Up to the duration's value: `"message":…,"event":{"action":…,"kind":…,["outcome":…,]"category":…,"type":…,"duration":`,
 * by message and action.
 */
const eventHead = (policy: boolean, outcome?: EventOutcome): Heads => Object.fromEntries(MESSAGES.map(m => [m, table(OUTCOMES, a =>
  `"message":${JSON.stringify(m)},"event":{"action":${JSON.stringify(a)},"kind":${JSON.stringify(eventKind({ action: a, policy: policy ? '' : undefined }))},` +
  `${outcome === undefined ? '' : `"outcome":${JSON.stringify(outcome)},`}` +
  `"category":${JSON.stringify(CATEGORY)},"type":${JSON.stringify(eventType(m, a))},"duration":`)])) as Heads
const EVENT = eventHead(false)
/** The same for a refusal by the proxy's safety rules alone (an event, see eventKind). */
const EVENT_POLICY = eventHead(true)
/** The same with event.outcome, [not a refusal, a refusal] by outcome: a line without one (a blocked query) looks no further. */
const EVENT_OUTCOME: Readonly<Record<EventOutcome, readonly [Heads, Heads]>> = {
  success: [eventHead(false, 'success'), eventHead(true, 'success')],
  failure: [eventHead(false, 'failure'), eventHead(true, 'failure')],
}
/** After the client's port: its close and the network object, by transport. */
const NETWORK_AFTER_PORT = table(TRANSPORTS, t => `},"network":{"transport":${JSON.stringify(t)}}`)
/** After the client's JSON: the network object, by transport. */
const NETWORK = table(TRANSPORTS, t => `,"network":{"transport":${JSON.stringify(t)}}`)
/** After the group's value: where the name was seen, up to the reason's value. */
const MATCHED_ON = table(WHERES, w => `,"matched_on":${JSON.stringify(w)},"reason":`)

const K = {
  clientIp: bytes('},"client":{"ip":'),
  client: bytes('},"client":'),
  port: bytes(',"port":'),
  dnsName: bytes(',"dns":{"question":{"name":'),
  dnsType: bytes(',"type":'),
  dnsClass: bytes(',"class":'),
  rcode: bytes('},"response_code":'),
  destination: bytes(',"destination":{'),
  tls: bytes(',"tls":{"client":{"server_name":'),
  url: bytes(',"url":{"domain":'),
  group: bytes(',"tunnelguard":{"group":'),
  matchedName: bytes(',"matched_name":'),
  upstream: bytes(',"upstream":'),
  cacheHit: bytes(',"cache_hit":'),
  unparseable: bytes(',"unparseable":true'),
  policy: bytes(',"policy":'),
  hosts: bytes(',"related":{"hosts":['),
  ips: bytes('],"ip":['),
  ipsOnly: bytes(',"related":{"ip":['),
  comma: bytes(','),
  hostsEnd: bytes(']}'),
  close1: bytes('}'),
  close2: bytes('}}'),
}

/** A member's key, `"key":`, and the same after a comma. */
interface Key { readonly first: Uint8Array; readonly next: Uint8Array }
const key = (k: string): Key => ({ first: bytes(`"${k}":`), next: bytes(`,"${k}":`) })
const KEYS = {
  domain: key('domain'), ip: key('ip'), port: key('port'),
  name: key('name'), ruleset: key('ruleset'), id: key('id'), author: key('author'), description: key('description'),
}

/** The rule object's members of a decision, or an entry's (`,"rule":{…}`, written once per entry). */
function writeRule(w: JsonBytes, entry: Entry | undefined, list: string | undefined, sigma: SigmaRef | undefined): void {
  w.raw(RULE_OPEN)
  let first = true
  if (entry) { w.raw(KEYS.name.first); w.str(entry.pattern); first = false }
  if (list !== undefined) { w.raw(first ? KEYS.ruleset.first : KEYS.ruleset.next); w.str(list); first = false }
  if (sigma) {
    // written only after the entry's name or the list: none of these is the first member
    if (sigma.id !== undefined) { w.raw(KEYS.id.next); w.str(sigma.id) }
    if (sigma.author !== undefined) { w.raw(KEYS.author.next); w.str(sigma.author) }
    if (sigma.title !== undefined) { w.raw(KEYS.description.next); w.str(sigma.title) }
  }
  w.raw(K.close1)
}
const RULE_OPEN = bytes(',"rule":{')

/** An entry's rule object as bytes, for decisions that name the entry's own list and Sigma rule. */
const entryRules = new WeakMap<Entry, Uint8Array>()
const ruleScratch = new JsonBytes()
function entryRule(e: Entry): Uint8Array {
  let b = entryRules.get(e)
  if (!b) {
    ruleScratch.reset()
    writeRule(ruleScratch, e, e.list, e.sigma)
    b = Buffer.from(ruleScratch.buf.subarray(0, ruleScratch.n))
    entryRules.set(e, b)
  }
  return b
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
  const e = d.entry
  const outcome = ev.outcome
  const heads = outcome === undefined ? (d.policy !== undefined && !e ? EVENT_POLICY : EVENT) : EVENT_OUTCOME[outcome][d.policy !== undefined && !e ? 1 : 0]
  w.raw(heads[ev.message][d.action]); w.num(ev.durationNs)
  if (client === undefined) {
    w.raw(K.clientIp); w.str(ev.client.ip)
    if (ev.client.port !== 0) { w.raw(K.port); w.num(ev.client.port) }
    w.raw(NETWORK_AFTER_PORT[ev.transport])
  } else {
    w.raw(K.client); w.json(client); w.raw(NETWORK[ev.transport])
  }
  const dns = ev.dns
  if (dns) {
    w.raw(K.dnsName); w.str(dns.name); w.raw(K.dnsType); w.str(dns.type)
    if (dns.class !== undefined) { w.raw(K.dnsClass); w.str(dns.class) }
    w.raw(K.rcode); w.str(dns.rcode); w.raw(K.close1)
  }
  const dst = ev.destination
  if (dst) {
    w.raw(K.destination)
    let first = true
    if (dst.domain !== undefined) { w.raw(KEYS.domain.first); w.str(dst.domain.toLowerCase()); first = false }
    if (dst.ip !== undefined) { w.raw(first ? KEYS.ip.first : KEYS.ip.next); w.str(dst.ip); first = false }
    if (dst.port !== undefined) { w.raw(first ? KEYS.port.first : KEYS.port.next); w.num(dst.port) }
    w.raw(K.close1)
  }
  // names lowercased, as toEcs writes them
  if (ev.sni !== undefined) { w.raw(K.tls); w.str(ev.sni.toLowerCase()); w.raw(K.close2) }
  if (ev.urlDomain !== undefined) { w.raw(K.url); w.str(ev.urlDomain.toLowerCase()); w.raw(K.close1) }
  if (e && d.list === e.list && d.sigma === e.sigma) w.raw(entryRule(e))
  else if (e || d.list !== undefined) writeRule(w, e, d.list, d.sigma)
  w.raw(K.group); w.str(d.group); w.raw(MATCHED_ON[d.where])
  if (d.tail === undefined || !e || !reasonOf(w, d.action, d.name, e, d.tail)) w.str(d.reason)
  if (dns) {
    if (d.name !== dns.name) { w.raw(K.matchedName); w.str(d.name) }
    if (dns.upstream !== undefined) { w.raw(K.upstream); w.str(dns.upstream) }
    if (dns.cacheHit !== undefined) { w.raw(K.cacheHit); w.bool(dns.cacheHit) }
  } else if (d.name !== (destinationHost(dst) ?? ev.sni ?? ev.urlDomain)?.toLowerCase()) {
    w.raw(K.matchedName); w.str(d.name)
  }
  if (d.unparseable) w.raw(K.unparseable)
  if (d.policy !== undefined) { w.raw(K.policy); w.str(d.policy) }
  w.raw(K.close1)
  if (dns && !dst && ev.sni === undefined && ev.urlDomain === undefined) {
    // a blocked query: relatedOf's question and name decided on, and the client's address, with no array built
    const q = dns.name.toLowerCase()
    const m = d.name.toLowerCase()
    const two = m !== q && m !== ''
    if (q !== '') { w.raw(K.hosts); w.str(q); if (two) { w.raw(K.comma); w.str(m) }; w.raw(K.ips) }
    else if (two) { w.raw(K.hosts); w.str(m); w.raw(K.ips) }
    else w.raw(K.ipsOnly)
    w.str(ev.client.ip); w.raw(K.hostsEnd)
  } else {
    const { hosts, ip } = relatedOf(ev)
    for (let i = 0; i < hosts.length; i++) { w.raw(i === 0 ? K.hosts : K.comma); w.str(hosts[i]!) }
    for (let i = 0; i < ip.length; i++) { w.raw(i > 0 ? K.comma : hosts.length > 0 ? K.ips : K.ipsOnly); w.str(ip[i]!) }
    w.raw(K.hostsEnd)                                // ip is never empty: the client's address
  }
  w.raw(K.close1)
}

/** `"block: ` and the like: the start of a reason string literal, per action. */
const REASON_HEAD = new Map<string, Uint8Array>()
/** A tail's string literal from its first character to its closing quote, per entry. */
const entryTails = new WeakMap<Entry, { readonly tail: string; readonly bytes: Uint8Array }>()

/**
 * Write the reason `${action}: ${name}${tail}` (the form a decision with a tail has) as one string
 * literal from its pieces: the head per action and the tail per entry are encoded once, the name
 * is copied. The reason itself, a string of three pieces, is then never flattened or scanned.
 * False, with nothing written, when the name has anything to escape.
 */
function reasonOf(w: JsonBytes, action: string, name: string, e: Entry, tail: string): boolean {
  let head = REASON_HEAD.get(action)
  if (head === undefined) REASON_HEAD.set(action, head = bytes(JSON.stringify(`${action}: `).slice(0, -1)))
  let t = entryTails.get(e)
  if (t === undefined || t.tail !== tail) entryTails.set(e, t = { tail, bytes: Buffer.from(JSON.stringify(tail).slice(1), 'utf8') })
  const at = w.n
  w.raw(head)
  if (!w.plain(name)) {
    w.n = at
    return false
  }
  w.raw(t.bytes)
  return true
}

const scratch = new JsonBytes()

/** `writeEcsBody` as a string. */
export function ecsBody(ev: DecisionEvent, client?: string): string {
  scratch.reset()
  writeEcsBody(scratch, ev, client)
  return scratch.toString()
}
