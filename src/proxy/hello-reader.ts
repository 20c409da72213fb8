import type { Socket } from 'node:net'
import { parseClientHello, type HelloResult } from './sni.js'

/** A ClientHello read: parsed, or the client sent no more before it was complete (Gone). */
export type HelloRead = HelloResult | Gone

/** The client sent no more: the deadline passed, or it closed (or reset) first. */
export type Gone = { readonly kind: 'timeout' } | { readonly kind: 'eof' }

/**
 * Read from `socket`, after the bytes of `head`, until `step` returns a result, within a total
 * deadline of `timeoutMs` (not an idle timer: bytes dripped one at a time still have to arrive in
 * time). `step` is called whenever there are bytes, with their count and `bytes()`, all of them
 * in one buffer.
 * Resolves with the result and what was read; the socket is left paused.
 */
export function readFrom<R>(socket: Socket, head: Buffer, timeoutMs: number,
  step: (bytes: () => Buffer, total: number) => R | undefined): Promise<{ result: R | Gone; data: Buffer }> {
  return new Promise(resolve => {
    // the bytes so far: the first chunk as it came; from the second on, a buffer of our own that
    // grows by doubling, so that bytes dripped one at a time cost a copy each, not a join of all
    let buf = head
    let total = head.length
    const bytes = () => buf.subarray(0, total)
    const done = (result: R | Gone) => {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('end', onEnd)
      socket.off('close', onEnd)
      socket.pause()
      resolve({ result, data: bytes() })
    }
    const check = (): boolean => {
      const r = total === 0 ? undefined : step(bytes, total)
      if (r === undefined) return false
      done(r)
      return true
    }
    const onData = (b: Buffer) => {
      if (total === 0) buf = b
      else {
        if (total + b.length > buf.length) {          // also the first chunk's own buffer: never written into
          const grown = Buffer.allocUnsafe(Math.max(2 * (total + b.length), 1024))
          buf.copy(grown, 0, 0, total)
          buf = grown
        }
        b.copy(buf, total)
      }
      total += b.length
      check()
    }
    const onEnd = () => done({ kind: 'eof' })
    const timer = setTimeout(() => done({ kind: 'timeout' }), timeoutMs)
    if (check()) return
    if (socket.destroyed || socket.readableEnded) return done({ kind: 'eof' })     // gone while the name resolved
    socket.on('data', onData)
    socket.once('end', onEnd)
    socket.once('close', onEnd)
    socket.resume()
  })
}

/**
 * Read from `socket` until the ClientHello is complete, proven not TLS, invalid, or over
 * `maxBytes`, within a total deadline of `timeoutMs` (see readFrom). Resolves with what was read;
 * the socket is left paused (a second hello, after a HelloRetryRequest, is read by HelloGate).
 */
export function readClientHello(socket: Socket, head: Buffer, timeoutMs: number, maxBytes: number): Promise<{ result: HelloRead; data: Buffer }> {
  let need = 1
  return readFrom<HelloResult>(socket, head, timeoutMs, (bytes, total) => {
    if (total < need) return undefined
    const r = parseClientHello(bytes(), maxBytes)
    if (r.kind === 'partial') {
      need = r.need
      return undefined
    }
    return r
  })
}
