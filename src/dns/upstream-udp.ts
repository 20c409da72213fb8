import { createSocket, type Socket } from 'node:dgram'
import { isIP } from 'node:net'
import type { Counters } from '../observe/types.js'
import { PendingTable, type ReplyCallback } from './pending.js'

/**
 * One upstream over UDP: a connected socket (the kernel drops datagrams from anyone else), a
 * random source port, a fresh random ID per query.
 */
export class UdpTransport {
  private readonly socket: Socket
  private readonly table = new PendingTable()
  private closed = false
  /** Datagrams waiting for the socket's connect() to complete. */
  private queue: Buffer[] | undefined = []

  constructor(host: string, port: number, counters: Counters, onError: (e: Error) => void) {
    this.socket = createSocket(isIP(host) === 6 ? 'udp6' : 'udp4')
    this.socket.on('error', onError)
    this.socket.on('message', msg => {
      if (!this.table.take(msg)) counters.dropped('mismatch')
    })
    this.socket.connect(port, host, () => {
      const q = this.queue!
      this.queue = undefined
      for (const b of q) this.socket.send(b)
    })
  }

  get pending(): number {
    return this.table.size
  }

  send(query: Buffer, qEnd: number, timeoutMs: number, cb: ReplyCallback): boolean {
    if (this.closed || !this.table.add(query, qEnd, timeoutMs, cb)) return false
    if (this.queue) this.queue.push(query)
    else this.socket.send(query)
    return true
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.table.failAll('upstream closed')
    this.socket.close()
  }
}
