/** One decision as `report` reads it from an ECS log line. */
export interface ReportEvent {
  readonly time: number
  readonly ip: string
  readonly action: string
  /** The name asked: DNS question, else CONNECT/Host domain, SNI or URL domain. */
  readonly name: string
  /** Where the deciding name was seen: dns, cname, connect, sni, http. */
  readonly where: string
  readonly list?: string
  readonly entry?: string
  readonly hostname?: string
  readonly mac?: string
}

export type LineResult = ReportEvent | 'skip' | 'malformed'

const MESSAGES = new Set(['dns.query', 'proxy.connect', 'proxy.http', 'sinkhole.capture'])
const WHERE: Readonly<Record<string, string>> = { qname: 'dns', cname: 'cname', connect: 'connect', sni: 'sni', host: 'http', url: 'http' }

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
  time: field('@timestamp'), message: field('message'), action: field('event.action'), ip: field('client.ip'),
  qname: field('dns.question.name'), domain: field('destination.domain'), sni: field('tls.client.server_name'),
  url: field('url.domain'), matched: field('tunnelguard.matched_name'), where: field('tunnelguard.matched_on'),
  list: field('rule.ruleset'), entry: field('rule.name'), hostname: field('client.domain'), mac: field('client.mac'),
}

/**
 * One log line → a decision, `skip` for a line that is not a decision (operational messages),
 * or `malformed` (not JSON, or a decision without a usable time, client or name).
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
  return toEvent(F.message(o), F.action(o), F.time(o), F.ip(o),
    F.qname(o) ?? F.domain(o) ?? F.sni(o) ?? F.url(o) ?? F.matched(o),
    F.where(o), F.list(o), F.entry(o), F.hostname(o), F.mac(o))
}

function toEvent(
  message: string | undefined, action: string | undefined, ts: string | undefined, ip: string | undefined, name: string | undefined,
  w: string | undefined, list: string | undefined, entry: string | undefined, hostname: string | undefined, mac: string | undefined,
): LineResult {
  if (action === undefined || message === undefined || !MESSAGES.has(message)) return 'skip'
  const time = Date.parse(ts ?? '')
  if (Number.isNaN(time) || ip === undefined || name === undefined) return 'malformed'
  return {
    time, ip, action, name, list, entry, hostname, mac,
    where: w === undefined ? (message === 'dns.query' ? 'dns' : 'http') : WHERE[w] ?? w,
  }
}

/**
 * The first of the names a decision can carry, in the order toEcs writes them (which is also
 * the order parseJson prefers them): DNS question, destination domain, SNI, URL domain, and
 * the matched name.
 */
const NAME_RE = /"(question":\{"name|destination":\{"domain|tls":\{"client":\{"server_name|url":\{"domain|matched_name)":"/g

/** The JSON string starting at `start` (just after its opening quote); null if it holds an escape. */
function strAt(line: string, start: number): string | null {
  const end = line.indexOf('"', start)
  const v = line.slice(start, end)
  return end === -1 || v.includes('\\') ? null : v
}

/** The string after `marker`, searched from `from`, and the index past it; undefined if absent, null if escaped. */
function after(line: string, marker: string, from: number): [string, number] | undefined | null {
  const i = line.indexOf(marker, from)
  if (i === -1) return undefined
  const v = strAt(line, i + marker.length)
  return v === null ? null : [v, i + marker.length + v.length]
}

/**
 * The layout tunnelguard itself writes (pino + toEcs: nested objects in a fixed key order, no
 * spaces), read with a few forward indexOf calls instead of JSON.parse, which is most of the
 * cost of a report. In JSON a `"` inside a string is always escaped, so a marker such as
 * `"client":{"ip":"` can only match structure. Whatever does not fit (another layout, escapes,
 * extra client fields) returns undefined and goes through JSON.parse.
 */
function fastParse(line: string): LineResult | undefined {
  if (line.charCodeAt(0) !== 123 /* { */ || line.indexOf('"ecs.version":"') === -1) return undefined
  const ts = after(line, '"@timestamp":"', 0)
  const msg = ts && after(line, '"message":"', ts[1])
  const act = msg && after(line, '"event":{"action":"', msg[1])
  if (!act) return act === undefined && !line.includes('action') ? 'skip' : undefined
  const ip = after(line, '"client":{"ip":"', act[1])
  if (!ip || !line.startsWith('","port":', ip[1])) return undefined
  let k = ip[1] + 9
  while (line.charCodeAt(k) >= 48 && line.charCodeAt(k) <= 57) k++
  if (line.charCodeAt(k) !== 125 /* } */) return undefined   // client.domain/mac: parseJson reads them
  NAME_RE.lastIndex = k
  const m = NAME_RE.exec(line)
  const name = m && strAt(line, NAME_RE.lastIndex)
  if (!name) return undefined
  // rule and tunnelguard come after the name, unless the name is tunnelguard.matched_name
  const from = m![1] === 'matched_name' ? k : NAME_RE.lastIndex + name.length
  const rule = line.indexOf('"rule":{', from)
  let entry: string | null | undefined
  let list: [string, number] | null | undefined
  if (rule !== -1) {
    if (line.startsWith('"name":"', rule + 8)) entry = strAt(line, rule + 16)
    list = after(line, '"ruleset":"', rule + 8)
  }
  const where = after(line, '"matched_on":"', rule === -1 ? from : rule)
  if (entry === null || list === null || where === null) return undefined
  const r = toEvent(msg[0], act[0], ts[0], ip[0], name, where?.[0], list?.[0], entry, undefined, undefined)
  return r === 'malformed' ? undefined : r
}
