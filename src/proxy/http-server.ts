// The proxy's http.Server: what it does with a request, a CONNECT, an Expect and a head it cannot
// parse, for connections the front door hands it (and the CONNECT and refusal paths the door uses).
import { createServer as createHttpServer, type IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { Evidence } from '../observe/types.js'
import type { Config, Snapshot } from '../snapshot-types.js'
import { MAX_HEADER_FIELDS } from './connect-head.js'
import { beginRequest, settleRequest } from './close-line.js'
import { handleConnect, type ConnectRequest } from './connect.js'
import type { Conn, ProxyCtx } from './context.js'
import type { FrontDoor, HttpConn } from './front-door.js'
import { handleRequest } from './http-forward.js'
import { lingerClose } from './linger.js'
import { rawResponse } from './responses.js'
import type { SocketField } from './socket-field.js'

/**
 * Pipelined requests waiting on one connection before reading from it stops. Node parses a whole
 * read (up to 64 KiB) at once, so a client can have more waiting, but only that much more.
 */
export const MAX_WAITING = 32

/**
 * The http.Server that parses what the front door does not, and the door's own CONNECT and
 * refusal paths. `getCtx` gives the proxy's context once its listeners are bound (no request
 * comes before).
 */
export function httpDoor(cfg: Config['proxy'], clock: () => bigint, conns: SocketField<HttpConn>, evidence: Evidence,
  getSnapshot: () => Snapshot, getCtx: () => ProxyCtx): FrontDoor {
  const http = createHttpServer({
    maxHeaderSize: cfg.maxHeaderBytes,
    headersTimeout: cfg.headerTimeout,
    requestTimeout: 0,
    connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(cfg.headerTimeout / 4))),
  })
  http.timeout = cfg.idleTimeout                     // idle client sockets (node destroys them unless a request is in flight)
  // …and between requests (node's default: 5 s); node adds 1 s before it closes, and says the
  // value in each answer's Keep-Alive (timeout=N, in whole seconds)
  http.keepAliveTimeout = cfg.keepAliveTimeout
  http.maxHeadersCount = MAX_HEADER_FIELDS + 1       // one more than allowed, so that a head over the limit shows (see tooManyFields)
  // Sockets come from our own listeners (emit 'connection'); 'listening' starts node's header-timeout checks.
  http.emit('listening')
  /* c8 ignore start - defensive: the handlers catch their own errors */
  const fail = (conn: Conn, e: unknown) => {
    evidence.error('proxy.internal', { 'error.message': (e as Error).message, 'client.ip': conn.client.ip })
    conn.socket.destroy()
  }
  /* c8 ignore stop - end of the defensive handler */
  /** A head with more fields than allowed is refused (431) on whichever path it came, never cut short. */
  const tooManyFields = (conn: Conn, req: IncomingMessage): boolean => {
    if (req.rawHeaders.length <= 2 * MAX_HEADER_FIELDS) return false
    beginRequest(conn)
    // what of its body node parses before refuseHead takes the parser off is dropped: unread, it
    // would pause the socket (node's backpressure), and the rest could not be read and dropped
    req.resume()
    refuseHead(conn, 431, `more than ${MAX_HEADER_FIELDS} header fields`)
    return true
  }
  /**
   * A request line of another major version (`HTTP/2.0`, which llhttp reads): HTTP/2 is not
   * spoken in HTTP/1 syntax (RFC 9113 §3), and it would be forwarded as HTTP/1.1: 505 (RFC 9110 §15.6.6).
   */
  const notHttp1 = (conn: Conn, req: IncomingMessage): boolean => {
    if (req.httpVersionMajor === 1) return false
    req.resume()
    refuseHead(conn, 505, `HTTP/${req.httpVersion}: only HTTP/1.x is spoken here`)
    return true
  }
  /**
   * Pipelined requests are served one at a time: the next is handled (resolved, dialled) once the
   * response before it is finished, so that a connection has at most one outbound request, and a
   * connection that goes away leaves none behind (node never closes the responses still queued).
   * While MAX_WAITING wait, reading from the client stops.
   */
  http.on('request', (req: IncomingMessage, res) => {
    const conn = conns.get(req.socket as Socket)!
    // read after this side was ended (parsed from the same read as a head refused before it, whose
    // connection is closing in stages: lingerClose): nobody is left to answer it, and it is neither
    // decided nor sent on; the connection closes as it was closing
    if (!conn.socket.writable) return
    const start = () => {
      if (tooManyFields(conn, req) || notHttp1(conn, req)) return
      handleRequest(getCtx(), conn, req, res).catch(e => fail(conn, e))
    }
    res.once('close', () => answered(conn))
    // answered before its body was all read (a refusal: node's server reads the rest and drops it)
    res.once('finish', () => { if (!req.complete) conn.unread = req })
    // An upgrade offer (no 'upgrade' listener: node serves it as a plain request, and
    // forwardHeaders drops Upgrade and the Connection tokens) is optional: it is forwarded
    // without it and never switched. Node's parser drops bytes read after such a head, so the
    // connection closes after the answer: a request pipelined behind it is the client's to resend.
    if (req.headers.upgrade !== undefined) res.shouldKeepAlive = false
    if (conn.answering++ === 0) return start()
    conn.waiting.push(start)
    if (conn.waiting.length >= MAX_WAITING && !conn.held) {
      conn.held = true
      conn.socket.pause()
    }
  })
  const answered = (conn: HttpConn) => {
    conn.answering--
    if (!conn.socket.writable) {                     // the client is gone, or its last response is sent: nothing waiting is served
      conn.waiting.length = 0
      return
    }
    const next = conn.waiting.shift()
    if (conn.held && conn.waiting.length < MAX_WAITING) {
      conn.held = false
      conn.socket.resume()
    }
    if (next) return next()
    if (conn.answering === 0 && conn.onAnswered) {
      const then = conn.onAnswered
      conn.onAnswered = undefined
      then()
    }
  }
  // Expect: 100-continue: node would answer 100 at once, and the client would send its body even
  // when the origin (or the proxy) refuses the request. Served as any request instead: the
  // origin's own 100 is forwarded (http-forward), and a final answer without one closes the
  // connection (node's server), so a body never sent is never read as the next request.
  http.on('checkContinue', (req: IncomingMessage, res) => http.emit('request', req, res))
  // An Expect other than 100-continue: node answers 417 without a 'request'; it still completes a head.
  http.on('checkExpectation', (req: IncomingMessage, res) => {
    const conn = conns.get(req.socket as Socket)!
    beginRequest(conn)
    conn.close['http.response.status_code'] = 417
    res.writeHead(417).end()
  })
  const connect = (conn: Conn, req: ConnectRequest, head: Buffer) => {
    const socket = conn.socket
    // node's own idle handling stops at CONNECT: an idle tunnel is closed here
    socket.on('timeout', () => {
      conn.close['error.message'] ??= 'idle timeout'
      socket.destroy()
    })
    socket.setTimeout(getSnapshot().config.proxy.idleTimeout)
    handleConnect(getCtx(), conn, req, socket, head).catch(e => fail(conn, e))
  }
  http.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const conn = conns.get(socket)!
    if (conn.held) {                                // nothing is parsed after a CONNECT: the tunnel reads the socket
      conn.held = false
      // our pause stopped the handle while node's parser consumed it; the stream still counts
      // that read as pending, so no resume() would start it again (node's onSocketResume does this)
      const h = (socket as unknown as { _handle: { reading: boolean; readStart(): void } | null })._handle
      if (h) {
        h.reading = true
        h.readStart()
      }
    }
    // a CONNECT pipelined after requests still being answered: its 200 (or refusal, a 431 or 505
    // too) must follow their responses
    const go = (): void => {
      if (!tooManyFields(conn, req) && !notHttp1(conn, req)) connect(conn, req, head)
    }
    if (conn.answering > 0) conn.onAnswered = go
    else go()
  })
  http.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const conn = conns.get(socket)!
    conn.poisoned = true
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent: boolean } })._httpMessage
    // a reset, an answer under way, or a body cut short after its answer (curl stops
    // sending at a refusal, and closes): nothing to answer, and the close line keeps the status sent
    if (err.code === 'ECONNRESET' || inFlight?.headersSent || conn.unread?.complete === false) return socket.destroy()
    // closing already, in stages (lingerClose took the parser off, in the middle of a read it still
    // finishes), or after an answer that ends it (node destroys it once that is sent): not answered
    if (!socket.writable) return
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
    refuseHead(conn, status, `${err.code}: ${err.message}`)
  })
  const refuseHead = (conn: Conn, status: number, why: string) => {
    evidence.counters.dropped('malformed')
    settleRequest(conn)                              // a request answered before it on the connection keeps its answer
    conn.close['error.message'] = why
    conn.close['http.response.status_code'] = status
    conn.close['event.outcome'] = undefined          // refused: nothing was forwarded
    conn.socket.write(rawResponse(status, status === 408 ? 'request headers not received in time' : status === 431 ? 'request headers too large'
      : status === 505 ? 'only HTTP/1.x is spoken here' : 'malformed request'))
    // the rest of the head, and a body, may be on the way (a client that writes it all before it
    // reads): closed in stages, node's parser taken off first (it would fail on them), or the reset
    // that closing with bytes unread makes could take the answer with it
    lingerClose(conn.socket)
  }
  return { settings: cfg, clock, http, connect, refuseHead }
}
