/**
 * ECS field sets: in an index mapped by the ECS template (or by whichever line came first), each
 * is an object. A line that gives one of these names a plain value (`"error":"ECONNREFUSED"`,
 * `"url":"https://…"`) is rejected whole at ingest, and with it what it says (an alert that was
 * not delivered, a list that could not be fetched).
 */
const FIELD_SETS = new Set([
  'agent', 'client', 'cloud', 'container', 'destination', 'dns', 'ecs', 'error', 'event', 'file', 'group', 'host',
  'http', 'log', 'network', 'observer', 'process', 'related', 'rule', 'server', 'service', 'source', 'tls', 'url',
  'user', 'user_agent',
])
/** ECS base fields a line may carry at the top level as they are. */
const BASE = new Set(['@timestamp', 'message', 'tags', 'labels'])
/** Where such a plain value belongs in ECS; any other goes under `tunnelguard.` */
const LEAF: Readonly<Record<string, string>> = { error: 'error.message', url: 'url.full', file: 'file.path' }
/** The namespace of the fields ECS does not define (ECS: custom fields go under a name of their own). */
const NS = 'tunnelguard.'

/** A custom field's name under the namespace, in ECS's lower snake case (`retryInMs` → `tunnelguard.retry_in_ms`). */
export function customName(key: string): string {
  return NS + key.replace(/[A-Z]/g, c => `_${c.toLowerCase()}`)
}

/**
 * Where a key other than a bare field set's name goes (null: where it is): base fields, ECS
 * fields written dotted (`client.ip`, `error.code`) and `tunnelguard.*` stay; anything else is custom.
 */
function placeOf(key: string): string | null {
  if (BASE.has(key) || key.startsWith(NS)) return null
  const dot = key.indexOf('.')
  return dot > 0 && FIELD_SETS.has(key.slice(0, dot)) ? null : customName(key)
}

/** Where a field set's name with this value goes: an object stays (`error: {…}`); anything else (a string, an array) is moved. */
const fieldSetPlace = (key: string, v: unknown): string | null =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? null : LEAF[key] ?? customName(key)

/**
 * An operational line's fields as ECS has them: ECS fields (base fields, dotted `client.ip`,
 * `event.duration` …, a field set given as an object) stay where they are; every other field is
 * custom and goes under `tunnelguard.`, in lower snake case (`count` → `tunnelguard.count`,
 * `retry_in_ms` → `tunnelguard.retry_in_ms`, `maxInFlightPerClient` →
 * `tunnelguard.max_in_flight_per_client`), as the decision lines have theirs. A field set's name
 * given a plain value or an array is moved where it can be ingested: `error` to `error.message`,
 * `url` to `url.full`, `file` to `file.path`, the rest under `tunnelguard.` (a warning's `source`
 * FILE:LINE is `tunnelguard.source`, the started line's `dns` listeners `tunnelguard.dns`). The
 * fields are returned unchanged when nothing moves; else in their order, under their new names.
 */
export function ecsFields(fields: Record<string, unknown>): Record<string, unknown> {
  return withRelated(placed(fields))
}

/** The addresses an operational line may name, in the order `related.ip` lists them (a decision line's: client, source, destination). */
const IP_FIELDS = ['client.ip', 'source.ip', 'destination.ip'] as const

/**
 * ECS `related.ip` ("all of the IPs seen on your event") on an operational line that names an
 * address (a close line, a refused or rate-limited client, a mismatch), as a decision line has
 * it: so that one search for a machine's address finds these too. Each address once; a line
 * that gives its own `related` keeps it.
 */
function withRelated(f: Record<string, unknown>): Record<string, unknown> {
  if (f['related.ip'] !== undefined || f.related !== undefined) return f
  let ips: string[] | undefined
  for (const k of IP_FIELDS) {
    const v = f[k]
    if (typeof v === 'string' && !ips?.includes(v)) (ips ??= []).push(v)
  }
  return ips === undefined ? f : { ...f, 'related.ip': ips }
}

function placed(fields: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined
  const keys = Object.keys(fields)
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!
    const to = FIELD_SETS.has(k) ? fieldSetPlace(k, fields[k]) : placeOf(k)
    if (to !== null && out === undefined) {
      out = {}
      for (let j = 0; j < i; j++) out[keys[j]!] = fields[keys[j]!]   // in place: the line reads as before
    }
    if (out !== undefined) out[to ?? k] = fields[k]
  }
  return out ?? fields
}
