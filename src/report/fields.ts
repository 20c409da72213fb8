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
  let o: unknown
  try {
    o = JSON.parse(line)
  } catch {
    return 'malformed'
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return 'malformed'
  const action = F.action(o)
  const message = F.message(o)
  if (action === undefined || message === undefined || !MESSAGES.has(message)) return 'skip'
  const ts = F.time(o)
  const time = ts === undefined ? NaN : Date.parse(ts)
  const ip = F.ip(o)
  const name = F.qname(o) ?? F.domain(o) ?? F.sni(o) ?? F.url(o) ?? F.matched(o)
  if (Number.isNaN(time) || ip === undefined || name === undefined) return 'malformed'
  const w = F.where(o)
  return {
    time, ip, action, name,
    where: w === undefined ? (message === 'dns.query' ? 'dns' : 'http') : WHERE[w] ?? w,
    list: F.list(o), entry: F.entry(o), hostname: F.hostname(o), mac: F.mac(o),
  }
}
