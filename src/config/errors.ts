import type { z } from 'zod'
import { configSchema } from './schema.js'

type Path = readonly PropertyKey[]

type Def = Record<string, unknown>
const defOf = (x: unknown): Def => (x as { _zod: { def: Def } })._zod.def

/** Through defaults, optionals, nullables and pipes to the schema that holds the shape. */
function unwrap(x: unknown): unknown {
  for (let d = defOf(x); d.innerType !== undefined || d.type === 'pipe'; d = defOf(x)) {
    // a transform is a pipe from `in`; a preprocess is a pipe from a transform into `out`
    x = d.innerType ?? (defOf(d.in).type === 'transform' ? d.out : d.in)
  }
  return x
}

/** The schema at `path` (unwrapped), or undefined when the path leaves the schema. */
function schemaAt(path: Path): unknown {
  let s: unknown = configSchema
  for (const key of path) {
    const def = defOf(unwrap(s))
    if (def.type === 'object') s = (def.shape as Record<string, unknown>)[String(key)]
    else if (def.type === 'array') s = def.element
    else if (def.type === 'record') s = def.valueType
    else return undefined
    if (s === undefined) return undefined
  }
  return unwrap(s)
}

/** Walk the schema to the object at `path` and return its keys (for "valid keys are …"). */
export function keysAt(path: Path): string[] | undefined {
  const s = schemaAt(path)
  if (s === undefined) return undefined
  const def = defOf(s)
  return def.type === 'object' ? Object.keys(def.shape as object) : undefined
}

/** `groups[0].clients[1]` from ['groups', 0, 'clients', 1]; a key that is no word in brackets: `dns.forwardZones["corp.example"]`. */
export function formatPath(path: Path): string {
  let out = ''
  for (const p of path) {
    out += typeof p === 'number' ? `[${p}]` : !/^[\w-]+$/.test(String(p)) ? `[${JSON.stringify(String(p))}]` : out === '' ? String(p) : `.${String(p)}`
  }
  return out || '(top level)'
}

export interface ConfigProblem { readonly path: Path; readonly message: string }

/** What a value is, for "got …": `a string ("x")`, `a number (3)`, `a list`, `a mapping`. */
export function describeValue(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'a list'
  switch (typeof v) {
    case 'string': return `a string (${JSON.stringify(v)})`
    case 'number': return `a number (${v})`
    case 'boolean': return `${v}`
    case 'object': return 'a mapping'
    default: return 'nothing'
  }
}

/** What the schema at `path` wants, for "expected …": `a list of HOST:PORT`, `a mapping`, `a number`. */
function expected(path: Path, type: string): string {
  if (type === 'array') {
    const element = schemaAt([...path, 0]) as { description?: string }
    return element.description ? `a list of ${element.description} entries` : 'a list'
  }
  if (type === 'object' || type === 'record') return 'a mapping (key: value)'
  const s = schemaAt(path) as { description?: string }
  if (s.description) return s.description
  return type === 'boolean' ? 'true or false' : type === 'int' ? 'a whole number' : `a ${type}`
}

/** "-1 is out of range; must be at least 0" from a too_big / too_small issue (the schema's bounds are inclusive). */
function outOfRange(i: z.core.$ZodIssueTooBig | z.core.$ZodIssueTooSmall): string {
  const big = i.code === 'too_big'
  const bound = Number(big ? i.maximum : i.minimum)
  const op = big ? 'at most' : 'at least'
  if (i.origin === 'array') return `${op} ${bound} needed in this list, got ${(i.input as unknown[]).length}`
  if (i.origin === 'string') return `${JSON.stringify(i.input)} is too ${big ? 'long' : 'short'}; ${op} ${bound} character${bound === 1 ? '' : 's'}`
  return `${String(i.input)} is out of range; must be ${op} ${bound}`
}

/** Turn zod issues into problems that say what would be valid and what was given. Parse with `reportInput: true`. */
export function problemsFromIssues(issues: readonly z.core.$ZodIssue[]): ConfigProblem[] {
  const out: ConfigProblem[] = []
  // zod also runs a length check on a value of the wrong type ([] for a string): the type error says it all
  const mistyped = new Set(issues.filter(i => i.code === 'invalid_type').map(i => formatPath(i.path)))
  for (const i of issues) {
    if ((i.code === 'too_big' || i.code === 'too_small') && mistyped.has(formatPath(i.path))) continue
    if (i.code === 'unrecognized_keys') {
      // zod reports unknown keys only on objects, so keysAt names that object's keys
      const valid = keysAt(i.path)!
      for (const k of i.keys) out.push({ path: [...i.path, k], message: `unknown key "${k}"; valid keys here: ${valid.join(', ')}` })
    } else if (i.code === 'invalid_key') {
      // a record's key (a list name): zod's own message is "Invalid key in record"; the key's check says why
      const key = String(i.path[i.path.length - 1])
      const why = i.issues.map(k => k.message).join('; ')
      const fix = key.toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^[-_]+/, '')
      out.push({ path: i.path, message: `list name ${JSON.stringify(key)} is not valid: ${why}${fix ? `; write e.g. "${fix}"` : ''}` })
    } else if (i.code === 'invalid_value' && 'values' in i) {
      out.push({ path: i.path, message: `${JSON.stringify(i.input)} is not one of ${i.values.map(v => String(v)).join(', ')}` })
    } else if (i.code === 'invalid_type' || i.code === 'invalid_union') {
      // a union (a duration: a string or a number) says what it takes as its description, not "Invalid input"
      const want = expected(i.path, i.code === 'invalid_type' ? i.expected : 'union')
      out.push({ path: i.path, message: i.input === undefined ? `required: ${want}` : `expected ${want}, got ${describeValue(i.input)}` })
    } else if ((i.code === 'too_big' || i.code === 'too_small') && /^Too (big|small):/.test(i.message)) {
      // zod's own wording ("Too big: expected number to be <=65535"); a schema's own message is kept
      out.push({ path: i.path, message: outOfRange(i) })
    } else {
      out.push({ path: i.path, message: i.message.replace(/^Invalid input: /, '') })
    }
  }
  return out
}
