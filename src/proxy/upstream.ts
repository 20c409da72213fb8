import { connect, type Socket } from 'node:net'
import type { Parent } from './context.js'
import type { ReadRelay } from './relay.js'

/** Why an upstream could not be reached; `status` is what an HTTP client is told (502 or 504). */
export class UpstreamError extends Error {
  constructor(readonly status: 502 | 504, message: string) {
    super(message)
    this.name = 'UpstreamError'
  }
}

const MAX_PARENT_HEAD = 16_384

/**
 * Wait for `dialled` (a parent's answer, an origin's connect) with the client socket's idle
 * timeout held off, and set it again when the wait succeeds. The wait has its own bound (the
 * connect timeout): a shorter idle timeout would end it first, with a bare close in place of the
 * 502/504 (or the alert) and a close line that says no failure. On a failure it stays off: the
 * caller answers and closes.
 */
export async function whileDialling<T>(client: Socket, dialled: () => Promise<T>): Promise<T> {
  const idle = client.timeout!                         // (set by the listener: proxy.idleTimeout, 0 for none)
  if (idle > 0) client.setTimeout(0)
  const done = await dialled()
  if (idle > 0) client.setTimeout(idle)
  return done
}

/**
 * Open a TCP connection (TCP_NODELAY, as the client side has) within `timeoutMs`; the socket is
 * handed to `track` at once. With `relay`, its reads go to that relay (attach it to a
 * destination), never to 'data', and the relay is released when the connected socket closes
 * (a dial that fails leaves it to the caller). `signal` abandons the dial (dialAny: another
 * address connected first).
 */
export function dial(host: string, port: number, timeoutMs: number, track: (s: Socket) => void, relay?: ReadRelay, signal?: AbortSignal): Promise<Socket> {
  const s = connect({ host, port, allowHalfOpen: true, noDelay: true, ...(relay && { onread: relay.onread }) })
  if (relay) s.once('connect', () => s.once('close', () => relay.release()))
  track(s)
  return connected(s, `${host.includes(':') ? `[${host}]` : host}:${port}`, timeoutMs, signal)
}

/**
 * `s` once it has connected, within `timeoutMs`; else it is destroyed and the error is a 502 (a
 * 504 on the timeout). An abort of `signal` before that destroys it too (a 502 nobody reads).
 */
export function connected(s: Socket, authority: string, timeoutMs: number, signal?: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    /* c8 ignore start - a safety net for the moment between 'connect' and the owner's own listener */
    s.on('error', () => { /* reported through 'close' by whoever owns the socket */ })
    /* c8 ignore stop - end of the safety net */
    const fail = (e: UpstreamError) => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', abandon)
      s.destroy()
      reject(e)
    }
    const abandon = () => fail(new UpstreamError(502, `connect to ${authority} abandoned: another address connected first`))
    const timer = setTimeout(() => fail(new UpstreamError(504, `connect to ${authority} timed out`)), timeoutMs)
    const onError = (e: Error) => fail(new UpstreamError(502, `connect to ${authority} failed: ${e.message}`))
    signal?.addEventListener('abort', abandon, { once: true })
    s.once('error', onError)
    s.once('connect', () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', abandon)
      s.off('error', onError)
      resolve(s)
    })
  })
}

/**
 * How long a connect to one address is waited on before the next address is dialled beside it
 * (RFC 8305 §5, "Connection Attempt Delay"; squid's happy_eyeballs_connect_timeout).
 */
export const ATTEMPT_DELAY_MS = 250

/**
 * `ips` (a name's A and AAAA answers, in any order) in the order they are dialled, as RFC 8305 §4
 * sorts them: the families interleaved, IPv6 first (a "First Address Family Count" of 1), each
 * family in its own order: [v4a, v4b, v6a, v6b] gives [v6a, v4a, v6b, v4b]. A host without an
 * IPv6 route loses nothing (an IPv6 connect fails at once, and the next is dialled at once); one
 * whose IPv6 packets are dropped loses ATTEMPT_DELAY_MS before an IPv4 address is dialled.
 */
export function interleaveFamilies(ips: readonly string[]): string[] {
  const v6 = ips.filter(ip => ip.includes(':'))
  const v4 = ips.filter(ip => !ip.includes(':'))
  const out: string[] = []
  for (let i = 0; i < Math.max(v6.length, v4.length); i++) {
    if (i < v6.length) out.push(v6[i]!)
    if (i < v4.length) out.push(v4[i]!)
  }
  return out
}

/**
 * The first of `ips` (all of them checked already) that `attempt` connects to, within
 * `timeoutMs` in all. They are dialled in their order, each `delayMs` after the one before, or at
 * once when the one before fails, and the attempts under way race (RFC 8305 §5): an address that
 * drops the SYN costs `delayMs`, not a share of the timeout. The first to connect wins; the others
 * are abandoned (`signal`, which a lone address is not given). The last failure is the error when none connects.
 */
export function dialAny(ips: readonly string[], timeoutMs: number, attempt: (ip: string, timeoutMs: number, signal?: AbortSignal) => Promise<Socket>,
  delayMs = ATTEMPT_DELAY_MS): Promise<Socket> {
  if (ips.length === 1) return attempt(ips[0]!, timeoutMs)   // nothing to race (most names: no signal to listen to)
  const won = new AbortController()
  return new Promise((resolve, reject) => {
    const end = Date.now() + timeoutMs
    let next = 0
    let running = 0
    let last: unknown
    let timer: NodeJS.Timeout | undefined
    const start = (): void => {
      clearTimeout(timer)
      const ip = ips[next++]!
      running++
      if (next < ips.length) timer = setTimeout(start, delayMs)
      attempt(ip, Math.max(1, end - Date.now()), won.signal).then(s => {
        clearTimeout(timer)
        won.abort()
        resolve(s)
      }, (e: unknown) => {
        running--
        if (won.signal.aborted) return                // abandoned: another won
        last = e
        if (next < ips.length) start()                // a failure: the next at once
        else if (running === 0) reject(last)
      })
    }
    start()
  })
}

/**
 * A connection to the parent proxy, opened before a CONNECT's `200` (so that a parent that cannot
 * be reached is a `502`/`504` the client reads) and held unasked while the client's first bytes
 * are read and decided: the parent is asked to CONNECT (`ask`) only for a tunnel that passes, so a
 * blocked one never makes it contact the target. A held connection the parent closes or speaks on
 * before it is asked is dropped, and `ask` dials a new one.
 */
export interface HeldParent {
  /** The held connection (destroy it to give it up). */
  readonly socket: Socket
  /** A tunnel to `authority` through the parent (askParent), on the held connection or a new one. */
  ask(authority: string, timeoutMs: number): Promise<Socket>
}

/** Dial the parent within `timeoutMs` and hold the connection (HeldParent); a failure is a 502, a 504 on the timeout. */
export async function holdParent(parent: Parent, timeoutMs: number, track: (s: Socket) => void): Promise<HeldParent> {
  const s = await dial(parent.host, parent.port, timeoutMs, track)
  // bytes or a FIN from a parent not asked anything: the connection is not one to ask on
  const spoil = (): void => { s.destroy() }
  s.on('data', spoil)
  s.on('end', spoil)
  return {
    socket: s,
    async ask(authority, ms) {
      s.off('data', spoil)
      s.off('end', spoil)
      const start = Date.now()
      const up = s.destroyed ? await dial(parent.host, parent.port, ms, track) : s
      return askParent(up, parent, authority, Math.max(1, ms - (Date.now() - start)))
    },
  }
}

/**
 * A tunnel to `authority` through the parent proxy on its connection `s`: CONNECT, then a 2xx
 * within `timeoutMs`. A parent asking for credentials (407), refusing, timing out, closing, or
 * sending bytes after its 200 (data the client never asked for) is an error, and `s` is destroyed.
 */
function askParent(s: Socket, parent: Parent, authority: string, timeoutMs: number): Promise<Socket> {
  s.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n`
    + (parent.auth ? `Proxy-Authorization: ${parent.auth}\r\n` : '') + '\r\n')
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0)
    const fail = (e: UpstreamError) => {
      finish()
      s.destroy()
      reject(e)
    }
    const finish = () => {
      clearTimeout(timer)
      s.off('data', onData)
      s.off('error', onError)
      s.off('end', onEnd)
      s.off('close', onClose)
    }
    const onData = (b: Buffer) => {
      buf = Buffer.concat([buf, b])
      const end = buf.indexOf('\r\n\r\n')
      if (end < 0) {
        if (buf.length > MAX_PARENT_HEAD) fail(new UpstreamError(502, 'parent proxy response header too large'))
        return
      }
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(buf.toString('latin1', 0, end))
      const status = m ? Number(m[1]) : 0
      if (status === 407) return fail(new UpstreamError(502, 'parent proxy requires authentication (407)'))
      if (status < 200 || status > 299) return fail(new UpstreamError(502, `parent proxy refused CONNECT ${authority} (${m ? status : 'not HTTP'})`))
      if (buf.length > end + 4) return fail(new UpstreamError(502, 'parent proxy sent bytes after its 200'))
      finish()
      s.pause()
      resolve(s)
    }
    const onError = (e: Error) => fail(new UpstreamError(502, `parent proxy failed: ${e.message}`))
    const onEnd = () => fail(new UpstreamError(502, 'parent proxy closed before answering CONNECT'))
    // destroyed here (the client went, and its upstreams with it): no answer will come
    const onClose = () => fail(new UpstreamError(502, 'parent proxy connection closed before it answered CONNECT'))
    const timer = setTimeout(() => fail(new UpstreamError(504, 'parent proxy did not answer CONNECT in time')), timeoutMs)
    s.on('data', onData)
    s.on('error', onError)
    s.on('end', onEnd)
    s.on('close', onClose)
  })
}
