import { z } from 'zod'
import { isIP } from 'node:net'
import { MAX_TIMER_MS, parseDuration } from './duration.js'
import { parseCidr } from '../policy/cidr.js'
import { credentialsDecode, isParentUrl, isUpstreamUrl, parseSyslogUrl, parseUpstreamUrl, splitHostPort } from './endpoints.js'
import { webhookHeaderProblem } from './webhook-headers.js'

/**
 * A duration written as "2s"/"1d"/…, turned into milliseconds. A bare number is refused (0
 * aside): `timeout: 2000` meant as milliseconds would otherwise be read as 2000 seconds.
 */
const duration = z.union([z.string(), z.number()]).describe('a duration (500ms, 2s, 5m, 1h, 1d)').transform((v, ctx) => {
  if (typeof v === 'number' && v !== 0) {
    ctx.addIssue({ code: 'custom', message: `${v} has no unit; write ${v}ms or ${v}s (units: ms, s, m, h, d)` })
    return z.NEVER
  }
  const ms = parseDuration(v)
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration; write e.g. 500ms, 2s, 5m, 1h, 1d` })
    return z.NEVER
  }
  return ms
})

/** A duration a timer waits: at most MAX_TIMER_MS (a refresh of 30d would otherwise fetch the list every millisecond). */
const timer = duration.refine(ms => ms <= MAX_TIMER_MS, 'at most 24d: Node\'s timers wait at most 2^31-1 ms (24.8 days), and a longer wait would end at once')

/** A duration that must be more than 0: a timeout of 0 would fail everything it times. */
const timeout = timer.refine(ms => ms > 0, 'a timeout of 0 would end everything it times at once; write e.g. 500ms, 2s, 10s')

/** A TTL written into answers: at most 2^31-1 seconds (RFC 2181 §8: a TTL with the top bit set is read as 0). */
const ttl = duration.refine(ms => ms <= 2_147_483_647_000, 'at most 2147483647s (about 68 years; RFC 2181 §8 reads a larger TTL as 0); write e.g. 1d')

const cidr = z.string().refine(s => parseCidr(s) !== undefined, {
  message: 'not a CIDR or address; write e.g. 10.0.0.0/8, 192.168.1.7 or fc00::/7',
}).describe('CIDR')

/** host:port, with IPv6 in brackets: "127.0.0.1:1053", "[::1]:53". */
const hostPort = z.string().superRefine((s, ctx) => {
  if (splitHostPort(s) !== undefined) return
  ctx.addIssue({
    code: 'custom',
    // a link-local address needs its interface, which a listener here cannot take: listen on [::]:PORT instead
    message: /^\[[^\]]*%/.test(s) ? 'an address with a zone (%eth0) cannot be listened on; write [::]:PORT (every address, link-local ones too) or a global or ULA address'
      // (a port out of range after a host that would do: one out of brackets, or none, is the form that is wrong)
      : /:\d{6,}$|:(6553[6-9]|655[4-9]\d|65[6-9]\d\d|6[6-9]\d{3}|[7-9]\d{4})$/.test(s) && splitHostPort(`${s.slice(0, s.lastIndexOf(':'))}:1`) !== undefined
        ? `port ${s.slice(s.lastIndexOf(':') + 1)} is out of range (0-65535); write e.g. 127.0.0.1:1053`
        : 'not HOST:PORT; write e.g. 127.0.0.1:1053 or [::1]:53',
  })
}).describe('HOST:PORT')

/** The message for a URL whose credentials do not percent-decode (credentialsDecode). */
const BAD_CREDENTIALS = 'the user name or password in the URL is not valid percent-encoding (UTF-8 as %XX); write a literal % as %25'

const webhookHeaders = z.record(z.string(), z.string()).superRefine((headers, ctx) => {
  const seen = new Map<string, string>()
  for (const [name, value] of Object.entries(headers)) {
    const problem = webhookHeaderProblem(name, value, seen)
    if (problem !== undefined) ctx.addIssue({ code: 'custom', path: [name], message: problem })
  }
})

const upstream = z.string().refine(isUpstreamUrl, {
  error: iss => parseUpstreamUrl(iss.input as string) as string,
}).describe('udp://IP[:PORT], tcp://IP[:PORT] or tls://IP[:PORT][#SERVERNAME]')

/**
 * A zone of dns.forwardZones: a DNS name below the root (labels of letters, digits, `-` and `_`,
 * as `_msdcs.corp.example` and `10.in-addr.arpa` have), kept in lower case without a final dot.
 */
export function zoneName(s: string): string | undefined {
  const z = s.toLowerCase().replace(/\.$/, '')
  return /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/.test(z) ? z : undefined
}

/** dns.forwardZones: zone → upstreams; the zones in lower case without a final dot, each once. */
const forwardZones = z.record(z.string(), z.array(upstream).min(1, 'a zone needs at least one upstream; write e.g. ["udp://10.0.0.10"]'))
  .superRefine((zones, ctx) => {
    if (typeof zones !== 'object' || zones === null || Array.isArray(zones)) return
    const seen = new Map<string, string>()
    for (const key of Object.keys(zones)) {
      const zone = zoneName(key)
      if (zone === undefined) {
        ctx.addIssue({ code: 'custom', path: [key], message: key === '.' || key === ''
          ? 'the root zone is dns.upstreams; forwardZones lists the zones that go elsewhere'
          : `"${key}" is not a zone name; write e.g. corp.example or 10.in-addr.arpa` })
      } else if (seen.has(zone)) {
        ctx.addIssue({ code: 'custom', path: [key], message: `"${key}" is the zone "${seen.get(zone)}" again (names are compared without case and final dot); list it once` })
      } else {
        seen.set(zone, key)
      }
    }
  }, { when: () => true })                         // beside the upstreams' errors, not after them
  .transform(zones => Object.fromEntries(Object.entries(zones).map(([k, v]) => [zoneName(k)!, v])))

/** A TCP port; the error names the value given. */
const notPort = (iss: { input?: unknown }) => `${String(iss.input)} is not a port (1-65535)`
const port = z.number().int().min(1, { error: notPort }).max(65535, { error: notPort })

/** A port or an inclusive range of ports written "LOW-HIGH" ("1025-65535"). */
export function isPortOrRange(v: unknown): v is number | string {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 1 && v <= 65535
  const m = typeof v === 'string' ? /^(\d{1,5})-(\d{1,5})$/.exec(v) : null
  return m !== null && Number(m[1]) >= 1 && Number(m[1]) <= Number(m[2]) && Number(m[2]) <= 65535
}
const portOrRange = z.custom<number | string>(isPortOrRange, {
  error: iss => `${JSON.stringify(iss.input)} is not a port or a range of ports; write e.g. 80 or 1025-65535`,
})

/** A prefix length from `min` to `max` bits; the error names the value given and what each end means. */
const prefixLength = (family: 'IPv4' | 'IPv6', min: number, max: number) => {
  const notLength = (iss: { input?: unknown }) =>
    `${String(iss.input)} is not an ${family} prefix length for the limits; write ${min}-${max} (${max}: each address counted alone)`
  return z.number().int().min(min, { error: notLength }).max(max, { error: notLength })
}

const filePath = z.string().min(1).describe('file path')

/** A DNS name as a Host header carries it, kept in lower case. */
const hostName = z.string().regex(/^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i, {
  message: 'not a host name; write e.g. tunnelguard-admin.monitoring.svc',
}).transform(s => s.toLowerCase()).describe('host name')

const action = z.enum(['block', 'sinkhole', 'alert'])
const groupAction = z.enum(['block', 'sinkhole', 'alert', 'off'])
const listName = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'list names are lowercase letters, digits, - and _')

/** dns.cache's TTL bounds (also read alone, to compare them when another part of the config is invalid). */
export const cacheTtls = z.object({
  minTtl: ttl.default(0),
  maxTtl: ttl.default(86_400_000),
})

/** The listeners a config that names none has (the schema's defaults; config/listeners.ts compares them too). */
export const DEFAULT_LISTEN = { dns: ['127.0.0.1:1053'], proxy: ['127.0.0.1:3128'], admin: '127.0.0.1:9153' } as const

/** A YAML mapping (a plain object), as the raw config's sections are read before the schema. */
export const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

export const configSchema = z.strictObject({
  dns: z.strictObject({
    listen: z.array(hostPort).default([...DEFAULT_LISTEN.dns]),
    upstreams: z.array(upstream).min(1).optional(),
    forwardZones: forwardZones.default({}),        // conditional forwarding: names in a zone go to its upstreams
    tlsCaFile: filePath.optional(),                // PEM: a private CA that tls:// upstreams may be signed by, besides Node's CAs
    timeout: timeout.default(2000),
    cache: z.strictObject({
      maxEntries: z.number().int().min(0).default(100_000),
      ...cacheTtls.shape,
    }).prefault({}),
    allowClients: z.array(cidr).default(['127.0.0.0/8', '::1/128', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7']),
    // resolvers in front of this one whose EDNS Client Subnet (a whole address) and MAC options name the client
    trustEdnsFrom: z.array(cidr).default([]),
    blockResponse: z.enum(['nxdomain', 'refused', 'nodata']).default('nxdomain'),
    rateLimit: z.strictObject({
      qps: z.number().min(0).default(0),          // per client; 0 = off
      burst: z.number().int().min(1).default(200),
    }).prefault({}),
    maxInFlight: z.number().int().min(1).default(10_000),
    maxInFlightPerClient: z.number().int().min(1).default(1000),   // one client's share of maxInFlight
    tcp: z.strictObject({
      idleTimeout: timeout.default(10_000),
      maxConnections: z.number().int().min(1).default(1000),
      maxConnectionsPerClient: z.number().int().min(1).default(16),
    }).prefault({}),
    dohCanary: z.boolean().default(true),          // use-application-dns.net → NXDOMAIN
    blockDdr: z.boolean().default(true),           // _dns.resolver.arpa → NODATA
  }).prefault({}),
  proxy: z.strictObject({
    listen: z.array(hostPort).default([...DEFAULT_LISTEN.proxy]),
    parent: z.string().refine(isParentUrl, {
      message: 'not a parent proxy URL; write http://HOST:PORT or http://USER:PASSWORD@HOST:PORT (an HTTP proxy that takes CONNECT)',
    }).refine(credentialsDecode, {
      // its user and password are sent decoded, as Proxy-Authorization (basicAuth)
      message: BAD_CREDENTIALS,
    }).nullable().default(null),
    connectPorts: z.array(port).default([443]),
    // plain HTTP: squid's default Safe_ports without 21, 70 and 210 (ftp, gopher, wais: not spoken here)
    httpPorts: z.array(portOrRange).default([80, 443, 280, 488, 591, 777, '1025-65535']),
    allowDestinations: z.array(cidr).default([]),
    allowClients: z.array(cidr).nullish().transform(v => v ?? undefined),  // null or absent: dns.allowClients
    trustForwardedFrom: z.array(cidr).default([]),
    headerTimeout: timeout.default(10_000),
    helloTimeout: timeout.default(10_000),
    // a ClientHello with Encrypted Client Hello (its real server name hidden): logged, or refused
    ech: z.enum(['log', 'block']).default('log'),
    // bytes after CONNECT that are not TLS: an HTTP request's first head decided (Host, URL host), or refused
    nonTls: z.enum(['decide', 'block']).default('decide'),
    idleTimeout: timer.default(300_000),             // 0: tunnels never time out for being idle
    // a client's kept-alive plain-HTTP connection idle between requests (squid's client_idle_pconn_timeout):
    // longer than what browsers and proxies before this one keep theirs, or a reused one crosses our close
    keepAliveTimeout: timeout.default(120_000),
    maxHeaderBytes: z.number().int().min(1024).default(16_384),
    maxConnections: z.number().int().min(1).default(4096),
    maxConnectionsPerAddress: z.number().int().min(1).default(1024),   // peers in trustForwardedFrom excepted
  }).prefault({}),
  /**
   * The prefix by which the per-client limits (dns.rateLimit, dns.maxInFlightPerClient,
   * dns.tcp.maxConnectionsPerClient, proxy.maxConnectionsPerAddress, the admin listener's share)
   * count a client: an IPv6 host owns a /64 and can rotate its addresses in it. IPv4-mapped IPv6
   * counts as IPv4.
   */
  limits: z.strictObject({
    ipv4Prefix: prefixLength('IPv4', 8, 32).default(32),
    ipv6Prefix: prefixLength('IPv6', 32, 128).default(64),
  }).prefault({}),
  /** `admin: null` turns the admin listener off, as `admin: { listen: null }` does. */
  admin: z.preprocess(v => v === null ? { listen: null } : v, z.strictObject({
    listen: hostPort.nullable().default(DEFAULT_LISTEN.admin),
    maxConnections: z.number().int().min(1).default(64),  // one client (by its limits prefix): a quarter of it
    allowHosts: z.array(hostName).default([]),            // Host names served besides IP literals and localhost
  })).prefault({}),
  sinkhole: z.strictObject({
    ipv4: z.string().refine(s => isIP(s) === 4, 'not an IPv4 address').default('0.0.0.0'),
    ipv6: z.string().refine(s => isIP(s) === 6, 'not an IPv6 address').default('::'),
    ttl: ttl.default(60_000),
    listen: z.array(hostPort).default([]),
  }).prefault({}),
  lists: z.record(listName, z.strictObject({
    files: z.array(filePath).default([]),
    urls: z.array(z.string().refine(u => /^https?:\/\/[^/?#\s]+/i.test(u) && URL.canParse(u),
      'not an http:// or https:// URL; write e.g. https://example.org/list.txt')
      // its user and password are sent decoded, as Basic authorization (withoutCredentials)
      .refine(credentialsDecode, BAD_CREDENTIALS)).default([]),
    refresh: timer.refine(ms => ms >= 1000, 'refresh a remote list at most every 1s (0 would fetch it without pause); write e.g. 1h, 1d').default(86_400_000),
    maxBytes: z.number().int().min(1024).default(16 * 1024 * 1024),
    action: action.default('block'),
  })).optional(),
  groups: z.array(z.strictObject({
    name: z.string().min(1),
    clients: z.array(cidr).min(1),
    actions: z.record(z.string(), groupAction).default({}),
  })).default([]),
  /** Alerts besides the log line: a webhook (JSON POST per alert) and/or RFC 5424 syslog. */
  alerts: z.strictObject({
    window: duration.default(300_000),            // one alert per client and entry per window
    webhook: z.strictObject({
      url: z.string().url().refine(u => /^https?:\/\//.test(u), 'the webhook URL must be http:// or https://')
        // its user and password are sent decoded, as Basic authorization (withoutCredentials)
        .refine(credentialsDecode, BAD_CREDENTIALS),
      maxQueue: z.number().int().min(1).default(1000),
      retries: z.number().int().min(0).max(10).default(3),
      backoff: timer.default(1000),
      timeout: timeout.default(5000),
      headers: webhookHeaders.default({}),            // sent with each POST; checked as fetch would send them
    }).optional(),
    syslog: z.strictObject({
      url: z.string().refine(u => typeof parseSyslogUrl(u) !== 'string', {
        error: iss => parseSyslogUrl(iss.input as string) as string,
      }).describe('udp://HOST:PORT or tcp://HOST:PORT'),
      appName: z.string().min(1).max(48).default('tunnelguard'),
      facility: z.number().int().min(0).max(23).default(16),
    }).optional(),
  }).prefault({}),
  /**
   * Names for client addresses in every decision line: hostname and MAC from DHCP lease files
   * (dnsmasq, ISC dhcpd, Kea CSV; re-read when they change), the PTR name through the upstreams.
   */
  clients: z.strictObject({
    leases: z.array(filePath).default([]),
    leaseCheck: timer.refine(ms => ms >= 100, 'check lease files at most every 100ms').default(5000),
    ptr: z.boolean().default(false),
    ptrTtl: duration.refine(ms => ms >= 1000, 'cache PTR names for at least 1s').default(3_600_000),
    ptrMaxEntries: z.number().int().min(1).default(10_000),
  }).prefault({}),
  /** Reload on SIGHUP always; also when the config or a list file changes, unless watch is false. */
  reload: z.strictObject({
    watch: z.boolean().default(true),
    // a change waits this long to settle, and a SIGHUP after a reload as long: past an hour it is a mistake (and past 24.8 days Node's timers fire at once)
    debounce: duration.refine(ms => ms <= 3_600_000, 'at most 1h (a file change is read that long after it settles; 200ms is the default)').default(200),
  }).prefault({}),
  /** Where remote lists keep their last good copy (relative to the config file). */
  state: z.strictObject({ dir: z.string().min(1).optional() }).prefault({}),
  log: z.strictObject({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    queries: z.enum(['matched', 'all']).default('matched'),
  }).prefault({}),
})

export type ConfigInput = z.input<typeof configSchema>
export type ParsedConfig = z.output<typeof configSchema>
