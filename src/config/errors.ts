import type { z } from 'zod'
import { configSchema } from './schema.js'

type Path = readonly PropertyKey[]

type Def = Record<string, unknown>
const defOf = (x: unknown): Def => (x as { _zod: { def: Def } })._zod.def

/** Walk the schema to the object at `path` and return its keys (for "valid keys are …"). */
export function keysAt(path: Path): string[] | undefined {
  let s: unknown = configSchema
  const unwrap = (x: unknown): unknown => {
    // defaults, optionals and nullables wrap an innerType; a transform is a pipe from `in`
    for (let d = defOf(x); d.innerType !== undefined || d.type === 'pipe'; d = defOf(x)) x = d.innerType ?? d.in
    return x
  }
  for (const key of path) {
    s = unwrap(s)
    const def = (s as { _zod: { def: Record<string, unknown> } })._zod.def
    if (def.type === 'object') s = (def.shape as Record<string, unknown>)[String(key)]
    else if (def.type === 'array') s = def.element
    else if (def.type === 'record') s = def.valueType
    else return undefined
    if (s === undefined) return undefined
  }
  s = unwrap(s)
  const def = (s as { _zod: { def: Record<string, unknown> } })._zod.def
  return def.type === 'object' ? Object.keys(def.shape as object) : undefined
}

/** `groups[0].clients[1]` from ['groups', 0, 'clients', 1]. */
export function formatPath(path: Path): string {
  let out = ''
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`
  return out || '(top level)'
}

export interface ConfigProblem { readonly path: Path; readonly message: string }

/** Turn zod issues into problems that say what would be valid. */
export function problemsFromIssues(issues: readonly z.core.$ZodIssue[]): ConfigProblem[] {
  const out: ConfigProblem[] = []
  for (const i of issues) {
    if (i.code === 'unrecognized_keys') {
      // zod reports unknown keys only on objects, so keysAt names that object's keys
      const valid = keysAt(i.path)!
      for (const k of i.keys) out.push({ path: [...i.path, k], message: `unknown key "${k}"; valid keys here: ${valid.join(', ')}` })
    } else if (i.code === 'invalid_value' && 'values' in i) {
      out.push({ path: i.path, message: `invalid value; expected one of ${i.values.map(v => JSON.stringify(v)).join(', ')}` })
    } else {
      out.push({ path: i.path, message: i.message.replace(/^Invalid input: /, '') })
    }
  }
  return out
}
