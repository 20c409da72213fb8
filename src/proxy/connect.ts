import type { IncomingHttpHeaders } from 'node:http'
import type { Socket } from 'node:net'
import type { Decision, Where } from '../policy/types.js'
import type { EventOutcome } from '../observe/types.js'
import { authorityProblem, closeDestination, decisionDestination, destinationFields, destinationOfName, parseAuthority, type Target } from './address.js'
import { beginRequest } from './close-line.js'
import { clientFields, deniedFields, effectiveClient, namedBy, peerFields, setsOf, type Conn, type Peer, type ProxyCtx } from './context.js'
import { blocks, chainOf, clientReason, clientRefusal, decideBadTarget, decideTarget, denial, portRefusal, route, worse } from './decide.js'
import { readClientHello, type HelloRead } from './hello-reader.js'
import { lingerClose } from './linger.js'
import { rawResponse } from './responses.js'
import { MAX_HELLO_BYTES } from './sni.js'
import { blockAnswer } from './tunnel-answers.js'
import { decidePlain, followPlain, type Follow } from './tunnel-http.js'
import { tunnel } from './tunnel-open.js'
import { holdParent, UpstreamError, whileDialling, type HeldParent } from './upstream.js'

/** Why proxy.ech: block refuses a ClientHello (after "the ClientHello"). */
const ECH_HIDES = 'uses Encrypted Client Hello (proxy.ech: block): its real server name is hidden'

/** What the CONNECT path reads of a request: node's IncomingMessage or a head read by parseConnectHead. */
export interface ConnectRequest {
  readonly url?: string
  readonly headers: IncomingHttpHeaders
}

/**
 * CONNECT: decide the CONNECT host before any outbound connection (403 on block); resolve it
 * once and check every address; answer 200; read the first bytes: a ClientHello's SNI name, or
 * the Host (and absolute-form URL host) of a plain HTTP request, is decided, with the CNAME chain
 * of such a name that is not the CONNECT host (the worse of all wins); close on block, else dial
 * (direct, or CONNECT through the parent) and splice, the bytes already read first.
 *
 * Documented rules: TLS without SNI is decided on the CONNECT host alone (`tunnelguard.sni_status`
 * none); a malformed or oversized ClientHello, or another TLS record (an alert) before it, is
 * blocked (fail closed); a hello that does not complete within proxy.helloTimeout closes the
 * tunnel without dialling. A hello with Encrypted Client Hello is decided on its outer SNI and
 * logged with `tunnelguard.ech`; with proxy.ech: block it is refused (the first hello, or the
 * second after a HelloRetryRequest). Bytes that are not TLS: with proxy.nonTls: block the tunnel
 * is refused; with `decide` (the default) an HTTP/1.x request's head is read within the same
 * helloTimeout and proxy.maxHeaderBytes and its names decided (sni_status http; a head that is
 * malformed, too large or late is blocked, http-invalid), and so is every later request on the
 * kept-alive tunnel (RequestFraming finds them; a block ends the tunnel); other bytes (another protocol, an SSLv2 hello) are decided
 * on the CONNECT host alone (not-tls). Through a parent, the parent is dialled before the 200 (a
 * parent that cannot be reached is a 502/504) and asked to CONNECT only once the first bytes pass.
 * A failure after the 200 (the origin's dial, the parent's answer) closes the tunnel, after a
 * fatal TLS alert (internal_error) to a TLS client or a 502/504 response to an HTTP request in the
 * tunnel; the close line keeps the 200 and the status it would have had in
 * `tunnelguard.unsent_status`, and what was sent instead in `tunnelguard.failure_sent`.
 */
export async function handleConnect(ctx: ProxyCtx, conn: Conn, req: ConnectRequest, socket: Socket, head: Buffer): Promise<void> {
  beginRequest(conn)
  const start = ctx.clock()
  const snap = ctx.getSnapshot()
  const cfg = snap.config.proxy
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
    conn.close['error.message'] = reason
    socket.write(rawResponse(status, reason))
    // the client may have sent more than its head (a ClientHello right after it): closed at once
    // with those bytes unread, the reset could take the answer with it; closed in stages instead,
    // within LINGER_MS (no half-open leftovers from refused clients)
    lingerClose(socket)
  }
  if (!sets.allowClients.has(client.ip)) {
    ctx.evidence.counters.dropped('refused')
    ctx.evidence.warn('proxy.client_denied', deniedFields(conn, client, 'CONNECT'))
    return refuse(403, clientRefusal(client.ip))
  }
  const target = parseAuthority(req.url!)
  if (!target) {
    ctx.evidence.counters.dropped('malformed')
    const bad = decideBadTarget(snap, client.ip, req.url!, 'connect')
    if (bad) {
      ctx.evidence.decision({
        message: 'proxy.connect', decision: bad, client, transport: 'tcp', durationNs: Number(ctx.clock() - start),
        destination: destinationOfName(bad.name), extra: fwd,
      })
    }
    // what is wrong with it, not a rule the client may have kept (it sent host:port, with a bad host or port)
    return refuse(400, `bad CONNECT target "${req.url}": ${authorityProblem(req.url!)}`)
  }
  closeDestination(conn.close, target)
  const emit = (decision: Decision, ip?: string, sni?: string, extra?: Record<string, unknown>, urlDomain?: string, outcome?: EventOutcome) => {
    ctx.evidence.decision({
      message: 'proxy.connect', decision, client, transport: 'tcp', durationNs: Number(ctx.clock() - start),
      destination: decisionDestination(target, ip), sni, urlDomain, extra: fwd ? { ...extra, ...fwd } : extra,
      ...(outcome === undefined ? {} : { outcome }),
    })
  }
  const first = decideTarget(snap, client.ip, target, 'connect')
  if (blocks(first)) {
    emit(first)
    return refuse(403, clientReason(first))
  }
  if (!cfg.connectPorts.includes(target.port)) {
    const why = portRefusal(target.port, cfg.connectPorts)
    emit(denial(snap, client.ip, target.ip ?? target.host, 'connect', why, 'proxy.connectPorts', first))
    return refuse(403, why)
  }
  const r = await route(ctx, snap, sets, client.ip, target, first.name)
  const cnames = r.cnames.length > 0 ? { 'tunnelguard.cnames': r.cnames } : {}
  let decision = worse(first, r.ok ? r.cname : undefined)
  if (blocks(decision)) {
    emit(decision, undefined, undefined, cnames)
    return refuse(403, clientReason(decision))
  }
  if (!r.ok) {
    // a 502 (the name does not resolve): the client's request failed, and the line says so
    emit(r.status === 403 ? denial(snap, client.ip, first.name, 'connect', r.reason, 'proxy.allowDestinations', decision) : decision,
      undefined, undefined, { ...cnames, 'error.message': r.reason }, undefined, r.status === 403 ? undefined : 'failure')
    return refuse(r.status, r.reason)
  }
  let held: HeldParent | undefined
  if (sets.parent) {
    try {
      held = await whileDialling(socket, () => holdParent(sets.parent!, ctx.connectTimeout, ctx.track))
    } catch (e) {
      const err = e as UpstreamError
      emit(decision, undefined, undefined, { ...cnames, 'error.message': err.message }, undefined, 'failure')
      return refuse(err.status, err.message)
    }
    // gone while the parent was dialled: nothing to hold it for
    if (socket.destroyed) {
      held.socket.destroy()
      return
    }
    conn.upstreams.add(held.socket)                 // given up with the client (a block, a timeout, a reload)
  }
  socket.write('HTTP/1.1 200 Connection established\r\n\r\n')
  conn.close['http.response.status_code'] = 200
  const since = ctx.clock()
  const hello = await readClientHello(socket, head, cfg.helloTimeout, MAX_HELLO_BYTES)
  const result = hello.result
  let data = hello.data
  const extra: Record<string, unknown> = { ...cnames }
  let sni: string | undefined
  let urlDomain: string | undefined
  let gone = result.kind === 'timeout' || result.kind === 'eof' ? `no ClientHello (${result.kind})` : undefined
  let follow: Follow | undefined
  // what the tunnel is let through on besides the CONNECT host, decided again at a reload
  const names: [string, Where][] = r.cnames.map(c => [c, 'cname'])
  let seen: Set<string> | undefined
  if (result.kind === 'hello') {
    extra['tunnelguard.sni_status'] = result.names.length === 0 ? 'none' : 'ok'
    // the close line too: a pass line is not written at log.queries: matched
    if (result.ech) extra['tunnelguard.ech'] = conn.close['tunnelguard.ech'] = true
    sni = result.names[0]
    let outer = first.name                                          // the name the hello is refused under
    for (const n of result.names) {
      const d = snap.policy.decide(client.ip, n, 'sni')
      decision = worse(decision, d)
      outer = d.name
      names.push([n, 'sni'])
      if (d.name === first.name) continue                         // its CNAME chain was decided by route
      mismatch(ctx, conn, client, target, first.name, d.name, extra)
      if (blocks(d)) continue
      const chain = await chainOf(ctx, snap, client.ip, d.name)
      decision = worse(decision, chain.cname)
      for (const c of chain.cnames) names.push([c, 'cname'])
      if (chain.cnames.length > 0) extra['tunnelguard.sni_cnames'] = chain.cnames
      if (chain.error !== undefined) extra['tunnelguard.sni_chain_error'] = chain.error
    }
    // a list's block says more than the setting's: the setting refuses what would go through
    if (result.ech && cfg.ech === 'block' && !blocks(decision)) {
      decision = denial(snap, client.ip, outer, 'sni', `the ClientHello ${ECH_HIDES}`, 'proxy.ech', decision)
    }
  } else if (result.kind === 'invalid') {
    extra['tunnelguard.sni_status'] = 'invalid'
    decision = worse(decision, denial(snap, client.ip, first.name, 'sni', `malformed ClientHello (${result.reason}): blocked, fail closed`, undefined, decision))
  } else if (result.kind === 'not-tls') {
    // an HTTP request's head is decided on its Host (proxy.nonTls: decide); other bytes on the CONNECT host alone
    const atConnect = decision
    seen = new Set([first.name])
    const plain = await decidePlain(ctx, snap, client, target, first, decision, socket, data, cfg.helloTimeout - Number((ctx.clock() - since) / 1_000_000n), seen, peerFields(conn, client))
    decision = plain.decision
    data = plain.data
    Object.assign(extra, plain.extra)
    urlDomain = plain.urlDomain
    gone = plain.gone
    if (plain.host !== undefined) conn.close['tunnelguard.host_header'] = plain.host
    const head = plain.head
    if (head !== undefined) {
      // every later request on the kept-alive tunnel is found and decided as the first was
      follow = followPlain(ctx, cfg, client, target, first.name, atConnect, seen, head, data.subarray(head.length), conn.close,
        (d, more, urlDomain, sni) => emit(d, r.ip, sni, { ...cnames, ...more }, urlDomain), peerFields(conn, client))
      data = data.subarray(0, head.length)
    }
  } else {
    extra['tunnelguard.sni_status'] = result.kind                     // timeout, eof
  }
  if (sni !== undefined) conn.close['tls.client.server_name'] = sni.toLowerCase()   // as the decision line has it
  conn.close['destination.ip'] = r.ip
  emit(decision, r.ip, sni, extra, urlDomain)
  if (gone !== undefined || blocks(decision)) {
    conn.close['error.message'] = blocks(decision) ? `blocked: ${decision.reason}` : gone
    const answer = gone === undefined && !socket.destroyed ? blockAnswer(extra['tunnelguard.sni_status'], decision) : undefined
    if (answer === undefined) {
      socket.destroy()
      return
    }
    conn.close['tunnelguard.block_sent'] = answer.sent
    socket.write(answer.bytes)
    // the rest of what the client sent is unread: closed in stages, so the answer is not lost to a reset
    lingerClose(socket)
    return
  }
  // closed while a name's chain was resolved (idle timeout): nothing to tunnel (its close line is written)
  if (socket.destroyed) return
  // a reload decides the open tunnel again, on the same names with the new lists, and on the
  // proxy's settings a new CONNECT meets (client, port, destinations)
  const again = (d: Decision, why: string, more?: Record<string, unknown>) => emit(d, conn.close['destination.ip'] as string | undefined, sni,
    { ...cnames, ...more, 'event.reason': why, 'tunnelguard.reload': true }, urlDomain)
  const remove = ctx.tunnels.add({
    client, target, names, seen: follow && seen, ips: r.ips, last: decision, snap,
    close: (d, error) => {
      conn.close['error.message'] = `blocked after a reload: ${d.reason}`
      // a setting's refusal says the setting (its reason), a list's the list and entry (a client
      // a peer named is named with that peer, as on every decision line of the connection)
      again(d, `closed after a reload: ${d.policy === undefined ? clientReason(d) : d.reason}`, error === undefined ? undefined : { 'error.message': error })
      for (const up of conn.upstreams) up.destroy()
      socket.destroy()
    },
    alert: d => again(d, `open at a reload that lists it: ${clientReason(d)}; kept open`),
  })
  socket.once('close', remove)
  // a reload since the decision (while the hello was read, a name resolved) closed it: not dialled
  if (socket.destroyed) return
  // a second ClientHello (after a HelloRetryRequest, or sent before the server answered the
  // first) must name what the first did (RFC 8446 4.1.2)
  const retry = result.kind !== 'hello' ? undefined : (again: HelloRead, early: boolean): boolean => {
    if (again.kind === 'timeout' || again.kind === 'eof') {
      conn.close['error.message'] = `no second ClientHello after a HelloRetryRequest (${again.kind})`
      return false
    }
    const name = again.kind === 'hello' ? again.names[0] : undefined
    const d = name === undefined ? undefined : snap.policy.decide(client.ip, name, 'sni')
    const firstName = sni === undefined ? undefined : snap.policy.decide(client.ip, sni, 'sni').name
    const same = again.kind === 'hello' && d?.name === firstName
    const ech = again.kind === 'hello' && again.ech
    if (ech) conn.close['tunnelguard.ech'] = true
    // the same name passes, unless this hello brings ECH under proxy.ech: block (a first one with ECH was refused already)
    if (same && !(ech && cfg.ech === 'block')) return true
    const when = early ? 'sent before the server answered' : 'after a HelloRetryRequest'
    const why = same ? `the ClientHello ${when} ${ECH_HIDES}`
      : again.kind === 'hello'
        ? `the ClientHello ${when} names ${name ?? 'no server'} where the first named ${sni ?? 'none'}: blocked, fail closed`
        : `malformed ClientHello ${when} (${again.kind === 'invalid' ? again.reason : 'not TLS'}): blocked, fail closed`
    const refusal = denial(snap, client.ip, d?.name ?? first.name, 'sni', why, same ? 'proxy.ech' : undefined, d)
    conn.close['error.message'] = `blocked: ${refusal.reason}`
    emit(refusal, r.ip, name, { ...extra, 'tunnelguard.sni_status': 'retry', ...(ech ? { 'tunnelguard.ech': true } : {}) })
    return false
  }
  // a TLS tunnel's bytes after the first hello go through the HelloGate
  const at = result.kind === 'hello' ? result.length : data.length
  await tunnel(ctx, conn, socket, target, r.ips, held, data.subarray(0, at), retry && { check: retry, rest: data.subarray(at) }, cfg.helloTimeout, follow)
}

function mismatch(ctx: ProxyCtx, conn: Conn, client: Peer, target: Target, connect: string, sni: string, extra: Record<string, unknown>): void {
  extra['tunnelguard.mismatch'] = true
  ctx.evidence.warn('proxy.sni_mismatch', {
    ...clientFields(client), ...peerFields(conn, client), ...destinationFields(target, connect),
    'destination.port': target.port, 'tls.client.server_name': sni.toLowerCase(),
  })
}
