import { Agent, type ClientRequest } from 'node:http'
import type { Socket } from 'node:net'

/** Idle keep-alive connections to origins (or a parent) kept for reuse, all hosts together; the least recently used goes first. */
export const MAX_IDLE_UPSTREAMS = 256

/**
 * node's keep-alive agent, with its idle sockets capped in total: node caps them per host only
 * (maxFreeSockets), so that an origin that never closes them, on many ports, could take every
 * descriptor the process has.
 */
export class PoolAgent extends Agent {
  readonly #idle = new Set<Socket>()
  readonly #seen = new WeakSet<Socket>()

  override keepSocketAlive(socket: Socket): boolean {
    if (!(super.keepSocketAlive(socket) as unknown as boolean)) return false   // typed void; node returns whether to keep it
    if (!this.#seen.has(socket)) {
      this.#seen.add(socket)
      socket.once('close', () => this.#idle.delete(socket))
    }
    this.#idle.add(socket)
    if (this.#idle.size > MAX_IDLE_UPSTREAMS) {       // the oldest: this one is the newest
      const old = this.#idle.values().next().value!
      this.#idle.delete(old)
      old.destroy()
    }
    return true
  }

  override reuseSocket(socket: Socket, req: ClientRequest): void {
    this.#idle.delete(socket)
    super.reuseSocket(socket, req)
  }
}
