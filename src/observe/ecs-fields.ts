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
/** Where such a plain value belongs in ECS; any other goes under `tunnelguard.` */
const LEAF: Readonly<Record<string, string>> = { error: 'error.message', url: 'url.full', file: 'file.path' }

const isObject = (v: unknown): boolean => typeof v === 'object' && v !== null && (!Array.isArray(v) || v.every(x => typeof x === 'object' && x !== null))

/**
 * An operational line's fields with every plain value given an ECS field set's name moved where
 * it can be ingested: `error` to `error.message`, `url` to `url.full`, `file` to `file.path`, the
 * rest under `tunnelguard.` (a warning's `source` FILE:LINE is `tunnelguard.source`). Objects,
 * and arrays of objects, stay as they are; the fields are returned unchanged when nothing moves.
 */
export function ecsFields(fields: Record<string, unknown>): Record<string, unknown> {
  const keys = Object.keys(fields)
  const moved = (k: string) => FIELD_SETS.has(k) && !isObject(fields[k])
  if (!keys.some(moved)) return fields
  const out: Record<string, unknown> = {}
  for (const k of keys) out[moved(k) ? LEAF[k] ?? `tunnelguard.${k}` : k] = fields[k]   // in place: the line reads as before
  return out
}
