import { createServer, type Server, type Socket } from 'node:net'
import type { Evidence } from '../observe/types.js'
import type { Snapshot } from '../snapshot-types.js'
import { FrameReader, frame } from './framing.js'
import type { QueryHandler } from './handler.js'

/** Queries one connection may have in flight before we stop reading from it. */
const MAX_PIPELINE = 128

/**
 * DNS over TCP (RFC 7766): frames reassembled across reads, several queries per connection
 * answered as each completes, an idle timeout (reset by every frame, never while queries are
 * in flight) and a cap on connections.
 */
export class TcpListener {
  readonly server: Server
  private readonly sockets = new Set<Socket>()

  constructor(
    private readonly handler: QueryHandler,
    private readonly getSnapshot: () => Snapshot,
    private readonly evidence: Evidence,
  ) {
    this.server = createServer(s => this.accept(s))
    this.server.maxConnections = getSnapshot().config.dns.tcp.maxConnections
    this.server.on('error', e => evidence.warn('dns tcp listener error', { error: e.message }))
    this.server.on('drop', () => evidence.counters.dropped('overload'))
  }

  private accept(socket: Socket): void {
    const tcp = this.getSnapshot().config.dns.tcp
    this.server.maxConnections = tcp.maxConnections
    const counters = this.evidence.counters
    this.sockets.add(socket)
    counters.connections('dns-tcp', 1)
    socket.setNoDelay(true)
    const client = { ip: socket.remoteAddress!, port: socket.remotePort!, transport: 'tcp' as const }
    const reader = new FrameReader()
    let inFlight = 0
    socket.setTimeout(tcp.idleTimeout, () => { if (inFlight === 0) socket.destroy() })
    socket.on('error', () => { /* resets are normal; 'close' follows */ })
    socket.on('close', () => {
      this.sockets.delete(socket)
      counters.connections('dns-tcp', -1)
    })
    socket.on('data', chunk => reader.push(chunk, msg => {
      inFlight++
      if (inFlight >= MAX_PIPELINE) socket.pause()
      this.handler.handle(msg, client, reply => {
        inFlight--
        if (socket.destroyed) return
        if (reply) socket.write(frame(reply))
        if (inFlight < MAX_PIPELINE) socket.resume()
      })
    }))
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(e)
      this.server.once('error', onError)
      this.server.listen({ host, port, ipv6Only: host.includes(':'), exclusive: true }, () => {
        this.server.off('error', onError)
        resolve((this.server.address() as { port: number }).port)
      })
    })
  }

  /** Stop accepting connections (those open stay until `destroyAll`). */
  stopAccepting(): Promise<void> {
    return new Promise(resolve => this.server.close(() => resolve()))
  }

  destroyAll(): void {
    for (const s of this.sockets) s.destroy()
  }
}
