import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Decision } from '../policy/types.js'
import type { EventOutcome } from '../observe/types.js'
import type { Snapshot } from '../snapshot-types.js'
import { authorityProblem, closeDestination, decisionDestination, destinationOfName, parseAuthority, urlDomain, type Target } from './address.js'
import { beginRequest } from './close-line.js'
import { clientFields, deniedFields, effectiveClient, namedBy, peerFields, setsOf, type Conn, type ProxyCtx } from './context.js'
import { blocks, clientReason, clientRefusal, decideBadTarget, decideTarget, denial, route, worse } from './decide.js'
import { forward } from './http-exchange.js'
import { lingerClose } from './linger.js'
import { sendError } from './responses.js'

const ABSOLUTE = /^http:\/\/([^/?#]*)(.*)$/i

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
  if (unreadable !== undefined) conn.close['tunnelguard.forwarded_unreadable'] = unreadable
  const fwd = namedBy(conn, client, unreadable)
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
    ctx.evidence.warn('proxy.host_mismatch', { ...clientFields(client), ...peerFields(conn, client), 'url.domain': url.name, 'tunnelguard.host_header': host.name })
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
  // refused while its name resolved (its body's framing failed: the client got a 400, the
  // connection is closing, its close line maybe written): nothing more is answered or sent on;
  // a listed name (an alert too) or a forbidden destination keeps its line (the attempt is the
  // evidence), a plain pass has none
  const refused = conn.poisoned
  if (blocks(decision)) {
    emit(decision, undefined, more)
    return refused ? undefined : refuse(403, clientReason(decision))
  }
  if (!r.ok) {
    // a 502 (the name does not resolve): the client's request failed, and the line says so
    if (refused && r.status !== 403) return
    emit(r.status === 403 ? denial(snap, client.ip, url.name, 'url', r.reason, 'proxy.allowDestinations', decision) : decision,
      undefined, { ...more, 'error.message': r.reason }, r.status === 403 ? undefined : 'failure')
    return refused ? undefined : refuse(r.status, r.reason)
  }
  if (refused) {
    if (decision.action === 'alert') emit(decision, undefined, more)
    return
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
