import type { Entry } from '../match/types.js'
import { SEVERITY, type Decision } from '../policy/types.js'
import type { Config, Snapshot } from '../snapshot-types.js'
import { addressBytes, buildReply, record, soaRecord, zoneOffset } from './build.js'
import { RCODE, type Query } from './wire.js'

const TYPE_A = 1
const TYPE_AAAA = 28
const CLASS_IN = 1

export const DOH_CANARY = 'use-application-dns.net'
export const DDR_NAME = '_dns.resolver.arpa'

/** What the configured actions answer with, built once per `config.sinkhole` / `config.dns`. */
export interface AnswerSettings {
  /** The sinkhole A and AAAA records and the SOA of negative answers, TTL `sinkhole.ttl`, built once. */
  readonly a: Buffer
  readonly aaaa: Buffer
  readonly soa: Buffer
  readonly blockResponse: Config['dns']['blockResponse']
}

export function answerSettings(config: Config): AnswerSettings {
  const ttl = Math.floor(config.sinkhole.ttl / 1000)
  return {
    a: record(TYPE_A, ttl, addressBytes(config.sinkhole.ipv4, 4)),
    aaaa: record(TYPE_AAAA, ttl, addressBytes(config.sinkhole.ipv6, 16)),
    soa: soaRecord(ttl),
    blockResponse: config.dns.blockResponse,
  }
}

/** The EDE text of a blocked answer: which list and entry, and the CNAME target when that matched. */
export function blockedText(d: Decision): string {
  const what = d.entry ? `${d.entry.pattern} in list ${d.list}` : d.reason
  return d.where === 'cname' ? `blocked by tunnelguard: ${what} (via ${d.name})` : `blocked by tunnelguard: ${what}`
}

/**
 * The EDE text of a question's own match, encoded once per entry: the matcher returns the same Entry
 * object for every match, and a decision's list is its entry's list, so the text depends on the entry alone.
 */
const edeOfEntry = new WeakMap<Entry, Buffer>()

function edeBytes(d: Decision): Buffer {
  const e = d.entry
  if (e === undefined || d.where !== 'qname') return Buffer.from(blockedText(d))
  let b = edeOfEntry.get(e)
  if (b === undefined) { b = Buffer.from(blockedText(d)); edeOfEntry.set(e, b) }
  return b
}

/** The answer for a block or sinkhole decision: the reply bytes and its rcode. */
export function actionReply(query: Buffer, q: Query, d: Decision, s: AnswerSettings): { reply: Buffer; rcode: number } {
  const ede = edeBytes(d)
  // the SOA of a negative answer is the listed zone's: owned by the entry's name in the question
  // (a match through a CNAME names no zone in the question: the question name owns it)
  const authorityOwner = d.entry !== undefined && d.where === 'qname' ? zoneOffset(query, d.entry.name) : undefined
  if (d.action === 'sinkhole') {
    if (q.qclass === CLASS_IN && q.qtype === TYPE_A) {
      return { reply: buildReply(query, q, RCODE.NOERROR, { answer: s.a, ede }), rcode: RCODE.NOERROR }
    }
    if (q.qclass === CLASS_IN && q.qtype === TYPE_AAAA) {
      return { reply: buildReply(query, q, RCODE.NOERROR, { answer: s.aaaa, ede }), rcode: RCODE.NOERROR }
    }
    return { reply: buildReply(query, q, RCODE.NOERROR, { authority: s.soa, authorityOwner, ede }), rcode: RCODE.NOERROR }
  }
  switch (s.blockResponse) {
    case 'refused': return { reply: buildReply(query, q, RCODE.REFUSED, { ede }), rcode: RCODE.REFUSED }
    case 'nodata': return { reply: buildReply(query, q, RCODE.NOERROR, { authority: s.soa, authorityOwner, ede }), rcode: RCODE.NOERROR }
    default: return { reply: buildReply(query, q, RCODE.NXDOMAIN, { authority: s.soa, authorityOwner, ede }), rcode: RCODE.NXDOMAIN }
  }
}

/** A name DNS answers itself, whatever the upstreams say: what it answers, the setting, and why. */
export interface Bypass {
  readonly rcode: 'NXDOMAIN' | 'NODATA'
  readonly setting: 'dns.dohCanary' | 'dns.blockDdr'
  readonly reason: string
}

const CANARY: Bypass = { rcode: 'NXDOMAIN', setting: 'dns.dohCanary', reason: 'the DoH canary: answered NXDOMAIN here (dns.dohCanary)' }
const DDR: Bypass = { rcode: 'NODATA', setting: 'dns.blockDdr', reason: 'DDR discovery: answered NODATA here (dns.blockDdr)' }

/**
 * Whether DNS answers `name` (normalized) itself under `config` (the answer bypassReply builds),
 * for a query the lists do not block or sinkhole: `check` says so too.
 */
export function bypassOf(name: string, config: Config): Bypass | undefined {
  if (name === DOH_CANARY && config.dns.dohCanary) return CANARY
  if (name === DDR_NAME && config.dns.blockDdr) return DDR
  return undefined
}

/**
 * Answers that keep clients on this resolver: the DoH canary gets NXDOMAIN (browsers then keep
 * automatic DoH off) and the DDR name gets NODATA (no upgrade to an encrypted resolver).
 */
export function bypassReply(query: Buffer, q: Query, config: Config, s: AnswerSettings): { reply: Buffer; rcode: number; reason: string } | undefined {
  const b = bypassOf(q.name, config)
  if (b === undefined) return undefined
  const rcode = b.rcode === 'NXDOMAIN' ? RCODE.NXDOMAIN : RCODE.NOERROR
  return { reply: buildReply(query, q, rcode, { authority: s.soa }), rcode, reason: b.reason }
}

/** The worst of the question's decision and those of the answer's targets (CNAME, DNAME, SVCB, SRV; an allowed question stays allowed). */
export function worst(snap: Snapshot, clientIp: string, decision: Decision, targets: readonly string[]): Decision {
  if (decision.action === 'allow') return decision
  let w = decision
  for (const t of targets) {
    const d = snap.policy.decide(clientIp, t, 'cname')
    if (SEVERITY[d.action] > SEVERITY[w.action]) w = d
  }
  return w
}
