import { isIP } from 'node:net'
import { foldName } from '../match/normalize.js'
import { ecsMac } from '../observe/leases.js'
import { SINKHOLE_PREFIX, WHERE_LABELS } from '../observe/where-label.js'
import { canonicalIps } from '../policy/cidr.js'
import { parseIpv4Loose } from '../proxy/address.js'
import { WHERES } from '../policy/types.js'

/** The canonical form of the IPv6 (and IPv4-mapped) addresses lines name clients by, each parsed once. */
const canonical = canonicalIps()

/** One decision as `report` reads it from an ECS log line. */
export interface ReportEvent {
  readonly time: number
  readonly ip: string
  readonly action: string
  /**
   * The name asked: DNS question, else CONNECT/Host domain (or the address the client named:
   * destination.ip on a line without destination.domain, in destination.domain on lines written
   * before; canonical either way), SNI or URL domain (case and a trailing dot folded, as `matched` and `sni`).
   */
  readonly name: string
  /**
   * Where the deciding name was seen: the line's tunnelguard.matched_on (qname, cname, connect,
   * sni, host, url; `unknown` on a line without it), prefixed `sinkhole-` on a sinkhole.capture
   * line (see observe/where-label).
   */
  readonly where: string
  /** The name decided on when it is not `name` (tunnelguard.matched_name: a CNAME target, an SNI). */
  readonly matched?: string
  /** The SNI when `name` is an address (a CONNECT to an IP) and the SNI is not `matched`: the name behind it. */
  readonly sni?: string
  readonly list?: string
  readonly entry?: string
  /** The client's names: DHCP lease hostname and MAC, PTR name (client.hostname, client.mac, client.domain). */
  readonly hostname?: string
  readonly mac?: string
  readonly domain?: string
}

export type LineResult = ReportEvent | 'skip' | 'malformed'

const MESSAGES = new Set(['dns.query', 'proxy.connect', 'proxy.http', 'sinkhole.capture'])
/**
 * A block with `event.kind: event` is the proxy refusing by its own rules (a port outside
 * connectPorts, an internal address, ECH or non-TLS when set to block), no list matching: it is
 * counted as `refused`, apart from the tunnel attempts.
 */
const REFUSED = 'refused'
/**
 * The actions a decision can have (those --action takes), as constant (internalized) strings:
 * cheaper keys for the counts than slices of a line. A decision line with any other is malformed.
 */
const ACTIONS = new Map<string, string>(['block', 'sinkhole', 'alert', 'allow', 'pass', REFUSED].map(a => [a, a]))
/** matched_on → its label, for proxy and DNS lines and for sinkhole captures: constant strings again, not slices. */
const WHERE = new Map<string, string>(WHERES.map((w, i) => [w, WHERE_LABELS[i]!]))
const SINKHOLE_WHERE = new Map<string, string>(WHERES.map((w, i) => [w, WHERE_LABELS[WHERES.length + i]!]))
/**
 * Where for a line without matched_on (tunnelguard writes it on every decision): not known, and
 * not guessed from the message (a DNS line's name may have matched as a CNAME target).
 */
export const UNKNOWN_WHERE = 'unknown'

/** A field path, read nested (`client: {ip}`), dotted (`"client.ip"`) or any mix of the two. */
function lookup(o: unknown, parts: readonly string[], i: number): unknown {
  if (i === parts.length) return o
  if (o === null || typeof o !== 'object') return undefined
  const rec = o as Record<string, unknown>
  let key = parts[i]!
  for (let j = i; j < parts.length; j++) {
    if (j > i) key += '.' + parts[j]!
    const v = rec[key]
    if (v !== undefined) {
      const r = lookup(v, parts, j + 1)
      if (r !== undefined) return r
    }
  }
  return undefined
}

function field(path: string): (o: unknown) => string | undefined {
  const parts = path.split('.')
  return o => {
    const v = lookup(o, parts, 0)
    return typeof v === 'string' ? v : undefined
  }
}

const F = {
  time: field('@timestamp'), message: field('message'), action: field('event.action'), kind: field('event.kind'), ip: field('client.ip'),
  qname: field('dns.question.name'), domain: field('destination.domain'), dstIp: field('destination.ip'), sni: field('tls.client.server_name'),
  url: field('url.domain'), matched: field('tunnelguard.matched_name'), where: field('tunnelguard.matched_on'),
  list: field('rule.ruleset'), entry: field('rule.name'), hostname: field('client.hostname'), mac: field('client.mac'), clientDomain: field('client.domain'),
}

/**
 * One log line → a decision, `skip` for a line that is not a decision (operational messages),
 * or `malformed` (not JSON, or a decision without a usable time, client or name, or with an action
 * that is none of ACTIONS).
 */
export function parseLine(line: string): LineResult {
  return fastParse(line) ?? parseJson(line)
}

/** The same, always through JSON.parse: any layout, nested, dotted or mixed. */
export function parseJson(line: string): LineResult {
  let o: unknown
  try {
    o = JSON.parse(line)
  } catch {
    return 'malformed'
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return 'malformed'
  const action = F.action(o)
  return toEvent(F.message(o), action === 'block' && F.kind(o) === 'event' ? REFUSED : action, F.time(o), F.ip(o),
    // destination.ip is the name asked only on a line without destination.domain (an address the client named)
    F.qname(o) ?? F.domain(o) ?? F.dstIp(o) ?? F.sni(o) ?? F.url(o) ?? F.matched(o), F.matched(o), F.sni(o),
    F.where(o), F.list(o), F.entry(o), F.hostname(o), F.mac(o), F.clientDomain(o))
}

let lastSecond = ''
let lastSecondMs = NaN

/** Date.parse, memoized on the whole second (log lines come in time order): "…T10:00:01.250Z". */
function parseTime(ts: string | undefined): number {
  if (ts === undefined) return NaN
  if (ts.length === 24 && ts.charCodeAt(19) === 46 /* . */ && ts.charCodeAt(23) === 90 /* Z */) {
    const sec = ts.slice(0, 19)
    if (sec !== lastSecond) {
      lastSecondMs = Date.parse(sec + 'Z')
      lastSecond = sec
    }
    const ms = Number(ts.slice(20, 23))
    if (!Number.isNaN(lastSecondMs) && /^\d{3}$/.test(ts.slice(20, 23))) return lastSecondMs + ms
  }
  return Date.parse(ts)
}

function toEvent(
  message: string | undefined, action: string | undefined, ts: string | undefined, ip: string | undefined, name: string | undefined,
  matched: string | undefined, sni: string | undefined, w: string | undefined, list: string | undefined, entry: string | undefined,
  hostname: string | undefined, mac: string | undefined, domain: string | undefined,
): LineResult {
  if (action === undefined || message === undefined || !MESSAGES.has(message)) return 'skip'
  const time = parseTime(ts)
  const act = ACTIONS.get(action)
  if (Number.isNaN(time) || ip === undefined || name === undefined || act === undefined) return 'malformed'
  // one machine however its address was written (lines from builds that wrote ::ffff:10.1.2.3 or
  // 2001:DB8:1:2:0:0:0:1, from a PROXY or X-Forwarded-For header, beside today's canonical form)
  if (ip.includes(':')) ip = canonical(ip)
  // one name however it was spelt (a proxy's CONNECT and Host are as the client wrote them)
  name = foldName(name)
  if (matched !== undefined) matched = foldName(matched)
  // an address a client named, in its canonical form: lines before destination.ip took it wrote
  // the literal as the client did in destination.domain (2001:DB8:0::1, ::ffff:192.0.2.1, and
  // 0x7f000001 with the address in matched_name), which is one destination with today's
  if (message !== 'dns.query') {
    name = addressName(name, matched)
    if (matched?.includes(':')) matched = canonical(matched)
  }
  if (sni !== undefined) sni = foldName(sni)
  if (matched === name) matched = undefined
  if (sni === name || sni === matched || (sni !== undefined && isIP(name) === 0)) sni = undefined
  // lines written before client.mac took ECS's notation say aa:bb:…: the same machine
  if (mac !== undefined) mac = ecsMac(mac) ?? mac
  const sinkhole = message === 'sinkhole.capture'
  const on = w ?? UNKNOWN_WHERE
  return {
    time, ip, action: act, name, matched, sni, list, entry, hostname, mac, domain,
    where: sinkhole ? SINKHOLE_WHERE.get(on) ?? SINKHOLE_PREFIX + on : WHERE.get(on) ?? on,
  }
}

/** A proxy line's name asked as the canonical address when it is one (see toEvent). */
function addressName(name: string, matched: string | undefined): string {
  if (name.includes(':')) return canonical(name)
  // a dotted IPv4 is canonical; a name does not start with a digit and end in one often
  const c = name.charCodeAt(0)
  if (c < 48 || c > 57 || matched === undefined || isIP(name) !== 0) return name
  return parseIpv4Loose(name) === matched ? matched : name
}

/**
 * The first of the names a decision can carry, in the order toEcs writes them (which is also
 * the order parseJson prefers them): DNS question, destination domain (or the address a client
 * named, destination.ip first in destination: toEcs writes a domain before the ip), SNI, URL
 * domain, and the matched name.
 */
const NAME_RE = /"(question":\{"name|destination":\{"(?:domain|ip)|tls":\{"client":\{"server_name|url":\{"domain|matched_name)":"/g

/**
 * The start of another line inside this one: a writer killed mid-line and restarted leaves the
 * first bytes of a line with the next whole line after them, on one line. JSON.parse rejects
 * that; the markers below would read it as one decision, its @timestamp from the cut line and
 * the rest from the other. A `{"` cannot be inside a valid line's string (the quote would be
 * escaped), and no object but a line's own starts with these keys (tunnelguard's lines start
 * with log.level, other ECS writers' with @timestamp).
 */
function twoLines(line: string): boolean {
  // two indexOf calls: a third of the cost of one regex with the alternation
  return line.indexOf('{"log.level":', 1) !== -1 || line.indexOf('{"@timestamp":', 1) !== -1
}

/** Where the last string read by strAt/after ended (saves allocating a tuple per field). */
let END = 0

/** The JSON string starting at `start` (just after its opening quote); null if it holds an escape. */
function strAt(line: string, start: number): string | null {
  const end = line.indexOf('"', start)
  const v = line.slice(start, end)
  END = end
  return end === -1 || v.includes('\\') ? null : v
}

/** The string after `marker`, searched from `from` (END is set past it); undefined if absent, null if escaped. */
function after(line: string, marker: string, from: number): string | undefined | null {
  const i = line.indexOf(marker, from)
  return i === -1 ? undefined : strAt(line, i + marker.length)
}

/**
 * The layout tunnelguard itself writes (pino + toEcs: nested objects in a fixed key order, no
 * spaces), read with a few forward indexOf calls instead of JSON.parse, which is most of the
 * cost of a report. In JSON a `"` inside a string is always escaped, so a marker such as
 * `"client":{"ip":"` can only match structure. Whatever does not fit (another layout, escapes,
 * other client fields, another line's start inside it) returns undefined and goes through JSON.parse.
 */
function fastParse(line: string): LineResult | undefined {
  if (line.charCodeAt(0) !== 123 /* { */ || line.indexOf('"ecs.version":"') === -1) return undefined
  if (twoLines(line)) return undefined               // JSON.parse says malformed
  const ts = after(line, '"@timestamp":"', 0)
  const msg = ts && after(line, '"message":"', END)
  const read = msg && after(line, '"event":{"action":"', END)
  if (!read) return read === undefined && !line.includes('action') ? 'skip' : undefined
  const act = read === 'block' && line.startsWith('","kind":"event"', END) ? REFUSED : read
  const ip = after(line, '"client":{"ip":"', END)
  if (!ip) return undefined
  // no port when it is not known (a client named by X-Forwarded-For)
  let k = END + 1
  if (line.startsWith('","port":', END)) {
    k = END + 9
    while (line.charCodeAt(k) >= 48 && line.charCodeAt(k) <= 57) k++
  }
  // the client's names, in the order toEcs and ClientNames write them; anything else: parseJson
  let hostname: string | null | undefined
  let mac: string | null | undefined
  let domain: string | null | undefined
  if (line.startsWith(',"hostname":"', k)) { hostname = strAt(line, k + 13); k = END + 1 }
  if (hostname !== null && line.startsWith(',"mac":"', k)) { mac = strAt(line, k + 8); k = END + 1 }
  if (hostname !== null && mac !== null && line.startsWith(',"domain":"', k)) { domain = strAt(line, k + 11); k = END + 1 }
  if (hostname === null || mac === null || domain === null || line.charCodeAt(k) !== 125 /* } */) return undefined
  NAME_RE.lastIndex = k
  const m = NAME_RE.exec(line)
  const name = m && strAt(line, NAME_RE.lastIndex)
  if (!name) return undefined
  // rule and tunnelguard come after the name, unless the name is tunnelguard.matched_name
  const from = m![1] === 'matched_name' ? k : END
  // a CONNECT host may have an SNI after it (tls follows destination)
  const sni = m![1]!.startsWith('destination') ? after(line, '"tls":{"client":{"server_name":"', from) : undefined
  const rule = line.indexOf('"rule":{', from)
  let entry: string | null | undefined
  let list: string | null | undefined
  if (rule !== -1) {
    if (line.startsWith('"name":"', rule + 8)) entry = strAt(line, rule + 16)
    list = after(line, '"ruleset":"', rule + 8)
  }
  const where = after(line, '"matched_on":"', rule === -1 ? from : rule)
  // matched_name follows matched_on and the reason (whose quotes are escaped)
  const matched = m![1] === 'matched_name' ? name : after(line, '"matched_name":"', rule === -1 ? from : rule)
  if (entry === null || list === null || where === null || sni === null || matched === null) return undefined
  const r = toEvent(msg, act, ts, ip, name, matched, sni, where, list, entry, hostname, mac, domain)
  return r === 'malformed' ? undefined : r
}
