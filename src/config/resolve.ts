import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { dirname, isAbsolute, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Config, ConfigWarning, ListConfig } from '../snapshot-types.js'
import type { ParsedConfig } from './schema.js'

/** The shipped lists directory (…/blocklists beside src/ or dist/). */
export const SHIPPED_LISTS = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'blocklists')

/** The lists used when a config names none: the shipped ngrok list sinkholed, tunnels alerted. */
export function defaultLists(): Record<string, ListConfig> {
  return {
    ngrok: { files: [resolve(SHIPPED_LISTS, 'ngrok.txt')], urls: [], refresh: 86_400_000, maxBytes: 16 * 1024 * 1024, action: 'sinkhole' },
    tunnels: { files: [resolve(SHIPPED_LISTS, 'tunnels.txt')], urls: [], refresh: 86_400_000, maxBytes: 16 * 1024 * 1024, action: 'alert' },
  }
}

/** Nameservers of a resolv.conf text as upstream URLs (loopback stub resolvers included). */
export function upstreamsFromResolvConf(text: string): string[] {
  const out: string[] = []
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line)
    if (!m) continue
    const ip = m[1]!.replace(/%.*$/, '')
    if (isIP(ip) === 4) out.push(`udp://${ip}:53`)
    else if (isIP(ip) === 6) out.push(`udp://[${ip}]:53`)
  }
  return out
}

export interface ResolveOptions {
  readonly source: string                 // 'built-in' or the config file path
  readonly baseDir: string                // relative list paths resolve from here
  readonly resolvConf?: string            // path, default /etc/resolv.conf
  readonly warnings?: readonly ConfigWarning[]   // found by the loader, with file and line
  readonly tlsCa?: string                 // dns.tlsCaFile's certificates, read and checked by the loader
}

/** Apply the defaults that depend on the environment (upstreams, shipped lists), make paths absolute, freeze. */
export function resolveConfig(parsed: ParsedConfig, opts: ResolveOptions): Config {
  let upstreams = parsed.dns.upstreams
  if (!upstreams) {
    let text = ''
    try { text = readFileSync(opts.resolvConf ?? '/etc/resolv.conf', 'utf8') } catch { /* none: stays empty */ }
    upstreams = upstreamsFromResolvConf(text)
  }
  const abs = (f: string) => (isAbsolute(f) ? f : resolve(opts.baseDir, f))
  const lists: Record<string, ListConfig> = {}
  if (parsed.lists) {
    for (const [name, l] of Object.entries(parsed.lists)) {
      lists[name] = { ...l, files: l.files.map(abs) }
    }
  } else Object.assign(lists, defaultLists())
  const stateDir = parsed.state.dir === undefined ? undefined : resolve(opts.baseDir, parsed.state.dir)
  const clients = { ...parsed.clients, leases: parsed.clients.leases.map(abs) }
  const tls = parsed.dns.tlsCaFile === undefined ? {} : { tlsCaFile: abs(parsed.dns.tlsCaFile), tlsCa: opts.tlsCa }
  const cfg = { ...parsed, dns: { ...parsed.dns, upstreams, ...tls }, lists, clients, state: { dir: stateDir }, source: opts.source, warnings: opts.warnings ?? [] }
  return deepFreeze(cfg) as Config
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o)
    for (const v of Object.values(o as object)) deepFreeze(v)
  }
  return o
}
