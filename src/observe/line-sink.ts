import { writeSync } from 'node:fs'
import { Socket } from 'node:net'
import type { Writable } from 'node:stream'
import { CHUNK, LineBuffers, POOL, countLines } from './line-buffers.js'
import { sinkMode, type LineSinkOptions, type SinkMode } from './line-sink-options.js'

const SYNC_RETRIES = 100
/** Write errors that can pass (sync mode): the batch is tried again, the lines wait (see LineSinkOptions.onStuck). */
const PASSING = new Set(['ENOSPC', 'EDQUOT', 'EIO'])
const PAUSE = new Int32Array(new SharedArrayBuffer(4))
/** Where a sync-mode batch stopped on EAGAIN. */
interface Stalled { readonly out: Buffer[]; i: number; off: number }

/** What `finish` gave up on: lines and bytes not written. */
export interface Unwritten { readonly lines: number; readonly bytes: number }

/**
 * The log's destination: lines written within `delayMs` (10 ms) go out in one write. A blocked
 * query costs a JSON line; under load the batches, not the lines, cost system calls. Each line
 * is encoded into a reused buffer as it is written (no join, no copy per batch). The write
 * itself happens on the main thread (see SinkMode): the earlier fs.write went through libuv's
 * thread pool, and the thread hand-offs of a write per batch cost more CPU per blocked query than
 * building its line (dnsperf A/B, 2026-11-29). While a batch is in flight new lines
 * wait for it (order is kept); a partial write continues where it stopped; on exit, whatever is
 * still waiting is written synchronously. Memory stays bounded when the reader stalls (a stuck
 * pipe): past `maxWaiting` bytes lines are dropped and counted; evidence lines (the block, sinkhole
 * and alert decisions) only past a reserve beyond it, and counted apart. Which lines are dropped is
 * all it decides: those kept go out in the order they were written.
 */
export class LineSink extends LineBuffers {
  /** A write failed with an error that can pass, and none has gone through since. */
  private stuck = false
  private stalled: Stalled | undefined
  /** Stream mode: the batch in the stream (lost with it when the stream fails). */
  private sending: Buffer[] = []
  private retry: NodeJS.Timeout | undefined
  private readonly drained: (() => void)[] = []
  /** Notices for the next batch (`noticesShareFd`), and the buffer of those in the batch in flight. */
  private held: string[] = []
  private notes: Buffer | undefined
  /** Put before the next notice: a newline, when `finish` gave up with a line perhaps cut on the shared fd. */
  private lead = ''
  private readonly onExit = (): void => this.flushSync()
  private readonly retryMs: number
  private readonly stuckMs: number
  private readonly mode: SinkMode
  private readonly writeFd: typeof writeSync
  private stream: Writable | undefined

  constructor(opts: LineSinkOptions) {
    super(opts)
    this.retryMs = opts.retryMs ?? 10
    this.stuckMs = opts.stuckMs ?? 1000
    this.mode = opts.mode ?? sinkMode(opts.fd)
    this.writeFd = opts.writeSync ?? writeSync
    process.on('exit', this.onExit)
  }

  /** The waiting bytes as the batch in flight; its buffers are kept to be reused, `buf` is one from the pool. */
  private take(): Buffer[] {
    this.inFlight = this.waitingBytes
    const out = this.drain()
    if (this.held.length > 0) {
      // the notices first: the batch before ended with a whole line
      const text = this.held.join('')
      this.held = []
      const notes = this.notes = Buffer.allocUnsafeSlow(Buffer.byteLength(text))   // its own memory: see logLines
      notes.write(text)
      out.unshift(notes)
      this.inFlight += notes.length
    }
    this.outBufs = this.fullChunks
    this.outBufs.push(this.buf)
    this.fullChunks = []
    this.buf = this.chunk()
    return out
  }

  protected next(): void {
    if (this.writing || (this.waitingBytes === 0 && this.held.length === 0)) return this.settle()
    const out = this.take()
    this.writing = true
    if (this.mode === 'sync') return this.writeOut({ out, i: 0, off: 0 })
    const s = this.stream ??= this.openStream()
    this.sending = out
    for (let i = 0; i < out.length - 1; i++) s.write(out[i])
    s.write(out[out.length - 1], (err?: Error | null) => (err ? this.fail(err) : this.done()))
  }

  private openStream(): Writable {
    let s = this.opts.stream
    if (!s) {
      const sock = new Socket({ fd: this.opts.fd, readable: false, writable: true })
      sock.unref()                                           // the log never keeps the process alive
      s = sock
    }
    s.on('error', e => this.fail(e))                         // EPIPE: the reader is gone
    return s
  }

  /** Sync mode: write the batch from where it stands; EAGAIN waits `retryMs` and goes on. */
  private writeOut(st: Stalled): void {
    this.stalled = undefined
    this.retry = undefined
    for (; st.i < st.out.length; st.i++, st.off = 0) {
      const b = st.out[st.i]!
      while (st.off < b.length) {
        try {
          st.off += this.writeFd(this.opts.fd, b, st.off, b.length - st.off)
        } catch (e) {
          const err = e as NodeJS.ErrnoException
          const passing = PASSING.has(String(err.code))
          if (err.code !== 'EAGAIN' && !passing) return this.fail(err, [b.subarray(st.off), ...st.out.slice(st.i + 1)])
          if (passing && !this.stuck) {
            this.stuck = true
            this.opts.onStuck?.(err)
          }
          this.stalled = st
          this.retry = setTimeout(() => this.writeOut(st), passing ? this.stuckMs : this.retryMs)
          return
        }
        if (this.stuck) {
          this.stuck = false
          this.opts.onResumed?.()
        }
      }
    }
    this.done()
  }

  /** A batch is out: keep its buffer for reuse, say what was dropped, go on. */
  private done(): void {
    this.writing = false
    this.sending = []
    this.inFlight = 0
    this.notes = undefined
    for (const b of this.outBufs) if (b.length === CHUNK && this.pool.length < POOL) this.pool.push(b)
    this.outBufs = []
    if (this.dropped > 0 && this.opts.dropNotice) {
      const n = this.dropped
      const evidence = this.droppedEvidence
      this.dropped = 0
      this.droppedEvidence = 0
      this.append(this.opts.dropNotice(n, evidence))         // past the cap: it is one line
    }
    this.next()
  }

  /** The log failed for good: what waits, and `unwritten` (sync mode; stream mode: the batch in the stream), is counted lost. */
  private fail(err: NodeJS.ErrnoException, unwritten: readonly Buffer[] = this.sending, report = true): void {
    if (this.failed) return
    this.failed = true
    this.lostTotal += this.logLines(unwritten) + countLines(this.full) + countLines([this.buf.subarray(0, this.used)])
    this.sending = []
    this.writing = false
    this.full = []
    this.fullChunks = []
    this.used = 0
    this.waitingBytes = 0
    if (report) this.opts.onError?.(err)
    this.settle()
  }

  private settle(): void {
    if (this.writing || this.waitingBytes > 0) return
    for (const cb of this.drained.splice(0)) cb()
  }

  /** Calls back once every line queued so far has been written (pino's logger.flush). */
  flush(cb?: (err?: Error) => void): void {
    if (cb) this.drained.push(cb)
    if (!this.scheduled) this.next()
  }

  /**
   * Write what is waiting now, synchronously (at exit): a sync-mode batch stalled on EAGAIN first,
   * then the waiting lines. A stream-mode batch in flight is left to the stream.
   */
  flushSync(): void {
    if (this.failed) return
    const st = this.stalled
    const rest: Buffer[] = []
    if (st) {
      clearTimeout(this.retry)
      this.stalled = undefined
      this.writing = false
      this.inFlight = 0
      rest.push(st.out[st.i]!.subarray(st.off), ...st.out.slice(st.i + 1))
    }
    if (this.held.length > 0) rest.push(Buffer.from(this.held.splice(0).join('')))
    rest.push(...this.drain())
    this.fullChunks = []                                     // written below, not reused
    let again = 0
    for (let i = 0; i < rest.length; i++) {
      const b = rest[i]!
      let off = 0
      while (off < b.length) {
        try {
          off += this.writeFd(this.opts.fd, b, off, b.length - off)
        } catch (e) {
          const err = e as NodeJS.ErrnoException
          // a full non-blocking fd: wait for its reader, a bounded number of times
          if (err.code === 'EAGAIN' && again++ < SYNC_RETRIES) { Atomics.wait(PAUSE, 0, 0, this.retryMs); continue }
          return this.fail(err, [b.subarray(off), ...rest.slice(i + 1)])
        }
      }
    }
  }

  /**
   * Say `text` (one or more whole lines) on `notices`: through the sink between two batches when
   * they share the fd (`noticesShareFd`), at once otherwise (and once the log failed).
   */
  notice(text: string): void {
    if (this.failed || this.opts.noticesShareFd !== true) return this.say(text)
    this.held.push(text)
    if (!this.writing) this.next()
  }

  /** Best effort: a notice that cannot be written is lost, without a word (where would it go?). */
  private say(text: string): void {
    const lead = this.lead
    this.lead = ''
    try {
      this.opts.notices?.write(lead + text)
    } catch { /* stderr failed too: nothing to do */ }
  }

  /** The log lines in `bufs`, notices (`notes`) not counted. */
  private logLines(bufs: readonly Buffer[]): number {
    const notes = this.notes?.buffer
    return countLines(bufs.filter(b => b.buffer !== notes))
  }

  /**
   * At a stop: everything queued is written within `ms`. Resolves undefined once it is (or the log
   * failed: what it lost is in `lost`). Past `ms` the sink gives up, as if the log had failed: a
   * stalled write is not tried again, the stream is destroyed (its write in flight would keep the
   * process alive), and what was not written is counted in `lost` and resolved. In stream mode the
   * batch in the stream counts whole, though part of it may have been written.
   */
  finish(ms: number): Promise<Unwritten | undefined> {
    return new Promise(resolve => {
      let over = false
      const timer = setTimeout(() => { over = true; resolve(this.giveUp()) }, ms)
      this.flush(() => {
        if (over) return
        clearTimeout(timer)
        resolve(undefined)
      })
    })
  }

  /** Past `finish`'s bound (the sink has not failed: its failure would have ended the wait). */
  private giveUp(): Unwritten {
    const st = this.stalled
    const unwritten = st ? [st.out[st.i]!.subarray(st.off), ...st.out.slice(st.i + 1)] : this.sending
    // a line perhaps left cut on the fd: a notice on the same file starts on a line of its own
    const b = st?.out[st.i]
    const cut = this.mode === 'stream' ? this.writing : b !== undefined && st!.off > 0 && b[st!.off - 1] !== 10
    const waiting = [...this.full, this.buf.subarray(0, this.used)]
    const bytes = [...unwritten, ...waiting].reduce((n, x) => n + (x.buffer === this.notes?.buffer ? 0 : x.length), 0)
    const lines = this.logLines(unwritten) + countLines(waiting)
    clearTimeout(this.retry)
    this.stalled = undefined
    this.fail(Object.assign(new Error('not written when the sink was finished'), { code: 'ETIMEDOUT' }), unwritten, false)
    this.stream?.destroy()
    if (cut && this.opts.noticesShareFd === true) this.lead = '\n'
    const held = this.held.splice(0).join('')
    if (held !== '') this.say(held)                           // they waited for the batch: said now, on their own
    return { lines, bytes }
  }

  /** Stop flushing at exit (tests that make many sinks). */
  close(): void {
    this.flushSync()
    process.off('exit', this.onExit)
  }
}
