import type { Socket } from 'node:net'
import { parseClientHello, type HelloResult } from './sni.js'

export type HelloRead =
  | HelloResult
  /** The deadline passed before the hello was complete. */
  | { readonly kind: 'timeout' }
  /** The client closed (or reset) before the hello was complete. */
  | { readonly kind: 'eof' }

/**
 * Where the ClientHello starts past change_cipher_spec records (TLS 1.3's middlebox compatibility
 * mode may send one before the second hello), or -1 while such a record is incomplete.
 */
function pastCcs(buf: Buffer): number {
  let off = 0
  while (off < buf.length && buf[off] === 0x14) {
    if (off + 5 > buf.length || off + 5 + buf.readUInt16BE(off + 3) > buf.length) return -1
    off += 5 + buf.readUInt16BE(off + 3)
  }
  return off
}

/**
 * Read from `socket` until the ClientHello is complete, proven not TLS, invalid, or over
 * `maxBytes`, within a total deadline of `timeoutMs` (not an idle timer: a hello dripped a byte
 * at a time still has to finish in time). Resolves with what was read; the socket is left paused.
 * `afterRetry`: the second hello after a HelloRetryRequest, which change_cipher_spec records may
 * precede (they are passed over, and kept in `data`).
 */
export function readClientHello(socket: Socket, head: Buffer, timeoutMs: number, maxBytes: number,
  afterRetry = false): Promise<{ result: HelloRead; data: Buffer }> {
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
      const off = afterRetry ? pastCcs(buf) : 0
      if (off > maxBytes || (off < 0 && total > maxBytes)) {
        done({ kind: 'invalid', reason: 'change_cipher_spec records over the cap' })
        return true
      }
      if (off < 0) {
        need = total + 1
        return false
      }
      const r = parseClientHello(off === 0 ? buf : buf.subarray(off), maxBytes)
      if (r.kind === 'partial') {
        need = off + r.need
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
