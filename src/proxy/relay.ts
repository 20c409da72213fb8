import type { OnReadOpts, Socket } from 'node:net'

/** Bytes per read (node's own read size). */
const READ_SIZE = 65_536
/** Bytes read before the relay has its destination, at most: reading stops there until it has one. */
const MAX_EARLY = 65_536
/**
 * Relays open at once, at most (each keeps its 64 KiB buffer for as long as its tunnel lasts,
 * where a pipe holds memory only while bytes are in flight): 32 MiB. Tunnels past that are piped.
 */
export const MAX_RELAYS = 512
let open = 0
/**
 * Buffers of released relays, for the next ones (at most MAX_POOL): a tunnel set up and torn down
 * allocated 64 KiB, which V8 counts as external memory, and at a thousand tunnels a second that
 * pressure brought collections on and doubled the proxy's RSS.
 */
const MAX_POOL = 64
const pool: Buffer[] = []

/**
 * The reads of one socket written straight to another, with no Buffer allocated per read: the
 * source reads into one buffer of its own (net's `onread`, so it must be given when the source
 * is created) and each read is written to the destination at once. When the destination cannot
 * take it all now (its write is queued, still pointing into that buffer), reading stops until
 * the destination drains, so the buffer is never overwritten while bytes in it wait. Bytes read
 * before `attach` (none, in practice: the tunnel attaches in the tick its connect completes) are
 * copied, and written first.
 *
 * Piping the upstream to the client allocated a 64 KiB buffer per read, and the collector swept
 * them: on 1 GiB down through a tunnel, 1.20–1.70 s of CPU against 1.08–1.29 with this.
 */
export class ReadRelay {
  /** A relay for a new tunnel, or undefined when `limit` relays are open (that tunnel is piped). Call `release` when its source closes. */
  static create(limit = MAX_RELAYS): ReadRelay | undefined {
    if (open >= limit) return undefined
    open++
    return new ReadRelay()
  }

  /** Relays created and not yet released. */
  static get open(): number { return open }

  readonly onread: OnReadOpts
  private readonly buffer: Buffer
  private released = false
  private from: Socket | undefined
  private to: Socket | undefined
  private early: Buffer[] = []
  private earlyBytes = 0
  private readonly resume = (): void => { this.from?.resume() }

  private constructor() {
    const buffer = pool.pop() ?? Buffer.allocUnsafe(READ_SIZE)
    this.buffer = buffer
    this.onread = { buffer, callback: (n: number) => this.read(buffer, n) }
  }

  /** Buffers waiting in the pool. */
  static get pooled(): number { return pool.length }

  /**
   * The source closed (it reads no more): this relay no longer counts against the limit, and its
   * buffer goes back to the pool unless bytes in it still wait to be written. Once; later calls
   * do nothing.
   */
  release(): void {
    if (this.released) return
    this.released = true
    open--
    // pooled only when no write to the destination still points into it
    if (pool.length < MAX_POOL && (this.to === undefined || this.to.writableLength === 0)) pool.push(this.buffer)
  }

  /**
   * Shown each read until it returns true (the tunnel's check of the server's first bytes); the
   * bytes are this relay's buffer, reused by the next read: what is kept must be copied.
   */
  tap: ((chunk: Buffer) => boolean) | undefined

  private read(buffer: Buffer, n: number): boolean {
    if (this.tap !== undefined && this.tap(buffer.subarray(0, n))) this.tap = undefined
    const to = this.to
    if (to === undefined) {
      this.early.push(Buffer.from(buffer.subarray(0, n)))
      this.earlyBytes += n
      return this.earlyBytes < MAX_EARLY
    }
    to.write(buffer.subarray(0, n))
    if (to.writableLength === 0) return true
    to.once('drain', this.resume)
    return false
  }

  /** Relay `from` (the socket made with this relay's `onread`) to `to` from now on; the end of `from` ends `to` (half-close kept). */
  attach(from: Socket, to: Socket): void {
    this.from = from
    this.to = to
    for (const b of this.early) to.write(b)
    this.early = []
    if (from.readableEnded) to.end()       // the source ended before it had a destination
    else from.on('end', () => to.end())
    if (to.writableLength === 0) from.resume()
    else to.once('drain', this.resume)
  }
}
