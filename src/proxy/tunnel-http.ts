import type { Socket } from 'node:net'
import type { Decision, Where } from '../policy/types.js'
import type { Snapshot } from '../snapshot-types.js'
import { destinationFields, parseAuthority, urlDomain, type Target } from './address.js'
import { clientFields, peerFields, type Peer, type ProxyCtx } from './context.js'
import { blocks, chainOf, decideTarget, denial, worse } from './decide.js'
import { readFrom } from './hello-reader.js'
import { RequestHeadParser, type RequestHead } from './request-head.js'
import { RequestFraming } from './request-framing.js'
import { followRequests } from './request-stream.js'
import { ResponseTracker } from './response-stream.js'

type Head = Extract<RequestHead, { kind: 'head' }>

/** A request head's names decided: the worse decision, the line's fields, and what the close line keeps. */
export interface Judged {
  readonly decision: Decision
  /** Fields for the decision line: tunnelguard.sni_status, the Host, CNAME chains, mismatch. */
  readonly extra: Record<string, unknown>
  /** The host of an absolute-form request-target (url.domain). */
  readonly urlDomain?: string
  /** The Host header's name, as decided. */
  readonly host?: string
  /** Whether the head named something no earlier head of the tunnel (nor the CONNECT) named. */
  readonly fresh: boolean
}

/** What the first bytes of a tunnel that are not TLS come to. */
export interface Plain extends Omit<Judged, 'fresh'> {
  /** Every byte read from the client so far: the tunnel's first data. */
  readonly data: Buffer
  /** The first request's head, when one was read and its names decided (the tunnel's later requests are framed from it). */
  readonly head?: Head
  /** Why the tunnel ends without a decision to block it: the client closed before its head was complete. */
  readonly gone?: string
}

/**
 * The most names the requests of one plain-HTTP tunnel may name besides the CONNECT host: each new
 * one costs a CNAME lookup with the client paused, and a line when it is logged. A request that
 * names one more (a browser never reuses a tunnel across hosts) is refused, fail closed.
 */
const MAX_TUNNEL_NAMES = 64

/** The authority of an absolute-form request-target (`http://host:port/path`, any scheme). */
const ABSOLUTE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/

/**
 * The bytes after CONNECT are not TLS. With proxy.nonTls: block the tunnel is refused. With
 * `decide`, when they are an HTTP/1.x request its head is read (within `timeoutMs` and
 * proxy.maxHeaderBytes) and decided by `decideHead`. A head that cannot be read safely, or is
 * not complete in time, is blocked (fail closed). Bytes that are no HTTP request are decided on
 * the CONNECT host alone. The tunnel's later requests are found by RequestFraming and decided
 * by `decideHead` as they come (connect.ts).
 */
export async function decidePlain(ctx: ProxyCtx, snap: Snapshot, client: Peer, target: Target, first: Decision, decision: Decision,
  socket: Socket, head: Buffer, timeoutMs: number, seen: Set<string>, via?: Via): Promise<Plain> {
  const cfg = snap.config.proxy
  if (cfg.nonTls === 'block') {
    const why = 'the bytes after CONNECT are not TLS (proxy.nonTls: block)'
    return { decision: denial(snap, client.ip, first.name, 'connect', why, 'proxy.nonTls', decision), data: head, extra: { 'tunnelguard.sni_status': 'not-tls' } }
  }
  const parser = new RequestHeadParser(cfg.maxHeaderBytes)
  const { result, data } = await readFrom(socket, head, timeoutMs, bytes => parser.parse(bytes()))
  if (result.kind === 'not-http') return { decision, data, extra: { 'tunnelguard.sni_status': 'not-tls' } }
  if (result.kind === 'eof') return { decision, data, extra: { 'tunnelguard.sni_status': 'eof' }, gone: 'no complete HTTP request head (eof)' }
  if (result.kind === 'timeout') return { ...failClosed(snap, client, first.name, decision, 'HTTP request head in the tunnel not complete within proxy.helloTimeout'), data }
  if (result.kind === 'invalid') return { ...failClosed(snap, client, first.name, decision, `malformed HTTP request in the tunnel (${result.reason})`), data }
  const { fresh: _, ...judged } = await decideHead(ctx, snap, client, target, first.name, decision, result, seen, via)
  return { ...judged, data, head: result }
}

/** A request in the tunnel that cannot be read safely: blocked, fail closed, on the CONNECT host's name. */
export function failClosed(snap: Snapshot, client: Peer, connectName: string, decision: Decision, why: string): Judged {
  return {
    decision: denial(snap, client.ip, connectName, 'host', `${why}: blocked, fail closed`, undefined, decision),
    extra: { 'tunnelguard.sni_status': 'http-invalid' }, fresh: false,
  }
}

/**
 * A request head's names, decided like plain HTTP's: the host of an absolute-form target
 * (`url`) and the Host header (`host`), or the authority of a CONNECT sent on through the tunnel
 * to another proxy (`connect`), with the CNAME chain of a name that is not in `seen` (the
 * CONNECT host and the names earlier heads of the tunnel decided; those new here are added):
 * the worse of them and `decision` wins.
 */
export async function decideHead(ctx: ProxyCtx, snap: Snapshot, client: Peer, target: Target, connectName: string, decision: Decision,
  result: Head, seen: Set<string>, via?: Via): Promise<Judged> {
  const bad = (why: string): Judged => failClosed(snap, client, connectName, decision, `malformed HTTP request in the tunnel (${why})`)
  const named: [Target, Where][] = []
  const abs = ABSOLUTE.exec(result.target)
  if (abs) {
    const t = parseAuthority(abs[1]!, 80)
    if (!t) return bad('bad host in the request-target')
    named.push([t, 'url'])
  } else if (!result.target.startsWith('/') && result.target !== '*') {
    // authority-form: a CONNECT to another proxy from inside the tunnel names where it goes
    const t = parseAuthority(result.target, 443)
    if (!t) return bad('bad request-target')
    named.push([t, 'connect'])
  }
  // an empty Host names no server (the edge falls back to its default, as without one)
  if (result.host) {
    const t = parseAuthority(result.host, 80)
    if (!t) return bad('bad Host header')
    named.push([t, 'host'])
  }
  const extra: Record<string, unknown> = { 'tunnelguard.sni_status': 'http' }
  const r = await decideNames(ctx, snap, client, target, connectName, decision, named, seen, extra, via)
  if (r.capped) return { decision: r.decision, extra: { 'tunnelguard.sni_status': 'http-invalid' }, fresh: false }
  const host = extra['tunnelguard.host_header'] as string | undefined
  return { decision: r.decision, extra, urlDomain: abs ? urlDomain(named[0]![0]) : undefined, host, fresh: r.fresh }
}

/** The peer that named the client (`source.ip`, `source.port`: peerFields), for the mismatch warnings. */
type Via = ReturnType<typeof peerFields>

/** The field a name seen in the tunnel is logged under, by where it was seen. */
const FIELD_OF: Readonly<Partial<Record<Where, string>>> = {
  host: 'tunnelguard.host_header', url: 'url.domain', connect: 'tunnelguard.inner_connect', sni: 'tls.client.server_name',
}

/**
 * Names seen in a tunnel (a request head's, or the SNI of TLS through a proxy behind), decided: a
 * name's own decision unless `decision` (the CONNECT's) is worse, or a later name's is. A name
 * not in `seen` (the CONNECT host and the names the tunnel named before) is added, warned of as a
 * mismatch, and its CNAME chain decided, its cnames and chain error put in `extra` by where it
 * was seen; `fresh` says some name was. `capped`: a new name past MAX_TUNNEL_NAMES, unless a
 * list blocks it anyway: the decision is then that refusal (fail closed).
 */
export async function decideNames(ctx: ProxyCtx, snap: Snapshot, client: Peer, target: Target, connectName: string, decision: Decision,
  named: readonly (readonly [Target, Where])[], seen: Set<string>, extra: Record<string, unknown>, via?: Via): Promise<{ decision: Decision; fresh: boolean; capped?: true }> {
  let fresh = false
  for (const [t, where] of named) {
    const d = decideTarget(snap, client.ip, t, where)
    decision = worse(d, decision)
    if (where === 'host' || where === 'connect') extra[FIELD_OF[where]!] = d.name
    if (d.name !== connectName) extra['tunnelguard.mismatch'] = true
    if (seen.has(d.name)) continue                              // its chain was decided already (by route, or an earlier head)
    if (seen.size > MAX_TUNNEL_NAMES && !blocks(d)) {
      return { decision: failClosed(snap, client, connectName, decision, `more than ${MAX_TUNNEL_NAMES} different names in one tunnel`).decision, fresh, capped: true }
    }
    seen.add(d.name)
    fresh = true
    ctx.evidence.warn(where === 'sni' ? 'proxy.sni_mismatch' : 'proxy.host_mismatch', {
      ...clientFields(client), ...via, ...destinationFields(target, connectName), 'destination.port': target.port,
      [FIELD_OF[where]!]: d.name,
    })
    if (blocks(d) || t.ip !== undefined) continue
    const chain = await chainOf(ctx, snap, client.ip, d.name)
    decision = worse(decision, chain.cname)
    if (chain.cnames.length > 0) extra[`tunnelguard.${where}_cnames`] = chain.cnames
    if (chain.error !== undefined) extra[`tunnelguard.${where}_chain_error`] = chain.error
  }
  return { decision, fresh }
}

/**
 * How a plain-HTTP tunnel's client side reaches `up` (request by request), instead of a pipe;
 * it returns what reads the server's bytes as they go to the client (true: no more).
 */
export type Follow = (client: Socket, up: Socket) => (chunk: Buffer) => boolean

/** A decision line of the tunnel: the decision, its extra fields, the URL host and the SNI when there are. */
export type TunnelLine = (d: Decision, extra: Record<string, unknown>, urlDomain?: string, sni?: string) => void

/**
 * The later requests of a plain-HTTP tunnel whose first request (`first`, decided) was let
 * through: each head decided by `decideHead` against `atConnect` (the CONNECT's decision) and the
 * names the tunnel named so far (`seen`); the server's answers followed (ResponseTracker) for a
 * switch of protocols; TLS through a proxy behind has its SNI decided by `decideNames`. A name not
 * named before gets a `line`, numbered (`tunnelguard.request`), and so does a refusal, which also
 * goes on `close` (the close line's fields, with the requests read: `tunnelguard.tunnel_requests`).
 */
export function followPlain(ctx: ProxyCtx, cfg: { readonly maxHeaderBytes: number; readonly helloTimeout: number }, client: Peer, target: Target,
  connectName: string, atConnect: Decision, seen: Set<string>, first: Head, rest: Buffer, close: Record<string, unknown>, line: TunnelLine, via?: Via): Follow {
  let n = 1
  const count = (): void => { close['tunnelguard.tunnel_requests'] = n }
  count()
  const refused = (d: Decision, extra: Record<string, unknown>, urlDomain?: string, host?: string, sni?: string): false => {
    line(d, { ...extra, 'tunnelguard.request': n }, urlDomain, sni)
    close['error.message'] = `blocked: ${d.reason}`
    if (host !== undefined) close['tunnelguard.host_header'] = host
    return false
  }
  const judge = async (next: Head): Promise<boolean> => {
    n++
    count()
    const j = await decideHead(ctx, ctx.getSnapshot(), client, target, connectName, atConnect, next, seen, via)
    if (blocks(j.decision)) return refused(j.decision, j.extra, j.urlDomain, j.host)
    // a name the tunnel has not named before gets its own line; a repeat of one does not
    if (j.fresh) line(j.decision, { ...j.extra, 'tunnelguard.request': n }, j.urlDomain)
    return true
  }
  const unframed = (why: string, atHead: boolean): void => {
    if (atHead) n++
    count()
    const j = failClosed(ctx.getSnapshot(), client, connectName, atConnect, `malformed HTTP request in the tunnel (${why})`)
    refused(j.decision, j.extra)
  }
  // TLS through a proxy behind the destination: its SNI decided as a CONNECT's own is
  const judgeHello = async (hello: { names: readonly string[]; ech: boolean }): Promise<boolean> => {
    const more: Record<string, unknown> = { 'tunnelguard.sni_status': hello.names.length === 0 ? 'none' : 'ok', 'tunnelguard.inner_tls': true }
    if (hello.ech) more['tunnelguard.ech'] = close['tunnelguard.ech'] = true   // the close line too: a pass line is not logged at log.queries: matched
    const named = hello.names.map(name => [{ host: name, port: target.port }, 'sni'] as const)
    const got = await decideNames(ctx, ctx.getSnapshot(), client, target, connectName, atConnect, named, seen, more, via)
    if (blocks(got.decision)) return refused(got.decision, more, undefined, undefined, hello.names[0])
    if (got.fresh) line(got.decision, { ...more, 'tunnelguard.request': n }, undefined, hello.names[0])
    return true
  }
  return (from, up) => {
    // the server's answers tell whether it switched protocols (bytes that are no request may then go on unread)
    const server = new ResponseTracker()
    server.sent(first.method, first.upgrade)
    const gone = (): void => server.end()
    up.once('end', gone)
    up.once('close', gone)
    followRequests(from, up, new RequestFraming(cfg.maxHeaderBytes, first), rest, judge, unframed, cfg.helloTimeout, server,
      judgeHello, first.method === 'CONNECT')
    return chunk => {
      server.feed(chunk)
      return server.done
    }
  }
}
