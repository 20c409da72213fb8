import type { Socket } from 'node:net'
import type { Decision, Where } from '../policy/types.js'
import type { Snapshot } from '../snapshot-types.js'
import { parseAuthority, type Target } from './address.js'
import type { Peer, ProxyCtx } from './context.js'
import { blocks, chainOf, decideTarget, denial, worse } from './decide.js'
import { readFrom } from './hello-reader.js'
import { RequestHeadParser } from './request-head.js'

/** What the first bytes of a tunnel that are not TLS come to. */
export interface Plain {
  readonly decision: Decision
  /** Every byte read from the client so far: the tunnel's first data. */
  readonly data: Buffer
  /** Fields for the decision line: tunnelguard.sni_status, the Host, CNAME chains, mismatch. */
  readonly extra: Record<string, unknown>
  /** The host of an absolute-form request-target (url.domain). */
  readonly urlDomain?: string
  /** The Host header's name, as decided. */
  readonly host?: string
  /** Why the tunnel ends without a decision to block it: the client closed before its head was complete. */
  readonly gone?: string
}

/** The authority of an absolute-form request-target (`http://host:port/path`, any scheme). */
const ABSOLUTE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/

/**
 * The bytes after CONNECT are not TLS. With proxy.nonTls: block the tunnel is refused. With
 * `decide`, when they are an HTTP/1.x request its head is read (within `timeoutMs` and
 * proxy.maxHeaderBytes) and the host of an absolute-form target (`url`) and the Host header
 * (`host`), or the authority of a CONNECT sent on through the tunnel to another proxy (`connect`),
 * are decided like plain HTTP's, with the CNAME chain of a name that is not the CONNECT
 * host (as an SNI's): the worse decision wins. A head that cannot be read safely, or is not
 * complete in time, is blocked (fail closed). Only the first request is read: later ones on a
 * kept-alive tunnel pass unread. Bytes that are no HTTP request are decided on the CONNECT host alone.
 */
export async function decidePlain(ctx: ProxyCtx, snap: Snapshot, client: Peer, target: Target, first: Decision, decision: Decision,
  socket: Socket, head: Buffer, timeoutMs: number): Promise<Plain> {
  const cfg = snap.config.proxy
  if (cfg.nonTls === 'block') {
    const why = 'the bytes after CONNECT are not TLS (proxy.nonTls: block)'
    return { decision: denial(snap, client.ip, first.name, 'connect', why, 'proxy.nonTls', decision), data: head, extra: { 'tunnelguard.sni_status': 'not-tls' } }
  }
  const parser = new RequestHeadParser(cfg.maxHeaderBytes)
  const { result, data } = await readFrom(socket, head, timeoutMs, bytes => parser.parse(bytes()))
  const failClosed = (why: string): Plain => ({
    decision: denial(snap, client.ip, first.name, 'host', `${why}: blocked, fail closed`, undefined, decision),
    data, extra: { 'tunnelguard.sni_status': 'http-invalid' },
  })
  if (result.kind === 'not-http') return { decision, data, extra: { 'tunnelguard.sni_status': 'not-tls' } }
  if (result.kind === 'eof') return { decision, data, extra: { 'tunnelguard.sni_status': 'eof' }, gone: 'no complete HTTP request head (eof)' }
  if (result.kind === 'timeout') return failClosed('HTTP request head in the tunnel not complete within proxy.helloTimeout')
  if (result.kind === 'invalid') return failClosed(`malformed HTTP request in the tunnel (${result.reason})`)
  const named: [Target, Where][] = []
  const abs = ABSOLUTE.exec(result.target)
  if (abs) {
    const t = parseAuthority(abs[1]!, 80)
    if (!t) return failClosed('malformed HTTP request in the tunnel (bad host in the request-target)')
    named.push([t, 'url'])
  } else if (!result.target.startsWith('/') && result.target !== '*') {
    // authority-form: a CONNECT to another proxy from inside the tunnel names where it goes
    const t = parseAuthority(result.target, 443)
    if (!t) return failClosed('malformed HTTP request in the tunnel (bad request-target)')
    named.push([t, 'connect'])
  }
  // an empty Host names no server (the edge falls back to its default, as without one)
  if (result.host) {
    const t = parseAuthority(result.host, 80)
    if (!t) return failClosed('malformed HTTP request in the tunnel (bad Host header)')
    named.push([t, 'host'])
  }
  const extra: Record<string, unknown> = { 'tunnelguard.sni_status': 'http' }
  const seen = new Set([first.name])
  let host: string | undefined
  for (const [t, where] of named) {
    const d = decideTarget(snap, client.ip, t, where)
    decision = worse(decision, d)
    if (where === 'host') host = extra['tunnelguard.host_header'] = d.name
    if (where === 'connect') extra['tunnelguard.inner_connect'] = d.name
    if (seen.has(d.name)) continue                              // the CONNECT host's chain was decided by route
    seen.add(d.name)
    extra['tunnelguard.mismatch'] = true
    ctx.evidence.warn('proxy.host_mismatch', {
      'client.ip': client.ip, 'client.port': client.port, 'destination.domain': first.name, 'destination.port': target.port,
      [where === 'host' ? 'tunnelguard.host_header' : where === 'url' ? 'url.domain' : 'tunnelguard.inner_connect']: d.name,
    })
    if (blocks(d) || t.ip !== undefined) continue
    const chain = await chainOf(ctx, snap, client.ip, d.name)
    decision = worse(decision, chain.cname)
    if (chain.cnames.length > 0) extra[`tunnelguard.${where}_cnames`] = chain.cnames
    if (chain.error !== undefined) extra[`tunnelguard.${where}_chain_error`] = chain.error
  }
  return { decision, data, extra, urlDomain: abs ? named[0]![0].host : undefined, host }
}
