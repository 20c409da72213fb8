import type { IncomingMessage, Server as HttpServer } from 'node:http'
import type { Config } from '../snapshot-types.js'
import { parseConnectHead, type ConnectHead } from './connect-head.js'
import type { Conn } from './context.js'
import { handOver } from './linger.js'

/** A plain-HTTP client connection's pipeline: requests waiting for the response before them. */
export interface HttpConn extends Conn {
  readonly waiting: (() => void)[]
  /** Reading from the client is stopped while MAX_WAITING requests wait. */
  held: boolean
  /** The last request answered before its body was all read (the rest is read and dropped). */
  unread?: IncomingMessage
}

/** What the front door needs from the proxy it opens into. */
export interface FrontDoor {
  /** proxy settings as they were at start (node's http server keeps its header size and time from then too). */
  readonly settings: Config['proxy']
  readonly clock: () => bigint
  /** The http server a connection that does not start with the plainest CONNECT head is given to. */
  readonly http: HttpServer
  /** Serve a CONNECT (its head parsed, `head` the bytes after it). */
  connect(conn: HttpConn, h: ConnectHead, head: Buffer): void
  /** Answer a head that cannot be served (400, 408, 431) and close. */
  refuseHead(conn: HttpConn, status: number, why: string): void
}

/**
 * The front door of a client connection. The first bytes are read here: the plainest CONNECT
 * head (parseConnectHead) goes straight to the CONNECT handler, which saves node's http
 * machinery per tunnel; anything else is given back and handed to the http server, which
 * parses and answers it as before. The header deadline runs from the accept until a first
 * request head is complete, whichever path parses it (for a trusted peer, the time spent on
 * its PROXY header counts too). Until the first byte the connection is idle: when
 * proxy.idleTimeout is the shorter, it is closed then without an answer, as node's server
 * closes an idle connection. Header size and time are the values at start, as node's server
 * has them.
 */
export function frontDoor(conn: HttpConn, door: FrontDoor): void {
  const { http, clock, connect, refuseHead } = door
  const { headerTimeout, idleTimeout, maxHeaderBytes } = door.settings
  const socket = conn.socket
  const left = Math.max(0, headerTimeout - Number(clock() - conn.start) / 1e6)
  const idleFirst = idleTimeout > 0 && idleTimeout < left
  const onEnd = () => {                            // a client gone before its first byte, as node's server does
    socket.off('data', onData)
    socket.end()
  }
  const onData = (b: Buffer) => {
    socket.off('data', onData)
    socket.off('end', onEnd)
    socket.pause()
    const h = parseConnectHead(b, maxHeaderBytes)
    if (h) {
      clearTimeout(timer)
      connect(conn, h, b.subarray(h.length))
      return
    }
    if (idleFirst) {                               // no longer idle: the header deadline is what remains
      clearTimeout(timer)
      timer = setTimeout(late, Math.max(0, headerTimeout - Number(clock() - conn.start) / 1e6))
    }
    socket.unshift(b)
    handOver(http, socket)
    // node resumes a socket whenever a request body is read or a response ends: while the
    // pipeline is held, every resume is undone (after node's own listener, which starts reading)
    socket.on('resume', () => { if (conn.held) socket.pause() })
    socket.resume()
  }
  const late = () => {
    if (conn.requests > 0 || !socket.writable) return  // a head was complete, or the connection is closing (node's own 408 came first)
    socket.off('data', onData)                     // no byte yet: what comes now is dropped, not parsed (refuseHead lingers)
    socket.off('end', onEnd)
    refuseHead(conn, 408, `no complete request head within proxy.headerTimeout (${headerTimeout} ms)`)
  }
  const idle = () => {
    conn.close['error.message'] = `idle timeout (proxy.idleTimeout ${idleTimeout} ms) before a first byte`
    socket.destroy()
  }
  let timer = setTimeout(idleFirst ? idle : late, idleFirst ? idleTimeout : left)
  socket.once('close', () => clearTimeout(timer))
  socket.once('end', onEnd)
  socket.on('data', onData)
  socket.resume()                                  // paused after a PROXY protocol header
}
