import { createSocket, type Socket } from 'node:dgram'
import { isIP } from 'node:net'
import type { Counters } from '../observe/types.js'
import { PendingTable, type ReplyCallback } from './pending.js'

/**
 * The socket buffers of every UDP socket of the DNS side, listeners and upstreams. An upstream's
 * answers wait in its receive buffer while the process is busy (a burst, a collection): with the
 * system's default (208 KiB here, a few hundred answers) the kernel dropped answers under a
 * closed-loop load, and each drop left a client without an answer until the timeout.
 */
export const UDP_SOCKET_BUFFER = 4 * 1024 * 1024

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
    this.socket = createSocket({
      type: isIP(host) === 6 ? 'udp6' : 'udp4', recvBufferSize: UDP_SOCKET_BUFFER, sendBufferSize: UDP_SOCKET_BUFFER,
    })
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

  /** The socket's receive buffer as the kernel reports it (once connected). */
  get recvBufferSize(): number {
    return this.socket.getRecvBufferSize()
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
