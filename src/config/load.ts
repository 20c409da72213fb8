import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { LineCounter, parseDocument, isNode } from 'yaml'
import { AppError } from '../errors.js'
import type { Config } from '../snapshot-types.js'
import { formatPath, problemsFromIssues, type ConfigProblem } from './errors.js'
import { resolveConfig } from './resolve.js'
import { configSchema, type ParsedConfig } from './schema.js'

/** Checks the schema cannot express: references between sections. */
function crossChecks(c: ParsedConfig): ConfigProblem[] {
  const out: ConfigProblem[] = []
  const lists = new Set(Object.keys(c.lists ?? { ngrok: 1, tunnels: 1 }))
  const seen = new Set<string>()
  c.groups.forEach((g, i) => {
    if (seen.has(g.name)) out.push({ path: ['groups', i, 'name'], message: `duplicate group name "${g.name}"; group names must be unique` })
    seen.add(g.name)
    for (const l of Object.keys(g.actions)) {
      if (!lists.has(l)) out.push({ path: ['groups', i, 'actions', l], message: `no list named "${l}"; configured lists: ${[...lists].join(', ')}` })
    }
  })
  for (const [name, l] of Object.entries(c.lists ?? {})) {
    if (l.files.length === 0 && l.urls.length === 0) out.push({ path: ['lists', name], message: 'a list needs at least one entry in files or urls' })
  }
  if (c.dns.cache.minTtl > c.dns.cache.maxTtl) out.push({ path: ['dns', 'cache', 'minTtl'], message: 'minTtl is larger than maxTtl' })
  return out
}

/**
 * Parse and validate config text. Every problem is reported at once, each as
 * "FILE:LINE: path: message"; throws AppError CONFIG_INVALID listing them all.
 */
export function parseConfigText(text: string, source: string, opts: { resolvConf?: string } = {}): Config {
  const lc = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true })
  // the line of the nearest node on the path that is in the document (a missing key: its parent)
  const lineOf = (path: readonly PropertyKey[]): string => {
    let p = path
    while (p.length > 1 && !isNode(doc.getIn(p as unknown[], true))) p = p.slice(0, -1)
    const node = doc.getIn(p as unknown[], true)
    /* c8 ignore next - every problem's first key is in the document (schema defaults raise none) */
    return isNode(node) ? `${source}:${lc.linePos(node.range![0]).line}` : source
  }
  if (doc.errors.length > 0) {
    const details = doc.errors.map(e => `${source}:${lc.linePos(e.pos[0]).line}: YAML: ${e.message.split('\n')[0]}`)
    throw new AppError('CONFIG_INVALID', `${source}: invalid YAML`, details)
  }
  const raw: unknown = doc.toJS() ?? {}
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new AppError('CONFIG_INVALID', `${source}: invalid config`, [`${source}:1: the config must be a mapping (dns:, proxy:, lists:, …)`])
  }
  const r = configSchema.safeParse(raw)
  const problems = r.success ? crossChecks(r.data) : problemsFromIssues(r.error.issues)
  if (problems.length > 0) {
    const details = problems.map(p => `${lineOf(p.path)}: ${formatPath(p.path)}: ${p.message}`)
    throw new AppError('CONFIG_INVALID', `${source}: ${problems.length} error${problems.length > 1 ? 's' : ''}`, details)
  }
  return resolveConfig(r.data!, { source, baseDir: dirname(resolve(source)), resolvConf: opts.resolvConf })
}

/** The built-in config: DESIGN §4 defaults, upstreams from /etc/resolv.conf, the shipped lists. */
export function builtinConfig(opts: { resolvConf?: string } = {}): Config {
  return resolveConfig(configSchema.parse({}), { source: 'built-in', baseDir: process.cwd(), resolvConf: opts.resolvConf })
}

/** Load a config file, or the built-in config when `path` is undefined. */
export function loadConfig(path: string | undefined, opts: { resolvConf?: string } = {}): Config {
  if (path === undefined) return builtinConfig(opts)
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    throw new AppError('CONFIG_INVALID', `${path}: cannot read config: ${(e as Error).message}`)
  }
  return parseConfigText(text, path, opts)
}
