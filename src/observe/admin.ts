import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { isIP, type AddressInfo } from 'node:net'
import { checkDecision, decisionFields, explainDecision } from '../commands/explain.js'
import { splitHostPort } from '../config/endpoints.js'
import { AppError } from '../errors.js'
import { shortSource } from '../url-secrets.js'
import { CidrSet, canonicalIp, parseCidr } from '../policy/cidr.js'
import type { RemoteCopy } from '../remote-lists.js'
import type { Snapshot } from '../snapshot-types.js'
import { limitConnections } from './admin-connections.js'
import type { ClientRow, ClientTable } from './client-table.js'
import type { Metrics } from './metrics.js'
import type { Evidence } from './types.js'

export interface AdminOptions {
  /** HOST:PORT; port 0 picks a free one. */
  readonly listen: string
  readonly metrics: Metrics
  readonly clients: ClientTable
  readonly getSnapshot: () => Snapshot | undefined
  /** True once the lists are loaded. */
  readonly ready: () => boolean
  /**
   * The remote lists' URLs and when each copy in use was fetched (null: none yet). One without a
   * copy is named in `/readyz`'s `unloaded` and does not make it 503 (see `/readyz`).
   */
  readonly remote?: () => readonly RemoteCopy[]
  /**
   * Most connections open at once (`admin.maxConnections`, default 64); one client may hold a
   * quarter of them (at least 1), a client counted by the snapshot's `limits` prefix (an IPv6
   * host by its /64) as the other per-client limits count it. Connections beyond either are
   * closed at once.
   */
  readonly maxConnections?: number
  /**
   * Milliseconds (default 5000) to send a request's head, and to send the next request on a
   * kept-alive connection; a connection that moves no byte for twice as long is closed.
   */
  readonly timeout?: number
  /**
   * Host names a request's Host header may carry besides IP literals and `localhost`
   * (`admin.allowHosts`, lower case). Any other name is answered 421: a page that rebinds its
   * own name to this address (DNS rebinding) must not read `/api/clients`.
   */
  readonly allowHosts?: readonly string[]
  /**
   * Where the connections it closes for a limit or a timeout are said (`admin connection closed`,
   * at most once per client address and reason per 10 s, with the count); none: only counted.
   */
  readonly evidence?: Pick<Evidence, 'warn'>
}

/** Clients in one `/api/clients` response when `?limit=` does not say. */
export const CLIENTS_LIMIT = 1000
/** JSON gathered before it is written and the event loop gets a turn (DNS keeps being served). */
const CHUNK_CHARS = 64 * 1024
const ADMIN_TIMEOUT_MS = 5000

export interface AdminServer {
  readonly address: string
  readonly port: number
  close(): Promise<void>
}

/**
 * A Host header that DNS rebinding cannot produce: an IP literal (`10.1.2.3:9153`, `[::1]:9153`:
 * what probes and scrapers send), `localhost`, or a name the admin allowed; the port is not
 * looked at. No Host at all (HTTP/1.0) passes: a browser always sends one.
 */
export function hostAllowed(host: string | undefined, allow: ReadonlySet<string>): boolean {
  if (host === undefined) return true
  const m = /^(?:\[([^\]]*)\]|([^:]*))(?::\d*)?$/.exec(host)
  if (!m) return false
  if (m[1] !== undefined) return isIP(m[1]) === 6
  const name = m[2]!.toLowerCase()
  return isIP(name) === 4 || name === 'localhost' || allow.has(name)
}

/** A list entry's source as the admin listener shows it (a file's name, a URL without credentials or query). */
export { shortSource }

/** The remote lists that have no copy yet (none on disk, no fetch succeeded), each with those URLs. */
function unloaded(copies: readonly RemoteCopy[]): { name: string; urls: string[] }[] {
  const out = new Map<string, string[]>()
  for (const c of copies) if (c.fetchedAt === null) out.set(c.list, [...out.get(c.list) ?? [], c.url])
  return [...out].map(([name, urls]) => ({ name, urls }))
}

const HEADERS = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' }

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { ...HEADERS, 'content-type': type, 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

const JSON_TYPE = 'application/json; charset=utf-8'
const json = (res: ServerResponse, status: number, v: unknown) => send(res, status, JSON_TYPE, JSON.stringify(v) + '\n')

/**
 * Turns of the event loop shared by the responses under way: `next()` resolves on a later turn,
 * one waiter per turn, first come first served. Sixteen responses each writing a chunk per turn
 * would hold the loop sixteen chunks long between two reads of the DNS sockets; taking turns,
 * DNS waits at most one chunk however many responses are being written.
 */
export function turns(): { next(): Promise<void> } {
  const waiting: (() => void)[] = []
  const pump = () => {
    waiting.shift()!()
    if (waiting.length > 0) setImmediate(pump)
  }
  return {
    next: () => new Promise<void>(resolve => {
      if (waiting.push(resolve) === 1) setImmediate(pump)
    }),
  }
}

/** Resolves once `res` may be written again, or is closed. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise(resolve => {
    const done = () => { res.off('drain', done); res.off('close', done); resolve() }
    res.on('drain', done)
    res.on('close', done)
  })
}

/** The admin listener: /metrics, /healthz, /readyz, /api/clients, /api/check. */
export async function startAdmin(opts: AdminOptions): Promise<AdminServer> {
  const hp = splitHostPort(opts.listen)
  if (!hp) throw new AppError('USAGE', `admin listen "${opts.listen}": expected HOST:PORT`)

  const allowHosts = new Set(opts.allowHosts?.map(h => h.toLowerCase()))
  const turn = turns()

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!hostAllowed(req.headers.host, allowHosts)) {
      return json(res, 421, { error: `Host ${JSON.stringify(req.headers.host)} is not served here: ask by IP address or localhost, or list the name in admin.allowHosts` })
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD')
      return json(res, 405, { error: `method ${req.method} not allowed` })
    }
    const url = URL.canParse(req.url!, 'http://admin') ? new URL(req.url!, 'http://admin') : undefined
    if (!url) return json(res, 400, { error: 'bad request target' })
    switch (url.pathname) {
      case '/metrics':
        return send(res, 200, opts.metrics.registry.contentType, await opts.metrics.registry.metrics())
      case '/healthz':
        return send(res, 200, 'text/plain; charset=utf-8', 'ok\n')
      case '/readyz': {
        const s = opts.getSnapshot()
        const ready = opts.ready() && s !== undefined
        const lists = s ? s.lists.map(l => ({ name: l.name, action: l.action, entries: l.entries, allows: l.allows })) : []
        // a remote list with no copy yet is named, but is no reason for 503: a dead list URL (or
        // an expired token) would otherwise keep DNS out of service, the local lists with it
        return json(res, ready ? 200 : 503, { ready, lists, unloaded: unloaded(opts.remote?.() ?? []) })
      }
      case '/api/clients':
        return sendClients(url, req, res)
      case '/api/check': {
        const name = url.searchParams.get('name')
        if (!name) return json(res, 400, { error: 'missing ?name=' })
        const s = opts.getSnapshot()
        if (!s) return json(res, 503, { error: 'lists not loaded' })
        const asked = url.searchParams.get('client') || '127.0.0.1'
        if (isIP(asked) === 0) return json(res, 400, { error: `client "${asked}" is not an IP address` })
        const client = canonicalIp(asked)              // named as the log lines name it
        // a URL or host:port: its host, as `check` takes it
        const { decision, ...notes } = checkDecision(s, name, client)
        const check = decisionFields(decision, client, notes)
        let explanation = explainDecision(decision, client, notes)
        if (check.entry) {
          // the entry's source as a file name or a bare URL, in the fields and in the text
          const full = check.entry.source
          const short = shortSource(full)
          check.entry.source = short
          check.reason = check.reason.split(full).join(short)
          explanation = explanation.split(full).join(short)
        }
        return json(res, 200, { ...check, explanation })
      }
      default:
        return json(res, 404, { error: `no such path ${url.pathname}` })
    }
  }

  /**
   * `/api/clients[?limit=N][&client=IP|CIDR]...`: the `limit` (default 1000) most recently seen
   * clients among those `client` selects, after the counts (`total` in the table, `matched` by
   * `client`, `count` in this response). Written client by client, a chunk at a time: the whole
   * table as one string ran out of string length (and memory) and held the event loop for seconds.
   */
  async function sendClients(url: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const limitText = url.searchParams.get('limit') ?? String(CLIENTS_LIMIT)
    if (!/^\d{1,7}$/.test(limitText)) return json(res, 400, { error: `limit "${limitText}" is not a whole number from 0 to 9999999` })
    const limit = Number(limitText)
    const wanted = url.searchParams.getAll('client')
    const bad = wanted.find(c => parseCidr(c) === undefined)
    if (bad !== undefined) return json(res, 400, { error: `client "${bad}" is not an address or a CIDR` })
    const only = wanted.length > 0 ? new CidrSet(wanted) : undefined
    if (req.method === 'HEAD') {
      res.writeHead(200, { ...HEADERS, 'content-type': JSON_TYPE })
      return void res.end()
    }
    let closed = false
    res.once('close', () => { closed = true })
    let picked: ClientRow[] | undefined
    let chunk = ''
    let i = 0
    do {
      // each chunk on a turn of the event loop of its own, the first too (a flood of small
      // requests, the counts alone, must not all be answered in the turn they arrive in): a
      // socket with room in its buffer drains at once, so waiting for 'drain' alone would not let DNS in
      await turn.next()
      if (closed) return
      if (picked === undefined) {
        // the rows picked in one turn (the first `limit`, or a pass over the table for `client`),
        // each turned into JSON when its chunk is written
        const total = opts.clients.size
        let matched = 0
        picked = []
        for (const row of opts.clients.rows()) {
          if (only && !only.has(row.ip)) continue
          if (++matched <= limit) picked.push(row)
          else if (!only) { matched = total; break }
        }
        res.writeHead(200, { ...HEADERS, 'content-type': JSON_TYPE })
        chunk = `{"total":${total},"matched":${matched},"limit":${limit},"count":${picked.length},"clients":[`
      }
      for (; i < picked.length && chunk.length < CHUNK_CHARS; i++) chunk += (i === 0 ? '' : ',') + picked[i]!.json()
      if (i < picked.length) {
        if (!res.write(chunk)) await drained(res)
        chunk = ''
      }
    } while (i < picked.length)
    res.end(chunk + ']}\n')
  }

  // An admin request is a GET without a body: its head must arrive within `timeout`, and so
  // must the next request on a kept-alive connection. Node checks the head and request timeouts
  // every connectionsCheckingInterval (30 s by default: an idle connection was held ~73 s).
  const timeout = opts.timeout ?? ADMIN_TIMEOUT_MS
  const server = createServer({
    headersTimeout: timeout, requestTimeout: timeout, keepAliveTimeout: timeout,
    connectionsCheckingInterval: Math.min(1000, timeout), maxHeaderSize: 8192,
  }, (req, res) => {
    handle(req, res).catch((e: Error) => {
      if (res.headersSent) res.destroy()   // a response under way: cut short, so it reads as incomplete
      else json(res, 500, { error: e.message })
    })
  })
  // and a connection that moves nothing (a client that stops reading a response) is closed
  server.setTimeout(2 * timeout)
  limitConnections(server, opts, timeout)
  server.on('error', () => { /* after listen: a socket-level failure; listen errors reject below */ })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(hp.port, hp.host, () => { server.off('error', reject); resolve() })
  })
  const addr = server.address() as AddressInfo
  return {
    address: addr.address,
    port: addr.port,
    close: () => new Promise<void>(resolve => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}
