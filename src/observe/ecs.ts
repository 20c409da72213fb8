import type { Outcome } from '../policy/types.js'
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

/** A JSON string literal: the text itself when nothing in it needs escaping (the usual name or reason). */
function str(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(s)
  }
  return `"${s}"`
}

/** `,"key":value` for a string that may be absent (JSON.stringify leaves undefined out). */
function opt(key: string, v: string | undefined): string {
  return v === undefined ? '' : `,"${key}":${str(v)}`
}

/** A member list without its leading comma, wrapped as an object. */
function obj(members: string): string {
  return `{${members.slice(1)}}`
}

/**
 * The text of `JSON.stringify(toEcs(ev))` without its opening brace, written directly: a blocked
 * query logs a line, and building the ECS objects to stringify them cost more than the rest of
 * the line. For events without `extra` (toEcs merges that); `client` is the client object's JSON
 * when names were added to it. The test holds the two equal over generated events.
 */
export function ecsBody(ev: DecisionEvent, client?: string): string {
  const d = ev.decision
  let s = `"message":${str(ev.message)},"event":{"action":"${d.action}","kind":"${eventKind(d.action)}","duration":${JSON.stringify(ev.durationNs)}}`
    + `,"client":${client ?? `{"ip":${str(ev.client.ip)},"port":${JSON.stringify(ev.client.port)}}`},"network":{"transport":"${ev.transport}"}`
  let tg = `,"group":${str(d.group)},"matched_on":"${d.where}","reason":${str(d.reason)}`
  if (ev.dns) {
    s += `,"dns":{"question":{"name":${str(ev.dns.name)},"type":${str(ev.dns.type)}},"response_code":${str(ev.dns.rcode)}}`
    if (d.name !== ev.dns.name) tg += `,"matched_name":${str(d.name)}`
    tg += opt('upstream', ev.dns.upstream)
    if (ev.dns.cacheHit !== undefined) tg += `,"cache_hit":${ev.dns.cacheHit}`
  } else {
    const asked = ev.destination?.domain ?? ev.sni ?? ev.urlDomain
    if (d.name !== asked) tg += `,"matched_name":${str(d.name)}`
  }
  if (ev.destination) {
    const dst = ev.destination
    s += `,"destination":${obj(opt('domain', dst.domain) + opt('ip', dst.ip) + (dst.port === undefined ? '' : `,"port":${JSON.stringify(dst.port)}`))}`
  }
  if (ev.sni !== undefined) s += `,"tls":{"client":{"server_name":${str(ev.sni)}}}`
  if (ev.urlDomain !== undefined) s += `,"url":{"domain":${str(ev.urlDomain)}}`
  if (d.entry || d.list !== undefined) {
    let rule = (d.entry ? `,"name":${str(d.entry.pattern)}` : '') + opt('ruleset', d.list)
    if (d.sigma) rule += opt('id', d.sigma.id) + opt('author', d.sigma.author) + opt('description', d.sigma.title)
    s += `,"rule":${obj(rule)}`
  }
  if (d.unparseable) tg += ',"unparseable":true'
  return `${s},"tunnelguard":${obj(tg)}}`
}
