// A plain-HTTP request allowed by http-forward, sent on to the origin (or the parent) with node's
// http client and the keep-alive agent, and the answer relayed; 502/504 when the origin or parent fails.
import { request, type ClientRequest, type IncomingMessage, type InformationEvent, type ServerResponse } from 'node:http'
import type { Target } from './address.js'
import type { Conn, ProxyCtx, ProxySets } from './context.js'
import { forwardHeaders, type RawHeaders } from './headers.js'
import { lingerClose } from './linger.js'
import { maxForwards } from './max-forwards.js'
import type { PoolRequestArgs } from './pool-agent.js'
import { sendError } from './responses.js'
import { UpstreamError } from './upstream.js'

/** The largest response head taken from an origin (node's client default is 16 KiB; squid's reply_header_max_size is 64 KiB). */
const MAX_RESPONSE_HEAD = 65_536
/** Methods sent again (without a body) when a reused pooled connection fails before any answer: idempotent ones (RFC 9110 §9.2.2). */
const REPLAYABLE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])
/**
 * The Transfer-Encoding of a response whose body can be relayed (its fields as node joins them,
 * trimmed): chunked alone (node's client takes the chunks off, node's server frames the body
 * anew), or identity, no coding at all (the body runs to the close, and is framed anew). Any
 * other coding (`gzip, chunked`; `chunked, gzip`; `gzip`) would reach the client as the content,
 * still coded, under framing of the proxy's own and with no field left to say so: RFC 9112 §6.1
 * has a proxy decode a coding or not forward it, and tunnelguard decodes none: 502, as squid.
 */
const RELAYED_CODING = /^(?:chunked|identity)$/i
/** A reason phrase node's writeHead takes (HTAB, SP, VCHAR, obs-text: RFC 9112 §4); another is written as node's own. */
const WRITABLE_REASON = /^[\t\x20-\x7e\x80-\xff]*$/
/**
 * Methods node's client sends without a body when nothing frames one (its own list; any other
 * method it would frame in chunks from the start, as the headers are written before the body is).
 */
const NO_BODY_BY_DEFAULT = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE'])

export function forward(ctx: ProxyCtx, conn: Conn, req: IncomingMessage, res: ServerResponse, t: Target, rest: string, ips: readonly string[] | undefined, sets: ProxySets): void {
  if (conn.socket.destroyed) return                 // the client left while the name was resolved: nothing to dial for
  const hostText = t.ip?.includes(':') ? `[${t.ip}]` : t.ip ?? t.host
  const authority = t.port === 80 ? hostText : `${hostText}:${t.port}`
  // a fragment is the client's own (RFC 9112 §3.2: an absolute-form target has none): not sent on
  const hash = rest.indexOf('#')
  const bare = hash < 0 ? rest : rest.slice(0, hash)
  const path = bare.startsWith('/') ? bare : `/${bare}`
  // the framing, in the fields' places: a request nothing frames has no body, and one whose method
  // node would frame in chunks says so (Content-Length: 0, as node wrote it when it wrote the
  // headers at the end of the body: with the fields as a list it writes them at once)
  const framing = ['Host', authority]
  if (req.headers['content-length'] !== undefined) framing.push('Content-Length', req.headers['content-length'])
  else if (req.headers['transfer-encoding'] !== undefined) framing.push('Transfer-Encoding', 'chunked')
  else if (!NO_BODY_BY_DEFAULT.has(req.method!)) framing.push('Content-Length', '0')
  const headers = forwardHeaders(req.rawHeaders, sets.trust.has(conn.client.ip), req.httpVersion, framing)
  if (maxForwards(req, res, headers)) {
    conn.close['http.response.status_code'] = 200
    conn.close['event.outcome'] = 'success'         // answered here, as Max-Forwards: 0 asks
    return
  }
  const parent = sets.parent
  // every address of the name, checked, is dialled in turn until one connects (PoolAgent)
  const opts: PoolRequestArgs = parent
    ? { host: parent.host, port: parent.port, path: `http://${authority}${path}`, headers: parent.auth ? [...headers, 'Proxy-Authorization', parent.auth] : headers }
    : { host: ips![0], addresses: ips, port: t.port, path, headers }
  const who = parent ? 'parent proxy' : 'origin'
  const replayable = REPLAYABLE.has(req.method!) && req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined
  let up: ClientRequest
  /**
   * Before an answer's head is written (the origin's, or a 502/504 of the proxy's): when the
   * client's body is still coming (an origin that refuses an upload answers 413, 403 or 401 at
   * once, and reads no more; one that fails mid-upload), the connection cannot be used after this
   * answer, and the client is told so (`Connection: close`; node's server then closes it once the
   * answer is written: here in stages, lingerClose). Once the answer is written, the rest of the
   * body goes nowhere: not to the origin, whose connection, with a request cut short on it, is
   * closed and never pooled.
   */
  const early = (): void => {
    if (req.complete) return
    res.shouldKeepAlive = false
    conn.socket.destroySoon = () => lingerClose(conn.socket)
    res.once('finish', () => {
      if (req.complete) return
      req.unpipe()
      up.destroy()
      req.resume()
    })
  }
  let answered: IncomingMessage | undefined
  const send = (again: boolean): void => {
    const sent = up = request({ ...opts, method: req.method, agent: ctx.agent, setHost: false, maxHeaderSize: MAX_RESPONSE_HEAD })
    conn.upstreams.add(sent)
    sent.once('close', () => {
      conn.upstreams.delete(sent)
      // closed with neither a response nor an error: node's client does that on a 101 (no
      // 'upgrade' listener), which an origin sends to a request that offered no upgrade
      if (up === sent && !res.headersSent && !res.destroyed) {
        conn.close['http.response.status_code'] = 502
        conn.close['event.outcome'] = 'failure'
        early()
        sendError(res, 502, `${who} switched protocols: not proxied`)
      }
    })
    sent.setTimeout(ctx.getSnapshot().config.proxy.idleTimeout, () => sent.destroy(new UpstreamError(504, `${who} did not answer in time`)))
    sent.on('error', e => {
      // bytes after a whole answer (a 204 or 304 with a body, a second answer unasked): the client
      // gets the answer, the origin's connection is closed (node's client destroys it)
      if (answered?.complete === true) {
        conn.close['tunnelguard.upstream_error'] = e.message
        return
      }
      // a pooled connection the origin had closed (its keep-alive ran out as this was sent): a
      // request without a body whose method is idempotent goes once more, on a new connection
      if (!again && sent.reusedSocket && replayable && !(e instanceof UpstreamError) && !sent.destroyed && !res.headersSent) {
        conn.close['tunnelguard.upstream_retried'] = e.message
        ctx.agent.dropIdle(opts)
        return send(true)
      }
      const status = e instanceof UpstreamError ? e.status : 502
      early()
      conn.close['error.message'] = e.message
      // the origin or parent failed: the client got a 502/504, or an answer cut short
      conn.close['event.outcome'] = 'failure'
      // an answer under way is cut short (sendError): the client got its status, not this one
      if (!res.headersSent) conn.close['http.response.status_code'] = status
      sendError(res, status, e instanceof UpstreamError ? e.message : `${who} failed: ${e.message}`)
    })
    // 1xx the proxy did not ask for are forwarded (RFC 9110 §15.2), never to an HTTP/1.0 client
    // (which cannot read them): 100 Continue (the client's Expect is the origin's to answer),
    // 102 Processing, 103 Early Hints with its fields; no other 1xx has a writer
    if (req.httpVersionMinor !== 0) sent.on('information', info => interim(res, info))
    sent.on('response', upRes => {
      answered = upRes
      // the address that answered (the decision line, written before the dial, names the first)
      if (!parent) conn.close['destination.ip'] = sent.socket!.remoteAddress
      early()
      if (parent && upRes.statusCode === 407) {
        upRes.resume()
        conn.close['http.response.status_code'] = 502
        conn.close['event.outcome'] = 'failure'
        return sendError(res, 502, 'parent proxy requires authentication (407)')
      }
      const te = upRes.headers['transfer-encoding']
      if (te !== undefined && !RELAYED_CODING.test(te) && req.method !== 'HEAD' && upRes.statusCode !== 204 && upRes.statusCode !== 304) {
        const why = `${who} sent Transfer-Encoding "${te}": only chunked is relayed`
        conn.close['http.response.status_code'] = 502
        conn.close['event.outcome'] = 'failure'
        conn.close['error.message'] = why
        sendError(res, 502, why)
        sent.destroy()                                  // its body is not read: the connection is not pooled
        return
      }
      // a 204 has no Content-Length (RFC 9110 §8.6); node's server writes what it is given
      const cl = upRes.headers['content-length'] !== undefined && upRes.headers['transfer-encoding'] === undefined && upRes.statusCode !== 204
      const h = forwardHeaders(upRes.rawHeaders, true, upRes.httpVersion, cl ? ['Content-Length', upRes.headers['content-length']!] : [])
      conn.close['http.response.status_code'] = upRes.statusCode
      conn.close['event.outcome'] = 'success'         // the origin's answer, whatever its status, is relayed
      // the reason phrase as sent (squid relays it; node would write its own), when node can write it
      const reason = upRes.statusMessage!                 // a response read by node's client always has one (maybe empty)
      res.writeHead(upRes.statusCode!, WRITABLE_REASON.test(reason) ? reason : undefined, h)
      upRes.on('error', e => {
        // cut short (fewer bytes than its Content-Length, a chunked body without its last chunk):
        // so is the client's copy, and the request failed; unless the client left first (its
        // close destroys the origin's answer): then nothing failed on the origin's side
        if (!res.destroyed) {
          conn.close['event.outcome'] = 'failure'
          conn.close['error.message'] = `${who} closed before the end of its answer (${e.message})`
        }
        res.destroy()
      })
      upRes.pipe(res)
    })
    if (again) sent.end()                              // no body: nothing of the client's to read again
    else req.pipe(sent)
  }
  res.on('timeout', () => { /* the client waits on us: the upstream timer answers 504 */ })
  res.on('close', () => { if (!res.writableFinished) up.destroy() })
  send(false)
}

function interim(res: ServerResponse, info: InformationEvent): void {
  if (info.statusCode === 100) return void res.writeContinue()
  if (info.statusCode === 102) return void res.writeProcessing()
  if (info.statusCode !== 103) return
  try {
    res.writeEarlyHints(hintsOf(forwardHeaders(info.rawHeaders, true, info.httpVersion)))
  } catch {
    // a Link field node will not write (not <uri>; params): the hints are only hints, and are dropped
  }
}

/** 103's fields as node's writeEarlyHints takes them: `link` by that name (node writes it as Link), the others by theirs, as sent. */
function hintsOf(headers: RawHeaders): Record<string, string | string[]> {
  const hints: Record<string, string | string[]> = {}
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase() === 'link' ? 'link' : headers[i]!
    const prev = hints[name]
    hints[name] = prev === undefined ? headers[i + 1]! : [prev, headers[i + 1]!].flat()
  }
  return hints
}
