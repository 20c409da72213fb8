import type { Server as HttpServer } from 'node:http'
import type { Socket } from 'node:net'
import { socketField } from './socket-field.js'

/** How long a client connection closed with its request body unread is still read from, at most (ms). */
export const LINGER_MS = 5000
/** …and how long it waits for a byte from the client, at most (ms). */
export const LINGER_IDLE_MS = 1000

type Listener = (...args: unknown[]) => void
/** What of node's http parser is used here: its own methods, and node's flag for a parser reading the socket's handle itself. */
interface NodeParser { _consumed?: boolean; unconsume(): void; remove(): void }

/** The listeners node's http server put on a client socket handed to it (handOver), by event. */
const hooks = socketField<(readonly [string | symbol, Listener])[]>('tunnelguard.hooks')

/**
 * Give a client socket to node's http server (`connection`), noting the listeners it puts on the
 * socket, so that lingerClose can take the socket back from it.
 */
export function handOver(http: HttpServer, socket: Socket): void {
  const before = new Map(socket.eventNames().map(e => [e, socket.rawListeners(e)]))
  http.emit('connection', socket)
  const added: (readonly [string | symbol, Listener])[] = []
  for (const e of socket.eventNames()) {
    const had = before.get(e) ?? []
    for (const f of socket.rawListeners(e)) if (!had.includes(f)) added.push([e, f as Listener])
  }
  hooks.set(socket, added)
}

/**
 * Take a socket from node's http server, as node does itself when a request upgrades: its
 * listeners off the socket (data, end, error, timeout, drain, pause and resume; not `close`, which
 * frees the parser and aborts a request still being read), and its parser off the socket's
 * handle (it reads the handle itself) and out of the server's header-timeout checks. What the
 * client sends after that is read by no parser.
 */
function takeBack(socket: Socket): void {
  const added = hooks.get(socket)
  if (!added) return
  hooks.set(socket, undefined)
  for (const [e, f] of added) if (e !== 'close') socket.off(e, f)
  const parser = (socket as Socket & { parser?: NodeParser | null }).parser
  if (!parser) return                              // node took it off already (CONNECT, upgrade)
  parser.unconsume()
  parser._consumed = false
  parser.remove()
}

/**
 * Close a client connection whose request (its body, or what a CONNECT would have tunnelled) was
 * not all read, in stages (RFC 9112 §9.6): the
 * FIN goes right after the response, and what the client still sends is read and dropped until its
 * own FIN, LINGER_IDLE_MS without a byte, or LINGER_MS in all; only then is the socket closed. Closed
 * at once with bytes unread, the kernel would answer with a reset, which can take the response with
 * it: what was still unsent, and at a client that writes its whole body before it reads (Python's
 * http.client), the response it had not read yet. curl stops sending when the answer comes, and
 * closes: the connection is gone at once.
 *
 * A socket node's http server has is taken from it first (takeBack): its parser would parse what
 * comes, the body of a request whose framing was refused among it, and fail on it. The bytes are
 * dropped unparsed: nothing read after this is served.
 */
export function lingerClose(socket: Socket): void {
  takeBack(socket)
  if (socket.destroyed) return                     // gone already (while a CONNECT's name resolved): nothing to wait for
  const close = (): void => { socket.destroy() }
  const timer = setTimeout(close, LINGER_MS)
  socket.once('close', () => clearTimeout(timer))
  socket.once('end', close)
  socket.setTimeout(LINGER_IDLE_MS, close)
  socket.end()
  socket.resume()
}
