import type { Socket } from 'node:net'

/** How long a client connection closed with its request body unread is still read from, at most (ms). */
export const LINGER_MS = 5000
/** …and how long it waits for a byte from the client, at most (ms). */
export const LINGER_IDLE_MS = 1000

/**
 * Close a client connection whose request body was not all read, in stages (RFC 9112 §9.6): the
 * FIN goes right after the response, and what the client still sends is read and dropped until its
 * own FIN, LINGER_IDLE_MS without a byte, or LINGER_MS in all; only then is the socket closed. Closed
 * at once with bytes unread, the kernel would answer with a reset, which can take the response with
 * it: what was still unsent, and at a client that writes its whole body before it reads (Python's
 * http.client), the response it had not read yet. curl stops sending when the answer comes, and
 * closes: the connection is gone at once.
 *
 * The bytes are read where they are read now (node's http parser, which drops a body nobody reads);
 * the caller resumes the request.
 */
export function lingerClose(socket: Socket): void {
  const close = (): void => { socket.destroy() }
  const timer = setTimeout(close, LINGER_MS)
  socket.once('close', () => clearTimeout(timer))
  socket.once('end', close)
  socket.setTimeout(LINGER_IDLE_MS, close)
  socket.end()
  socket.resume()
}
