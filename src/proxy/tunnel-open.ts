import type { Socket } from 'node:net'
import type { Target } from './address.js'
import type { Conn, ProxyCtx } from './context.js'
import { HelloGate, type Retry } from './hello-gate.js'
import { lingerClose } from './linger.js'
import { ReadRelay } from './relay.js'
import { rawResponse } from './responses.js'
import { isRetryRequest } from './retry.js'
import { TLS_INTERNAL_ERROR } from './tunnel-answers.js'
import type { Follow } from './tunnel-http.js'
import { dial, dialAny, whileDialling, type HeldParent, type UpstreamError } from './upstream.js'

/**
 * Open an allowed tunnel after its first bytes were decided: ask the held parent, or dial the
 * target's addresses side by side, then splice. What fails now, after the 200, is told to a TLS
 * client by a fatal alert and to an HTTP request in the tunnel by a 502/504 (tunnel-answers.ts).
 */
export async function tunnel(ctx: ProxyCtx, conn: Conn, socket: Socket, target: Target, ips: readonly string[] | undefined,
  parent: HeldParent | undefined, data: Buffer, retry: { check: Retry; rest: Buffer } | undefined, helloTimeout: number, follow?: Follow): Promise<void> {
  let up: Socket
  // a direct upstream's reads are relayed to the client from one buffer (a parent's first reply
  // is read as data, so a tunnel through a parent is piped, as are tunnels past MAX_RELAYS); the
  // addresses of a name are dialled side by side (dialAny), each with a relay of its own
  let relay: ReadRelay | undefined
  try {
    // the wait for the parent's answer or the origin's connect: bounded by the connect timeout alone
    up = await whileDialling(socket, () => parent
      ? parent.ask(`${target.ip?.includes(':') ? `[${target.ip}]` : target.ip ?? target.host}:${target.port}`, ctx.connectTimeout)
      : dialAny(ips!, ctx.connectTimeout, (ip, ms, signal) => {
        const mine = ReadRelay.create()
        return dial(ip, target.port, ms, ctx.track, mine, signal).then(s => {
          conn.close['destination.ip'] = ip                // the address connected to
          relay = mine
          return s
        }, (e: unknown) => {
          mine?.release()
          if (signal?.aborted !== true) conn.close['destination.ip'] = ip   // the last one that failed
          throw e
        })
      }))
  } catch (e) {
    const err = e as UpstreamError
    conn.close['event.outcome'] = 'failure'
    conn.close['error.message'] = err.message
    // the client got the 200: the status it would have had goes beside it
    conn.close['tunnelguard.unsent_status'] = err.status
    // a TLS client is told by a fatal alert, an HTTP request in the tunnel by a response; other
    // bytes (or a client gone while the parent was asked) by the close alone
    if (socket.destroyed || (!retry && !follow)) {
      socket.destroy()
      return
    }
    conn.close['tunnelguard.failure_sent'] = retry ? 'tls_alert' : 'http_response'
    socket.write(retry ? TLS_INTERNAL_ERROR : rawResponse(err.status, err.message))
    // what the client sent after its first bytes is unread: closed in stages, so the answer is not lost to a reset
    lingerClose(socket)
    return
  }
  if (socket.destroyed) {
    up.destroy()
    return
  }
  conn.close['event.outcome'] = 'success'             // the tunnel reaches its destination
  conn.upstreams.add(up)                              // destroyed with the client, or by a reload that closes the tunnel
  splice(socket, up, data, relay, retry && { ...retry, timeout: helloTimeout }, follow)
}

/**
 * Pipe both ways with half-close kept; an error or a full close on one side ends the other. With
 * `relay` (the one `up` was made with), up's reads reach the client through it instead of a pipe.
 * With `retry` (a TLS tunnel: `first` is the first ClientHello, `rest` what the client sent after
 * it), the client's bytes go through a HelloGate until the server's first bytes, looked at before
 * they reach the client, tell whether they are a HelloRetryRequest: a second ClientHello, sent
 * before it or after, is `retry.check`ed before it goes on.
 */
export function splice(client: Socket, up: Socket, first: Buffer, relay?: ReadRelay, retry?: { check: Retry; rest: Buffer; timeout: number }, follow?: Follow): void {
  up.on('error', () => client.destroy())
  client.on('error', () => up.destroy())
  client.on('close', () => up.destroy())
  up.on('close', () => { if (!client.writableEnded) client.destroy() })
  if (first.length > 0) up.write(first)
  const responses = follow?.(client, up)
  const gate = retry && new HelloGate(client, up, retry.rest, retry.check, retry.timeout)
  if (!responses && !gate) client.pipe(up)
  let seen: Buffer | undefined
  const tap = (b: Buffer): boolean => {
    seen = seen === undefined ? Buffer.from(b) : Buffer.concat([seen, b])
    const hrr = isRetryRequest(seen)
    if (hrr === undefined) return false
    gate!.server(hrr)
    return true
  }
  // the server's bytes are looked at: for a HelloRetryRequest (TLS), or for the responses (plain HTTP)
  const look = retry ? tap : responses
  if (relay) {
    relay.tap = look
    relay.attach(up, client)
    return
  }
  if (look) {
    const onData = (b: Buffer) => { if (look(b)) up.off('data', onData) }
    up.on('data', onData)
  }
  up.pipe(client)
}
