import { request, type ClientRequest, type IncomingMessage, type InformationEvent, type ServerResponse } from 'node:http'
import type { Decision } from '../policy/types.js'
import type { EventOutcome } from '../observe/types.js'
import type { Snapshot } from '../snapshot-types.js'
import { authorityProblem, closeDestination, decisionDestination, destinationOfName, parseAuthority, urlDomain, type Target } from './address.js'
import { beginRequest } from './close-line.js'
import { clientFields, deniedFields, effectiveClient, setsOf, type Conn, type ProxyCtx, type ProxySets } from './context.js'
import { blocks, clientReason, clientRefusal, decideBadTarget, decideTarget, denial, route, worse } from './decide.js'
import { forwardHeaders, replaceField, type RawHeaders } from './headers.js'
import type { PoolRequestArgs } from './pool-agent.js'
import { lingerClose } from './linger.js'
import { sendError } from './responses.js'
import { UpstreamError } from './upstream.js'

const ABSOLUTE = /^http:\/\/([^/?#]*)(.*)$/i
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

/**
 * Plain HTTP (absolute-form): the URL host and the Host header are both decided (the worse
 * wins, a mismatch is logged); block → 403 naming the list and entry; a port outside
 * proxy.httpPorts → 403. Allowed requests go to the resolved, checked address (or the parent)
 * with node's http client and a keep-alive agent. The server calls this for one request of a
 * connection at a time (pipelined ones wait for the response before them).
 */
export async function handleRequest(ctx: ProxyCtx, conn: Conn, req: IncomingMessage, res: ServerResponse): Promise<void> {
  beginRequest(conn)
  /* c8 ignore next - defensive: the server starts no request waiting behind refused framing (the connection is ended by then) */
  if (conn.poisoned) return void res.destroy()
  const start = ctx.clock()
  const snap = ctx.getSnapshot()
  const sets = setsOf(snap)
  const { client, unreadable } = effectiveClient(conn.client, req.headers, sets.trust)
  conn.close['client.ip'] = client.ip
  // a client X-Forwarded-For named has no port known: the peer's is not its
  if (client !== conn.client) conn.close['client.port'] = undefined
  // the real client was not found: a responder is to know that the one named may be a proxy
  const fwd = unreadable === undefined ? undefined : { 'tunnelguard.forwarded_unreadable': unreadable }
  Object.assign(conn.close, fwd)
  const refuse = (status: number, reason: string) => {
    conn.close['http.response.status_code'] = status
    if (status >= 500) conn.close['event.outcome'] = 'failure'   // the destination could not be reached
    sendError(res, status, reason)
  }
  if (!sets.allowClients.has(client.ip)) {
    ctx.evidence.counters.dropped('refused')
    ctx.evidence.warn('proxy.client_denied', deniedFields(conn, client, req.method))
    return refuse(403, clientRefusal(client.ip))
  }
  const m = ABSOLUTE.exec(req.url!)
  const target = m ? parseAuthority(m[1]!, 80) : undefined
  const te = req.headers['transfer-encoding']
  const hostHeader = req.headers.host
  const hostT = hostHeader === undefined ? target : parseAuthority(hostHeader, 80)
  // node keeps the first of several Host fields; a server must refuse such a request (RFC 9112 §3.2)
  const hosts = hostFields(req.rawHeaders)
  const bad = !m ? [400, 'only absolute http:// URLs are proxied (https goes through CONNECT)'] as const
    : !target ? [400, `bad host in URL "${m[1]}": ${authorityProblem(m[1]!, 80)}`] as const
      : hosts.length > 1 ? [400, `${hosts.length} Host fields (RFC 9112, 3.2: one at most): blocked, fail closed`] as const
        : !hostT ? [400, `bad Host header "${hostHeader}"`] as const
          : te === undefined ? undefined : badCoding(te, req.httpVersion)
  if (bad) {
    ctx.evidence.counters.dropped('malformed')
    // a URL host or Host that cannot be normalized is blocked, fail closed: it has its decision
    // line; so has a request with several Host fields that names a listed host in any of them
    const url = m && !target
    const named = url ? decideBadTarget(snap, client.ip, m[1]!, 'url')
      : m && hosts.length > 1 ? severalHosts(snap, client.ip, target!, hosts, bad[1])
        : m && !hostT ? decideBadTarget(snap, client.ip, hostHeader!, 'host') : undefined
    if (named) {
      ctx.evidence.decision({
        message: 'proxy.http', decision: named, client, transport: 'tcp', durationNs: Number(ctx.clock() - start),
        destination: destinationOfName(named.name), urlDomain: url ? named.name : undefined, extra: { 'http.request.method': req.method, ...fwd },
      })
    }
    conn.poisoned = true
    conn.close['http.response.status_code'] = bad[0]
    // its body may follow, which node's parser is not to read (its framing is what was refused):
    // node's server ends the connection after this answer (Connection: close), here in stages
    conn.socket.destroySoon = () => lingerClose(conn.socket)
    sendError(res, bad[0], bad[1], true)
    return
  }
  const url = decideTarget(snap, client.ip, target!, 'url')
  const host = decideTarget(snap, client.ip, hostT!, 'host')
  const extra: Record<string, unknown> = { 'http.request.method': req.method }
  if (host.name !== url.name) {
    extra['tunnelguard.mismatch'] = true
    extra['tunnelguard.host_header'] = host.name
    ctx.evidence.warn('proxy.host_mismatch', { ...clientFields(client), 'url.domain': url.name, 'tunnelguard.host_header': host.name })
  }
  const emit = (decision: Decision, ip?: string, more?: Record<string, unknown>, outcome?: EventOutcome) => {
    ctx.evidence.decision({
      message: 'proxy.http', decision, client, transport: 'tcp', durationNs: Number(ctx.clock() - start),
      destination: decisionDestination(target!, ip), urlDomain: urlDomain(target!), extra: { ...extra, ...more, ...fwd },
      ...(outcome === undefined ? {} : { outcome }),
    })
  }
  closeDestination(conn.close, target!)
  let decision = worse(url, host)
  if (blocks(decision)) {
    emit(decision)
    return refuse(403, clientReason(decision))
  }
  const port = target!.port
  if (!sets.httpPorts.some(([lo, hi]) => port >= lo && port <= hi)) {
    const why = `plain HTTP to port ${port} is not allowed (proxy.httpPorts: ${snap.config.proxy.httpPorts.join(', ')})`
    emit(denial(snap, client.ip, url.name, 'url', why, 'proxy.httpPorts', decision))
    return refuse(403, why)
  }
  const r = await route(ctx, snap, sets, client.ip, target!, url.name)
  const more = r.cnames.length > 0 ? { 'tunnelguard.cnames': r.cnames } : {}
  decision = worse(decision, r.ok ? r.cname : undefined)
  if (blocks(decision)) {
    emit(decision, undefined, more)
    return refuse(403, clientReason(decision))
  }
  if (!r.ok) {
    // a 502 (the name does not resolve): the client's request failed, and the line says so
    emit(r.status === 403 ? denial(snap, client.ip, url.name, 'url', r.reason, 'proxy.allowDestinations', decision) : decision,
      undefined, { ...more, 'error.message': r.reason }, r.status === 403 ? undefined : 'failure')
    return refuse(r.status, r.reason)
  }
  emit(decision, r.ip, more)
  forward(ctx, conn, req, res, target!, m![2]!, r.ips, sets)
}

/** The values of a request's Host fields, each as sent (node's `headers.host` keeps the first only). */
function hostFields(raw: readonly string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') out.push(raw[i + 1]!)
  return out
}

/**
 * A request with several Host fields, refused: a block of its own, fail closed, that keeps the
 * match of the worst name it carries (the URL host, each Host) when one is listed, so that the
 * attempt has its decision line; undefined when none is.
 */
function severalHosts(snap: Snapshot, client: string, target: Target, hosts: readonly string[], why: string): Decision | undefined {
  let worst = decideTarget(snap, client, target, 'url')
  for (const h of hosts) {
    const t = parseAuthority(h, 80)
    const d = t ? decideTarget(snap, client, t, 'host') : decideBadTarget(snap, client, h, 'host')
    worst = worse(worst, d)
  }
  if (!worst.entry || worst.action === 'allow') return undefined
  return denial(snap, client, worst.name, worst.where, why, undefined, worst)
}

/**
 * Why a request's Transfer-Encoding (its fields as node joins them) is refused, with the status;
 * undefined for chunked alone, the one coding taken (node's parser takes its framing off, and the
 * body is framed anew). RFC 9112 §6.1: in HTTP/1.0 the framing is faulty; a coding not understood,
 * 501. §6.3: chunked not last, the body's length cannot be told: 400. The connection is closed
 * after either.
 */
function badCoding(te: string, version: string): readonly [number, string] | undefined {
  if (version === '1.0') return [400, 'Transfer-Encoding in an HTTP/1.0 request: its framing cannot be trusted']
  if (/^chunked$/i.test(te)) return undefined
  if (/,\s*chunked$/i.test(te)) return [501, `Transfer-Encoding "${te}" is not implemented: chunked alone is`]
  return [400, `unsupported Transfer-Encoding "${te}": the body's length cannot be told`]
}

function forward(ctx: ProxyCtx, conn: Conn, req: IncomingMessage, res: ServerResponse, t: Target, rest: string, ips: readonly string[] | undefined, sets: ProxySets): void {
  if (conn.socket.destroyed) return                 // the client left while the name was resolved: nothing to dial for
  const hostText = t.ip?.includes(':') ? `[${t.ip}]` : t.ip ?? t.host
  const authority = t.port === 80 ? hostText : `${hostText}:${t.port}`
  const path = rest.startsWith('/') ? rest : `/${rest}`
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
      upRes.on('error', () => res.destroy())           // cut short: so is the client's copy
      upRes.pipe(res)
    })
    if (again) sent.end()                              // no body: nothing of the client's to read again
    else req.pipe(sent)
  }
  res.on('timeout', () => { /* the client waits on us: the upstream timer answers 504 */ })
  res.on('close', () => { if (!res.writableFinished) up.destroy() })
  send(false)
}

/** What this proxy serves itself, for OPTIONS with Max-Forwards: 0. */
const ALLOW = 'GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH'
/** Fields a TRACE echo leaves out: credentials and cookies are not to be reflected (RFC 9110 §9.3.8). */
const NOT_ECHOED = new Set(['authorization', 'proxy-authorization', 'cookie'])

/**
 * Max-Forwards on TRACE and OPTIONS (RFC 9110 §7.6.2): 0 is answered here (TRACE: the request as
 * received, as message/http, without credentials or cookies; OPTIONS: 200 with Allow), and true
 * is returned; a larger value is decremented in the headers to send. Other methods, and a value
 * that is not a number, are forwarded as they are.
 */
function maxForwards(req: IncomingMessage, res: ServerResponse, headers: RawHeaders): boolean {
  const mf = req.headers['max-forwards']
  if ((req.method !== 'TRACE' && req.method !== 'OPTIONS') || typeof mf !== 'string' || !/^\d{1,9}$/.test(mf)) return false
  const n = Number(mf)
  if (n > 0) {
    replaceField(headers, 'max-forwards', String(n - 1))
    return false
  }
  req.resume()
  if (req.method === 'OPTIONS') {
    res.writeHead(200, { allow: ALLOW, 'content-length': 0 })
    res.end()
    return true
  }
  let echo = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (!NOT_ECHOED.has(req.rawHeaders[i]!.toLowerCase())) echo += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`
  }
  res.writeHead(200, { 'content-type': 'message/http', 'content-length': Buffer.byteLength(echo) })
  res.end(echo)
  return true
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
