// The log's lines waiting to be written: encoded as they come into reused buffers, bounded
// (past maxWaiting dropped and counted), a batch scheduled; LineSink (line-sink.ts) writes them.
import type { LineSinkOptions } from './line-sink-options.js'

/** Lines are encoded into buffers of this size as they are written (a batch larger than one takes several). */
export const CHUNK = 64 * 1024
/**
 * Buffers kept for reuse: a batch under load spans several (a blocked query's line is about 500
 * bytes; 40k a second make 200 KB a batch), and taking new ones for each batch allocated a few
 * MB a second outside the heap.
 */
export const POOL = 16

/** The lines (newlines) in `bufs`. */
export function countLines(bufs: readonly Buffer[]): number {
  let n = 0
  for (const b of bufs) for (let i = b.indexOf(10); i !== -1; i = b.indexOf(10, i + 1)) n++
  return n
}

/** What LineSink writes from: the waiting lines, in order, and what was dropped (see LineSink). */
export abstract class LineBuffers {
  protected buf: Buffer = Buffer.allocUnsafe(CHUNK)
  protected used = 0
  /** Filled buffers, in order, before `buf` (the bytes written: subarrays of `fullChunks`). */
  protected full: Buffer[] = []
  /** The buffers of `full` whole, to be reused once written. */
  protected fullChunks: Buffer[] = []
  /** Standard buffers back from finished batches, reused for the next (at most POOL). */
  protected readonly pool: Buffer[] = []
  /** The buffers of the batch in flight (back to `pool` when it is out). */
  protected outBufs: Buffer[] = []
  /** Bytes encoded and not yet handed to a write. */
  protected waitingBytes = 0
  /** Bytes of the batch in flight. */
  protected inFlight = 0
  /** Lines dropped since the last `dropNotice`, and evidence lines among them. */
  protected dropped = 0
  protected droppedEvidence = 0
  /**
   * Since the sink was made: lines dropped past `maxWaiting` (evidence lines past the reserve:
   * apart), and lines given after the log failed.
   */
  protected droppedTotal = 0
  protected droppedEvidenceTotal = 0
  protected lostTotal = 0
  protected scheduled = false
  protected writing = false
  protected failed = false
  protected readonly delayMs: number
  protected readonly maxWaiting: number
  protected readonly reserve: number
  /** `maxWaiting` and `reserve`: the bound for evidence lines. */
  protected readonly evidenceMax: number
  protected readonly fire = (): void => { this.scheduled = false; this.next() }

  constructor(protected readonly opts: LineSinkOptions) {
    this.delayMs = opts.delayMs ?? 10
    this.maxWaiting = opts.maxWaiting ?? 64 << 20
    this.reserve = opts.evidenceReserve ?? Math.floor(this.maxWaiting / 4)
    this.evidenceMax = this.maxWaiting + this.reserve
  }

  /** Start the next batch, if one is due and none is in flight (LineSink). */
  protected abstract next(): void

  /**
   * Would a line of n more bytes pass `maxWaiting` (an evidence line: `maxWaiting` and the
   * reserve)? Then it is dropped, and counted.
   */
  protected over(n: number, evidence: boolean): boolean {
    const waiting = this.waitingBytes + this.inFlight + n
    if (waiting <= this.maxWaiting || (evidence && waiting <= this.evidenceMax)) return false
    if (this.dropped++ === 0) this.opts.onDropping?.(this.maxWaiting, this.reserve)
    if (evidence) {
      this.droppedEvidence++
      this.droppedEvidenceTotal++
    } else {
      this.droppedTotal++
    }
    return true
  }

  /**
   * Lines lost since the sink was made: `behind`, dropped past `maxWaiting` (the fd did not take
   * them fast enough); `behindEvidence`, evidence lines dropped past `maxWaiting` and the reserve;
   * `failed`, given after a write error ended the log (EPIPE, …).
   */
  get lost(): { readonly behind: number; readonly behindEvidence: number; readonly failed: number } {
    return { behind: this.droppedTotal, behindEvidence: this.droppedEvidenceTotal, failed: this.lostTotal }
  }

  /** The log failed: the line is counted as lost. */
  protected gone(): true {
    this.lostTotal++
    return true
  }

  /**
   * Queue one line (with its newline). `evidence`: a block, sinkhole or alert decision, kept past
   * `maxWaiting` up to the reserve (LineSinkOptions.evidenceReserve); so for `endLine` and `writeBytes`.
   */
  write(line: string, evidence = false): boolean {
    if (this.failed) return this.gone()
    if (this.over(line.length, evidence)) return true
    this.append(line)
    return true
  }

  /**
   * The buffer the next line's bytes are written into in place (no copy), from `lineStart` on,
   * with at least `room` bytes free there; `endLine` queues them. Undefined once the log failed.
   */
  lineBuffer(room: number): Buffer | undefined {
    if (this.failed) {
      this.gone()
      return undefined
    }
    if (this.used + room > this.buf.length) this.grow(room)
    return this.buf
  }

  /** Where the line written into `lineBuffer()` starts. */
  get lineStart(): number {
    return this.used
  }

  /** Queue the line written into `lineBuffer()`, up to `end` (its newline included); past `maxWaiting` it is dropped (see `write`). */
  endLine(end: number, evidence = false): void {
    const n = end - this.used
    if (this.over(n, evidence)) return
    this.added(n)
  }

  /** Queue one line given as its UTF-8 bytes (with its newline); see `write`. */
  writeBytes(line: Uint8Array, evidence = false): void {
    const n = line.length
    if (this.failed) {
      this.gone()
      return
    }
    if (this.over(n, evidence)) return
    if (this.used + n > this.buf.length) this.grow(n)
    this.buf.set(line, this.used)
    this.added(n)
  }

  /** Encode a line into `buf` and make sure a batch is due. */
  protected append(line: string): void {
    const room = line.length * 3                               // UTF-8: at most 3 bytes per UTF-16 unit
    if (this.used + room > this.buf.length) this.grow(room)
    this.added(this.buf.write(line, this.used))
  }

  /** `n` bytes were put in `buf`: make sure a batch is due. */
  protected added(n: number): void {
    this.used += n
    this.waitingBytes += n
    if (!this.scheduled && !this.writing) {
      this.scheduled = true
      if (this.delayMs > 0) setTimeout(this.fire, this.delayMs)
      else setImmediate(this.fire)
    }
  }

  /** `buf` cannot take `room` more bytes: it joins the batch as it is, and a new one starts. */
  protected grow(room: number): void {
    if (this.used > 0) {
      this.full.push(this.buf.subarray(0, this.used))
      this.fullChunks.push(this.buf)
    }
    this.buf = room <= CHUNK ? this.chunk() : Buffer.allocUnsafe(room)
    this.used = 0
  }

  /** A standard buffer: one back from a batch, or a new one. */
  protected chunk(): Buffer {
    return this.pool.pop() ?? Buffer.allocUnsafe(CHUNK)
  }

  /** The waiting bytes, in order; `buf` starts over empty. */
  protected drain(): Buffer[] {
    const out = this.full
    if (this.used > 0) out.push(this.buf.subarray(0, this.used))
    this.full = []
    this.waitingBytes = 0
    this.used = 0
    return out
  }
}
