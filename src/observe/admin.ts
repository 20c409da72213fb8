import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { isIP, type AddressInfo } from 'node:net'
import { explainCheck } from '../commands/explain.js'
import { splitHostPort } from '../config/schema.js'
import { AppError } from '../errors.js'
import type { Snapshot } from '../snapshot-types.js'
import type { ClientTable } from './client-table.js'
import type { Metrics } from './metrics.js'

export interface AdminOptions {
  /** HOST:PORT; port 0 picks a free one. */
  readonly listen: string
  readonly metrics: Metrics
  readonly clients: ClientTable
  readonly getSnapshot: () => Snapshot | undefined
  /** True once the lists are loaded. */
  readonly ready: () => boolean
}

export interface AdminServer {
  readonly address: string
  readonly port: number
  close(): Promise<void>
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' })
  res.end(body)
}

const json = (res: ServerResponse, status: number, v: unknown) => send(res, status, 'application/json; charset=utf-8', JSON.stringify(v) + '\n')

/** The admin listener: /metrics, /healthz, /readyz, /api/clients, /api/check. */
export async function startAdmin(opts: AdminOptions): Promise<AdminServer> {
  const hp = splitHostPort(opts.listen)
  if (!hp) throw new AppError('USAGE', `admin listen "${opts.listen}": expected HOST:PORT`)

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
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
        return json(res, ready ? 200 : 503, { ready, lists })
      }
      case '/api/clients': {
        // each row names its machine as its decisions' lines did (the lease held then), not as of now
        const clients = opts.clients.list()
        return json(res, 200, { count: clients.length, clients })
      }
      case '/api/check': {
        const name = url.searchParams.get('name')
        if (!name) return json(res, 400, { error: 'missing ?name=' })
        const s = opts.getSnapshot()
        if (!s) return json(res, 503, { error: 'lists not loaded' })
        const client = url.searchParams.get('client') || '127.0.0.1'
        if (isIP(client) === 0) return json(res, 400, { error: `client "${client}" is not an IP address` })
        return json(res, 200, { ...JSON.parse(explainCheck(s, name, client, true)), explanation: explainCheck(s, name, client, false) })
      }
      default:
        return json(res, 404, { error: `no such path ${url.pathname}` })
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e: Error) => json(res, 500, { error: e.message }))
  })
  server.on('error', () => { /* after listen: a socket-level failure; listen errors reject below */ })
  server.on('clientError', (_e, socket) => { socket.destroy() })
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
