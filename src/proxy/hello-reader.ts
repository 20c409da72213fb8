import type { Socket } from 'node:net'
import { parseClientHello, type HelloResult } from './sni.js'

export type HelloRead =
  | HelloResult
  /** The deadline passed before the hello was complete. */
  | { readonly kind: 'timeout' }
  /** The client closed (or reset) before the hello was complete. */
  | { readonly kind: 'eof' }

/**
 * Read from `socket` until the ClientHello is complete, proven not TLS, invalid, or over
 * `maxBytes`, within a total deadline of `timeoutMs` (not an idle timer: a hello dripped a byte
 * at a time still has to finish in time). Resolves with what was read; the socket is left paused.
 */
export function readClientHello(socket: Socket, head: Buffer, timeoutMs: number, maxBytes: number): Promise<{ result: HelloRead; data: Buffer }> {
  return new Promise(resolve => {
    const chunks: Buffer[] = head.length > 0 ? [head] : []
    let total = head.length
    let need = 1
    const done = (result: HelloRead) => {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('end', onEnd)
      socket.off('close', onEnd)
      socket.pause()
      resolve({ result, data: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) })
    }
    const step = (): boolean => {
      if (total < need) return false
      let buf = chunks[0]!
      if (chunks.length > 1) {
        buf = Buffer.concat(chunks)
        chunks.length = 0
        chunks.push(buf)
      }
      const r = parseClientHello(buf, maxBytes)
      if (r.kind === 'partial') {
        need = r.need
        return false
      }
      done(r)
      return true
    }
    const onData = (b: Buffer) => {
      chunks.push(b)
      total += b.length
      step()
    }
    const onEnd = () => done({ kind: 'eof' })
    const timer = setTimeout(() => done({ kind: 'timeout' }), timeoutMs)
    if (step()) return
    if (socket.destroyed || socket.readableEnded) return done({ kind: 'eof' })     // gone while the name resolved
    socket.on('data', onData)
    socket.once('end', onEnd)
    socket.once('close', onEnd)
    socket.resume()
  })
}
