import { write as fsWrite, writeSync } from 'node:fs'

export interface LineSinkOptions {
  /** The file descriptor written to (1: stdout). */
  readonly fd: number
  /** Where a write error is reported, once (the log itself may be what failed). */
  readonly onError?: (e: NodeJS.ErrnoException) => void
  /**
   * How long lines gather before they go out in one write(2), ms (1). 0: until the end of the
   * event-loop turn.
   */
  readonly delayMs?: number
  /** Retry delay after EAGAIN (a full non-blocking pipe), ms. */
  readonly retryMs?: number
  /**
   * Most characters waiting while stdout does not keep up (64 MiB); lines past it are dropped
   * and counted, and `dropNotice(count)` (a whole line) is written once the backlog is out.
   */
  readonly maxWaiting?: number
  readonly dropNotice?: (dropped: number) => string
  /** node:fs's write and writeSync (replaced in tests). */
  readonly fs?: { readonly write: typeof fsWrite; readonly writeSync: typeof writeSync }
}

const SYNC_RETRIES = 100
const PAUSE = new Int32Array(new SharedArrayBuffer(4))

/**
 * The log's destination: lines written within `delayMs` (1 ms) go out in one write(2). A blocked
 * query costs a JSON line; a write, with its trip through libuv's thread pool, per line cost more
 * than the rest of answering the query, and one write per event-loop turn still cost 1-3 µs a
 * line more in A/B runs at 20-45k lines/s (a turn holds a few datagrams; a millisecond, dozens). While a
 * write is in flight, new lines wait for it (order is kept); a partial write continues where it
 * stopped; on exit, whatever is still waiting is written synchronously. Memory stays bounded
 * when the reader stalls (a stuck pipe): past `maxWaiting` lines are dropped and counted.
 */
export class LineSink {
  private waiting: string[] = []
  private waitingChars = 0
  private dropped = 0
  private scheduled = false
  private writing = false
  private failed = false
  private readonly drained: (() => void)[] = []
  private readonly onExit = (): void => this.flushSync()
  private readonly retryMs: number
  private readonly delayMs: number
  private readonly maxWaiting: number
  private readonly fire = (): void => { this.scheduled = false; this.next() }

  constructor(private readonly opts: LineSinkOptions) {
    this.retryMs = opts.retryMs ?? 10
    this.delayMs = opts.delayMs ?? 1
    this.maxWaiting = opts.maxWaiting ?? 64 << 20
    process.on('exit', this.onExit)
  }

  /** Queue one line (with its newline). */
  write(line: string): boolean {
    if (this.failed) return true
    if (this.waitingChars + line.length > this.maxWaiting) { this.dropped++; return true }
    this.waitingChars += line.length
    this.waiting.push(line)
    if (!this.scheduled && !this.writing) {
      this.scheduled = true
      if (this.delayMs > 0) setTimeout(this.fire, this.delayMs)
      else setImmediate(this.fire)
    }
    return true
  }

  private next(): void {
    if (this.writing || this.waiting.length === 0) return this.settle()
    const buf = Buffer.from(this.waiting.join(''))
    this.waiting = []
    this.waitingChars = 0
    this.writing = true
    this.send(buf, 0)
  }

  private send(buf: Buffer, off: number): void {
    (this.opts.fs?.write ?? fsWrite)(this.opts.fd, buf, off, buf.length - off, null, (err, n) => {
      if (err) {
        if (err.code === 'EAGAIN') { setTimeout(() => this.send(buf, off), this.retryMs); return }
        this.fail(err)
        return
      }
      if (off + n < buf.length) return this.send(buf, off + n)
      this.writing = false
      if (this.dropped > 0 && this.opts.dropNotice) {
        this.waiting.push(this.opts.dropNotice(this.dropped))     // past the cap: it is one line
        this.dropped = 0
      }
      this.next()
    })
  }

  private fail(err: NodeJS.ErrnoException): void {
    this.failed = true
    this.writing = false
    this.waiting = []
    this.opts.onError?.(err)
    this.settle()
  }

  private settle(): void {
    if (this.writing || this.waiting.length > 0) return
    for (const cb of this.drained.splice(0)) cb()
  }

  /** Calls back once every line queued so far has been written (pino's logger.flush). */
  flush(cb?: (err?: Error) => void): void {
    if (cb) this.drained.push(cb)
    if (!this.scheduled) this.next()
  }

  /** Write what is waiting now, synchronously (at exit). A write in flight is left to finish. */
  flushSync(): void {
    if (this.failed || this.waiting.length === 0) return
    const buf = Buffer.from(this.waiting.join(''))
    this.waiting = []
    this.waitingChars = 0
    let off = 0
    let again = 0
    while (off < buf.length) {
      try {
        off += (this.opts.fs?.writeSync ?? writeSync)(this.opts.fd, buf, off, buf.length - off)
      } catch (e) {
        const err = e as NodeJS.ErrnoException
        // a full non-blocking pipe: wait for its reader, a bounded number of times
        if (err.code === 'EAGAIN' && again++ < SYNC_RETRIES) { Atomics.wait(PAUSE, 0, 0, this.retryMs); continue }
        return this.fail(err)
      }
    }
  }

  /** Stop flushing at exit (tests that make many sinks). */
  close(): void {
    this.flushSync()
    process.off('exit', this.onExit)
  }
}
