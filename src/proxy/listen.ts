import { createServer, type Server, type Socket } from 'node:net'
import { splitHostPort } from '../config/endpoints.js'
import { fdCode, fdExhausted } from '../observe/fd-check.js'
import type { Evidence } from '../observe/types.js'
import type { SelfAddress } from './address.js'

/**
 * Listen on `addr` ("host:port", port 0 for any) with a raw TCP server. Accepted sockets have
 * TCP_NODELAY: a relayed small write goes out at once instead of waiting, under Nagle's
 * algorithm, for the client's delayed ACK of the one before (about 40 ms on Linux).
 */
export function listenOn(addr: string, onSocket: (s: Socket) => void, evidence: Evidence, what: string): Promise<Server> {
  const hp = splitHostPort(addr)
  if (!hp) return Promise.reject(new Error(`${what}: bad listen address ${addr}`))
  const srv = createServer({ allowHalfOpen: true, noDelay: true }, onSocket)
  return new Promise((resolve, reject) => {
    srv.once('error', reject)
    srv.listen(hp.port, hp.host, () => {
      srv.off('error', reject)
      srv.on('error', e => {
        if (fdExhausted(e)) evidence.counters.fdExhausted('listener', fdCode(e))   // counted and said once per 10 s
        else evidence.error(`${what}.listener`, { 'error.message': e.message })
      })
      resolve(srv)
    })
  })
}

/** The addresses the servers are bound to (port 0 resolved). */
export function boundAddresses(servers: readonly Server[]): SelfAddress[] {
  return servers.map(s => {
    const a = s.address() as { address: string; port: number }
    return { address: a.address, port: a.port }
  })
}
