import { X509Certificate } from 'node:crypto'
import { accessSync, constants, statSync } from 'node:fs'
import { dirname, isAbsolute, resolve } from 'node:path'
import { LineCounter, parseDocument, isNode } from 'yaml'
import { AppError } from '../errors.js'
import { readTextFile, refusal } from '../read-file.js'
import type { Config } from '../snapshot-types.js'
import { formatPath, problemsFromIssues, type ConfigProblem } from './errors.js'
import { listenerClashes } from './listeners.js'
import { resolveConfig } from './resolve.js'
import { configWarnings } from './warnings.js'
import { cacheTtls, configSchema, isMapping } from './schema.js'

/**
 * Why a list file cannot be read, or undefined when it can. A device or socket is refused for
 * every command (see refusal: /dev/zero never ends); a FIFO too unless `pipes` (the one-shot
 * commands: `--config <(…)`), as serve would wait on it. `/dev/null` (an empty list) is fine.
 */
export function unreadable(file: string, pipes = false): string | undefined {
  try {
    const st = statSync(file)
    if (st.isDirectory()) return 'a directory, not a file'
    const why = refusal(st, file, { pipes })
    if (why !== undefined) return why
    accessSync(file, constants.R_OK)
    return undefined
  } catch (e) {
    const err = e as NodeJS.ErrnoException
    return err.code === 'ENOENT' ? 'no such file' : err.message
  }
}

/**
 * Checks the schema cannot express: references between sections, list files that cannot be read.
 * They read the raw config, so they run on every part that has the right shape even when another
 * part has schema errors (those are reported beside them). A check is skipped only where the part
 * it reads is itself wrong: a group's list names need `lists:` to be a mapping (or absent: the
 * shipped lists), a list file a path string, minTtl ≤ maxTtl two valid durations.
 */
function crossChecks(raw: Record<string, unknown>, baseDir: string, pipes: boolean): ConfigProblem[] {
  const out: ConfigProblem[] = []
  const lists = raw.lists === undefined ? new Set(['ngrok', 'tunnels']) : isMapping(raw.lists) ? new Set(Object.keys(raw.lists)) : undefined
  const seen = new Set<string>()
  const groups = Array.isArray(raw.groups) ? raw.groups as unknown[] : []
  groups.forEach((g, i) => {
    if (!isMapping(g)) return
    if (typeof g.name === 'string' && g.name !== '') {
      if (seen.has(g.name)) out.push({ path: ['groups', i, 'name'], message: `duplicate group name "${g.name}"; group names must be unique` })
      seen.add(g.name)
    }
    if (lists === undefined || !isMapping(g.actions)) return
    for (const l of Object.keys(g.actions)) {
      if (!lists.has(l)) out.push({ path: ['groups', i, 'actions', l], message: `no list named "${l}"; configured lists: ${[...lists].join(', ')}` })
    }
  })
  for (const [name, l] of Object.entries(isMapping(raw.lists) ? raw.lists : {})) {
    if (!isMapping(l)) continue
    const files = l.files ?? []
    const urls = l.urls ?? []
    if (!Array.isArray(files) || !Array.isArray(urls)) continue
    if (files.length === 0 && urls.length === 0) out.push({ path: ['lists', name], message: 'a list needs at least one entry in files or urls' })
    files.forEach((f: unknown, i) => {
      if (typeof f !== 'string' || f === '') return
      const abs = isAbsolute(f) ? f : resolve(baseDir, f)
      const why = unreadable(abs, pipes)
      const hint = isAbsolute(f) ? '' : ' (relative paths are from the config file\'s directory)'
      if (why !== undefined) out.push({ path: ['lists', name, 'files', i], message: `cannot read list file ${abs}: ${why}${hint}` })
    })
  }
  const cache = isMapping(raw.dns) && isMapping(raw.dns.cache) ? raw.dns.cache : {}
  const ttl = cacheTtls.safeParse({ minTtl: cache.minTtl, maxTtl: cache.maxTtl })
  if (ttl.success && ttl.data.minTtl > ttl.data.maxTtl) out.push({ path: ['dns', 'cache', 'minTtl'], message: 'minTtl is larger than maxTtl' })
  return out
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[^-]*-----END CERTIFICATE-----/g

/**
 * dns.tlsCaFile read and checked (at every load, a reload too): its PEM certificates, or why it
 * cannot serve (a file that cannot be read, no certificate in it, one that does not parse).
 * A file that does not parse would otherwise trust nothing more, silently.
 */
function readTlsCa(file: string, pipes: boolean, hint: string): { pem: string } | { problem: string } {
  const why = unreadable(file, pipes)
  if (why !== undefined) return { problem: `cannot read TLS CA file ${file}: ${why}${hint}` }
  const text = readTextFile(file, 'latin1', { pipes })
  const certs = [...text.matchAll(PEM_CERT)]
  if (certs.length === 0) {
    return { problem: `no certificate in TLS CA file ${file}; write the CA's certificate in PEM (-----BEGIN CERTIFICATE-----; from DER: openssl x509 -inform der -in ca.der -out ca.pem)` }
  }
  for (const c of certs) {
    try {
      new X509Certificate(c[0])
    } catch (e) {
      const line = text.slice(0, c.index).split('\n').length
      return { problem: `TLS CA file ${file}:${line}: not a certificate that can be read (${(e as Error).message}); write the CA's certificate in PEM, as openssl x509 -in ca.pem -text reads it` }
    }
  }
  return { pem: certs.map(c => c[0]).join('\n') + '\n' }
}

/** dns.tlsCaFile of the raw config (when it is a path), read: its certificates, or the problem. */
function tlsCaCheck(raw: Record<string, unknown>, baseDir: string, pipes: boolean): { pem?: string; problems: ConfigProblem[] } {
  const f = isMapping(raw.dns) ? raw.dns.tlsCaFile : undefined
  if (typeof f !== 'string' || f === '') return { problems: [] }
  const hint = isAbsolute(f) ? '' : ' (relative paths are from the config file\'s directory)'
  const r = readTlsCa(isAbsolute(f) ? f : resolve(baseDir, f), pipes, hint)
  return 'pem' in r ? { pem: r.pem, problems: [] } : { problems: [{ path: ['dns', 'tlsCaFile'], message: r.problem }] }
}

/**
 * Parse and validate config text. Every problem is reported at once, each as
 * "FILE:LINE: path: message"; throws AppError CONFIG_INVALID listing them all.
 */
export function parseConfigText(text: string, source: string, opts: LoadOptions = {}): Config {
  const lc = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true })
  // the line of the nearest node on the path that is in the document (a missing key: its parent)
  const lineOf = (path: readonly PropertyKey[]): number => {
    let p = path
    while (p.length > 1 && !isNode(doc.getIn(p as unknown[], true))) p = p.slice(0, -1)
    const node = doc.getIn(p as unknown[], true)
    /* c8 ignore next - every problem's first key is in the document (schema defaults raise none) */
    return isNode(node) ? lc.linePos(node.range![0]).line : 0
  }
  if (doc.errors.length > 0) {
    const details = doc.errors.map(e => `${source}:${lc.linePos(e.pos[0]).line}: YAML: ${e.message.split('\n')[0]}`)
    throw new AppError('CONFIG_INVALID', `${source}: invalid YAML`, details)
  }
  const raw: unknown = doc.toJS() ?? {}
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new AppError('CONFIG_INVALID', `${source}: invalid config`, [`${source}:1: the config must be a mapping (dns:, proxy:, lists:, …)`])
  }
  const baseDir = dirname(resolve(source))
  const r = configSchema.safeParse(raw, { reportInput: true })
  // schema errors and the reference checks together: one run shows every error that can be found
  // the files a config names (lists, the TLS CA) as serve will read them: for serve, a reload and
  // validate, no pipe (serve refuses a FIFO; validate would wait on one, and say valid)
  const pipes = opts.serve !== true && opts.reload !== true && opts.asServe !== true
  const ca = tlsCaCheck(raw as Record<string, unknown>, baseDir, pipes)
  // listeners that cannot all listen: serve would stop at the second (address in use)
  const clashes = listenerClashes(raw as Record<string, unknown>)
  const problems = [...r.success ? [] : problemsFromIssues(r.error.issues), ...crossChecks(raw as Record<string, unknown>, baseDir, pipes), ...ca.problems, ...clashes]
  if (problems.length > 0) {
    // by line (a stable sort keeps the order of problems on one line)
    const details = problems.map(p => ({ line: lineOf(p.path), p }))
      .sort((a, b) => a.line - b.line)
      .map(({ line, p }) => `${source}:${line}: ${formatPath(p.path)}: ${p.message}`)
    throw new AppError('CONFIG_INVALID', `${source}: ${problems.length} error${problems.length > 1 ? 's' : ''}`, details)
  }
  const warnings = configWarnings(r.data!).map(w => ({ source: `${source}:${lineOf(w.path)}`, message: `${formatPath(w.path)}: ${w.message}` }))
  return resolveConfig(r.data!, { source, baseDir, resolvConf: opts.resolvConf, warnings, tlsCa: ca.pem })
}

/** The built-in config: DESIGN §4 defaults, upstreams from /etc/resolv.conf, the shipped lists. */
export function builtinConfig(opts: { resolvConf?: string } = {}): Config {
  return resolveConfig(configSchema.parse({}), { source: 'built-in', baseDir: process.cwd(), resolvConf: opts.resolvConf })
}

export interface LoadOptions {
  readonly resolvConf?: string
  /** For serve: the config and list files must be regular files, not pipes either (see refusal). */
  readonly serve?: boolean
  /** A reload (for serve too): a config with no setting in it is refused. */
  readonly reload?: boolean
  /**
   * validate: the files the config names are held to serve's rule (no pipe: a FIFO list file is an
   * error, as serve would refuse it, not a wait for a writer); the config itself may still be one (`--config <(…)`).
   */
  readonly asServe?: boolean
}

/** YAML text that holds nothing (empty, comments only, `---`, `null`). */
function isEmptyDocument(text: string): boolean {
  const doc = parseDocument(text)
  return doc.errors.length === 0 && (doc.toJS() ?? null) === null
}

/**
 * Load a config file, or the built-in config when `path` is undefined. `reload`: the file replaces
 * a running config, so a file with no setting in it (empty, or comments only) is refused: it is
 * far more often a save caught half-way than a wish to fall back to every default (the shipped
 * lists only, the upstreams of /etc/resolv.conf, no groups).
 */
export function loadConfig(path: string | undefined, opts: LoadOptions = {}): Config {
  if (path === undefined) return builtinConfig(opts)
  let text: string
  try {
    // bounded for every command: a device is refused, and so is a FIFO for serve, which would wait
    // on it (a missing file, a directory: the system's own error)
    text = readTextFile(path, 'utf8', { pipes: opts.serve !== true && opts.reload !== true })
  } catch (e) {
    throw new AppError('CONFIG_INVALID', `${path}: cannot read config: ${(e as Error).message}`)
  }
  if (opts.reload && isEmptyDocument(text)) {
    throw new AppError('CONFIG_INVALID', `${path}: the config file has no setting in it (a save caught half-way?)`,
      [`${path}:1: empty at a reload: the running config is kept; write the whole config (an empty file means every default only at a start)`])
  }
  return parseConfigText(text, path, opts)
}
