import type { Socket } from 'node:net'
import type { Peer } from './context.js'
import { parseProxyHeader } from './proxy-protocol.js'

export type ProxyHeaderRead = { readonly ok: true; readonly source?: Peer } | { readonly ok: false; readonly reason: string }

/**
 * On a connection from a trusted peer: read a PROXY v1/v2 header if one is there (within
 * `timeoutMs`), consume it, and give back the bytes after it (unshifted) for the HTTP parser.
 * A connection without a header is served as the peer itself.
 */
export function acceptProxyHeader(socket: Socket, timeoutMs: number): Promise<ProxyHeaderRead> {
  return new Promise(resolve => {
    let buf = Buffer.alloc(0)
    const done = (r: ProxyHeaderRead, rest?: Buffer) => {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('close', onClose)
      socket.off('end', onClose)
      socket.pause()
      if (rest && rest.length > 0) socket.unshift(rest)
      resolve(r)
    }
    const onData = (b: Buffer) => {
      buf = Buffer.concat([buf, b])
      const h = parseProxyHeader(buf)
      if (h.kind === 'partial') return
      if (h.kind === 'none') return done({ ok: true }, buf)
      if (h.kind === 'invalid') return done({ ok: false, reason: h.reason })
      done({ ok: true, source: h.source }, buf.subarray(h.length))
    }
    const onClose = () => done({ ok: false, reason: 'closed before the request' })
    const timer = setTimeout(() => done({ ok: false, reason: 'no request in time' }), timeoutMs)
    socket.on('data', onData)
    socket.once('close', onClose)
    socket.once('end', onClose)
  })
}
