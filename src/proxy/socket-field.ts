import type { Socket } from 'node:net'

/**
 * A value kept on a socket itself, under a symbol of its own: what a WeakMap keyed by the socket
 * would hold, gone with the socket.
 *
 * Why not a WeakMap: V8's young collector visits an ephemeron's value strongly (only the key is
 * weak), so a value that leads back to its socket (a connection's record holds it; node's
 * listeners are bound to it) keeps the socket alive through every young collection: each
 * connection's objects were copied and promoted, to die in the old generation (bench/README.md,
 * stop 32: about 2 MB promoted per scavenge under CONNECT setups).
 */
export interface SocketField<T> {
  get(s: Socket): T | undefined
  /** `undefined` clears it. */
  set(s: Socket, v: T | undefined): void
}

export function socketField<T>(name: string): SocketField<T> {
  const key = Symbol(name)
  type Holder = Socket & { [key]?: T }
  return {
    get: s => (s as Holder)[key],
    set: (s, v) => { (s as Holder)[key] = v },
  }
}
