/** What a LineSink is given (LineSinkOptions), and how it writes to its fd (SinkMode, chosen by `sinkMode`). */
import { fstatSync, type writeSync } from 'node:fs'
import type { Writable } from 'node:stream'

/**
 * How lines reach the fd. `sync`: a write(2) from the main thread when a batch is due (a regular
 * file or /dev/null takes the bytes at once; a terminal, as Node's own stdout does, may block
 * while it is paused). `stream`: a non-blocking libuv
 * stream (a pipe or a socket: docker's log pipe, journald, `| tee`), so a stalled reader never
 * stalls the process; what it does not take waits, up to `maxWaiting`.
 */
export type SinkMode = 'sync' | 'stream'

/** The mode for `fd`: `stream` for a FIFO or a socket, `sync` for anything else (and when fstat fails: the write reports why). */
export function sinkMode(fd: number, fstat: (fd: number) => { isFIFO(): boolean; isSocket(): boolean } = fstatSync): SinkMode {
  try {
    const st = fstat(fd)
    return st.isFIFO() || st.isSocket() ? 'stream' : 'sync'
  } catch {
    return 'sync'
  }
}

export interface LineSinkOptions {
  /** The file descriptor written to (1: stdout). */
  readonly fd: number
  /**
   * Where a write error that ends the log is reported, once (the log itself may be what failed):
   * EPIPE (the reader is gone), EBADF, and any error of a stream.
   */
  readonly onError?: (e: NodeJS.ErrnoException) => void
  /**
   * Sync mode: a write failed with an error that can pass (a full disk: ENOSPC, EDQUOT; EIO). The
   * batch is tried again every `stuckMs`, and lines wait meanwhile, as for a stalled reader (up to
   * `maxWaiting`, then dropped and counted); said once per episode, with `onResumed` when a write
   * goes through again.
   */
  readonly onStuck?: (e: NodeJS.ErrnoException) => void
  readonly onResumed?: () => void
  /** The first line dropped since the last `dropNotice` (said once per episode); `reserve`: see `evidenceReserve`. */
  readonly onDropping?: (maxWaiting: number, reserve: number) => void
  /** Retry delay after a write error that can pass (see `onStuck`), ms (1000). */
  readonly stuckMs?: number
  /**
   * How long lines gather before they go out in one write(2), ms (10). 0: until the end of the
   * event-loop turn. With stdout a pipe, each write also wakes its reader: 10 ms batches cost
   * about 25 µs per blocked query where 1 ms batches cost 31 (dnsperf A/B, 2026-11-29).
   */
  readonly delayMs?: number
  /** Retry delay after EAGAIN (a non-blocking fd that is full), ms; sync mode. */
  readonly retryMs?: number
  /**
   * Most bytes waiting while the fd does not keep up (64 MiB); lines past it are dropped and
   * counted, and `dropNotice(count, evidence)` (a whole line) is written once the backlog is out.
   */
  readonly maxWaiting?: number
  /**
   * Bytes past `maxWaiting` that only evidence lines (a write's `evidence` argument: the block,
   * sinkhole and alert decisions) may still take, so that a flood of other lines (the passes of
   * `log.queries: all`) does not push them out; past both they are dropped too, and counted apart
   * (`lost.behindEvidence`). A quarter of `maxWaiting` when absent (16 MiB: some 25,000 decision
   * lines; the memory held at most 1.25 times the bound).
   */
  readonly evidenceReserve?: number
  /** `dropped`: the lines dropped since the last notice, `evidence` of them evidence lines. */
  readonly dropNotice?: (dropped: number, evidence: number) => string
  /**
   * Where notices about the log go (stderr), best effort: a write that throws is ignored (and not
   * said anywhere: a notice that stderr failed would go to stderr).
   */
  readonly notices?: { write(s: string): unknown }
  /**
   * `notices` reach the same file as `fd` (`2>&1`: the same device and inode). A notice then goes
   * out through the sink itself, at the start of the next batch: never inside a line that a
   * partial write left cut (a full pipe, a full disk), and in order with the lines around it.
   */
  readonly noticesShareFd?: boolean
  /** `sinkMode(fd)` when absent. */
  readonly mode?: SinkMode
  /** node:fs's writeSync (replaced in tests). */
  readonly writeSync?: typeof writeSync
  /** Stream mode: the stream written to; a non-blocking net.Socket on `fd` when absent (replaced in tests). */
  readonly stream?: Writable
}
