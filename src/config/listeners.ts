import { isIP } from 'node:net'
import { canonicalIp } from '../policy/cidr.js'
import { formatPath, type ConfigProblem } from './errors.js'
import { DEFAULT_LISTEN as DEFAULTS, isMapping } from './schema.js'
import { splitHostPort } from './endpoints.js'

type Path = readonly (string | number)[]

/** One TCP listener of a config: where it is set, what it says, and how it binds. */
interface Listener {
  readonly path: Path
  readonly text: string
  /** Not in the file: the schema's default (admin.listen, dns.listen, proxy.listen). */
  readonly byDefault: boolean
  readonly family: 4 | 6
  /** The canonical address, or `any` for 0.0.0.0 / `::`. */
  readonly addr: string
  readonly port: number
  /** A DNS listener on an IPv6 address takes IPv6 alone; the others on `::` are dual-stack, as Node listens. */
  readonly v6only: boolean
}

/** The listener `text` at `path`, when it is an address with a port other than 0 (a name is not compared; 0 is any free port). */
function listener(path: Path, text: unknown, byDefault: boolean, dns: boolean): Listener | undefined {
  const hp = typeof text === 'string' ? splitHostPort(text) : undefined
  if (hp === undefined || hp.port === 0 || isIP(hp.host) === 0) return undefined
  // an IPv4-mapped address (::ffff:10.0.0.1) binds its IPv4 address
  const addr = canonicalIp(hp.host)
  const family = isIP(addr) === 4 ? 4 : 6
  return { path, text: text as string, byDefault, family, addr: addr === '0.0.0.0' || addr === '::' ? 'any' : addr, port: hp.port, v6only: dns && family === 6 }
}

/** The TCP listeners of a raw config, in the schema's order, defaults included (a part with the wrong shape has none here: the schema says why). */
function listenersOf(raw: Record<string, unknown>): Listener[] {
  const out: (Listener | undefined)[] = []
  const each = (key: 'dns' | 'proxy' | 'sinkhole', byDefault?: readonly string[]) => {
    const section = raw[key]
    const given = isMapping(section) ? section.listen : undefined
    const list = given === undefined && (section === undefined || isMapping(section)) ? byDefault : given
    if (Array.isArray(list)) list.forEach((x, i) => out.push(listener([key, 'listen', i], x, list !== given, key === 'dns')))
  }
  each('dns', DEFAULTS.dns)
  each('proxy', DEFAULTS.proxy)
  // admin: null and admin.listen: null turn it off
  const admin = raw.admin
  const byDefault = admin === undefined || (isMapping(admin) && admin.listen === undefined)
  out.push(listener(['admin', 'listen'], byDefault ? DEFAULTS.admin : isMapping(admin) ? admin.listen : undefined, byDefault, false))
  each('sinkhole')
  return out.filter((l): l is Listener => l !== undefined)
}

/**
 * Why TCP listeners `a` and `b` cannot both listen, as Linux binds them (net.ipv6.bindv6only 0, the
 * default): a wildcard takes its port on every address of its family, a dual-stack `::` on IPv4 too.
 */
function clash(a: Listener, b: Listener): string | undefined {
  if (a.port !== b.port) return undefined
  if (a.family === b.family) {
    if (a.addr === b.addr) return 'the same address and port'
    if (a.addr !== 'any' && b.addr !== 'any') return undefined
    return `${a.family === 4 ? '0.0.0.0' : '::'} takes port ${a.port} on every IPv${a.family} address`
  }
  const v6 = a.family === 6 ? a : b
  return v6.addr === 'any' && !v6.v6only ? `:: takes port ${a.port} on every IPv4 address too (dual-stack)` : undefined
}

/**
 * Listeners of one config that cannot all listen (serve would stop at the second: address in use):
 * DNS (TCP beside UDP on each address), proxy, admin and sinkhole capture listeners on the same
 * port of one address, or one on a wildcard (0.0.0.0: every IPv4 address; `::`: every IPv6
 * address, and every IPv4 one too except for DNS, whose IPv6 listeners take IPv6 alone) and
 * another on that port. Conservative: a host name, port 0 (any free port) and a part the schema
 * refuses are not compared. Each clash is one problem, on the listener written in the file.
 */
export function listenerClashes(raw: Record<string, unknown>): ConfigProblem[] {
  const all = listenersOf(raw)
  const out: ConfigProblem[] = []
  all.forEach((b, j) => {
    for (const a of all.slice(0, j)) {
      const why = clash(a, b)
      if (why === undefined) continue
      // said where the file sets one: a default is not in it
      const [at, other] = b.byDefault ? [a, b] : [b, a]
      out.push({
        path: at.path,
        message: `${at.text} clashes with ${formatListener(other)}: ${why}; give each listener its own port (or address)`,
      })
      break
    }
  })
  return out
}

function formatListener(l: Listener): string {
  return `${formatPath(l.path)} (${l.text}${l.byDefault ? ', the default' : ''})`
}
