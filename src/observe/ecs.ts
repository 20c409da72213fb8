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
