import { fstatSync, writeSync } from 'node:fs'
import { pino, type DestinationStream, type Logger } from 'pino'
import type { JsonBytes } from './json-bytes.js'
import { LineSink } from './line-sink.js'
import type { LineSinkOptions } from './line-sink-options.js'
import { ecsFields } from './ecs-fields.js'

/** The ECS version the log lines follow (ecs-logging: `ecs.version` on every line). */
export const ECS_VERSION = '8.11.0'

export interface LoggerOptions {
  readonly level: string
  /** Where lines go; stdout when absent. */
  readonly destination?: NodeJS.WritableStream | DestinationStream
  /** Milliseconds since the epoch; Date.now when absent. */
  readonly clock?: () => number
  /** The stdout sink's bound on the bytes that wait (LineSink's maxWaiting: 64 MiB when absent). */
  readonly maxWaiting?: number
}

/**
 * The root logger: one ECS JSON line per call, with `@timestamp`, `log.level`, `message` and
 * `ecs.version`, and no pid/hostname. Built from pino options only.
 */
export function createLogger(opts: LoggerOptions): Logger {
  const clock = opts.clock ?? Date.now
  let lastMs = NaN
  let lastStamp = ''
  const options = {
    level: opts.level,
    messageKey: 'message',
    base: { 'ecs.version': ECS_VERSION },
    timestamp: () => {
      // many lines share a millisecond under load: format each millisecond once
      const now = clock()
      if (now !== lastMs) { lastMs = now; lastStamp = `,"@timestamp":"${new Date(now).toISOString()}"` }
      return lastStamp
    },
    formatters: { level: (label: string) => ({ 'log.level': label }) },
  }
  // stdout: the lines of each 10 ms in one write (a line per blocked query must not cost a
  // write(2) each); from the main thread, non-blocking when stdout is a pipe or a socket
  const dest = (opts.destination as DestinationStream | undefined) ?? logSink({
    fd: 1, maxWaiting: opts.maxWaiting, dropNotice: droppedLine(options.timestamp), notices: stderrNotices, noticesShareFd: sameFile(1, 2),
  })
  const logger = pino(options, dest)
  lineTimes.set(logger, () => lastMs)
  if (dest instanceof LineSink) {
    lostReaders.set(logger, () => dest.lost)
    sinks.set(logger, dest)
  }
  // the same line pino writes for logger[level](record), from the record's JSON text (serialized
  // by V8's JSON.stringify in one call, or by ecsBody; pino's key-by-key stringify cost a third of
  // a blocked query)
  bodyWriters.set(logger, dest instanceof LineSink
    ? (level, body, evidence) => { dest.write(`${head(level, options.timestamp())}${body}\n`, evidence) }
    : (level, body) => { dest.write(`${head(level, options.timestamp())}${body}\n`) })
  if (dest instanceof LineSink) {
    // the line's start as bytes, made again when the millisecond changes
    const heads = new Map<RecordLevel, { stamp: string; bytes: Uint8Array }>()
    let buf: Buffer | undefined
    let start = 0
    lineTargets.set(logger, {
      begin(level, w) {
        buf = dest.lineBuffer(LINE_ROOM)
        if (!buf) return false
        start = dest.lineStart
        w.attach(buf, start)
        const stamp = options.timestamp()
        let h = heads.get(level)
        if (h?.stamp !== stamp) heads.set(level, h = { stamp, bytes: Buffer.from(head(level, stamp), 'latin1') })
        w.raw(h.bytes)
        return true
      },
      end(w, evidence) {
        w.raw(NEWLINE)
        if (w.buf === buf) dest.endLine(w.n, evidence)
        else dest.writeBytes(w.buf.subarray(start, w.n), evidence)   // the line outgrew the room
      },
    })
  }
  return logger
}

/**
 * The log's sink (createLogger: on stdout, fd 1), its troubles said on `notices` (stderr: fd 2) as
 * stdoutFailed, stdoutStuck, stdoutResumed and stdoutBehind say them, through LineSink.notice:
 * best effort, and, when stderr is the same file as stdout (`2>&1`, journald's one stream;
 * `noticesShareFd`, compared once at start), between two batches, never inside a line that a
 * partial write left cut.
 */
export function logSink(opts: Omit<LineSinkOptions, 'onError' | 'onStuck' | 'onResumed' | 'onDropping'>): LineSink {
  const stderr: Stderr = { write: s => { sink.notice(s) } }
  const sink: LineSink = new LineSink({
    ...opts,
    onError: e => stdoutFailed(e, stderr), onStuck: e => stdoutStuck(e, stderr), onResumed: () => stdoutResumed(stderr),
    onDropping: (n, reserve) => stdoutBehind(n, reserve, stderr),
  })
  return sink
}

/**
 * stderr for the log's notices: write(2) on fd 2, whatever it is. Not process.stderr: on a file it
 * is ended by its first error (a full disk), so no notice would follow once there is room; on a
 * pipe a write it cannot finish keeps the process alive. A notice that does not fit in a pipe now
 * (EAGAIN: the bin opens process.stderr at start, which makes a pipe non-blocking) or that fails is
 * lost (LineSink.notice catches it).
 */
export const stderrNotices: Stderr = { write: s => writeSync(2, s) }

/** Are fds `a` and `b` the same file (device and inode)? False when either cannot be read. */
export function sameFile(a: number, b: number, fstat: (fd: number) => { dev: number; ino: number } = fstatSync): boolean {
  try {
    const x = fstat(a)
    const y = fstat(b)
    return x.dev === y.dev && x.ino === y.ino
  } catch {
    return false
  }
}

const sinks = new WeakMap<Logger, LineSink>()

/**
 * How long a stop waits for the log to be written (5 s; README: Signals). A stdout that takes
 * nothing (a full disk, a reader that is stopped) must not hold the stop: past it, the lines not
 * written are given up, and said on stderr.
 */
export const FINAL_FLUSH_MS = 5000

/**
 * At a stop: the log written, within `ms` for a logger made by createLogger on its own LineSink
 * (stdout), else given up with one notice on stderr saying how many lines and bytes were lost.
 * Another logger is flushed as pino does.
 */
export async function finishLog(logger: Logger, ms = FINAL_FLUSH_MS): Promise<void> {
  const sink = sinks.get(logger)
  if (!sink) return logger.flush()
  const left = await sink.finish(ms)
  if (left) sink.notice(`tunnelguard: stopping: ${left.lines} log line${left.lines === 1 ? '' : 's'} (${left.bytes} bytes) not written to stdout within ${ms / 1000} s of the stop; they are lost\n`)
}

/** Room for a usual line in the sink's buffer (a longer one is copied in). */
const LINE_ROOM = 2048
const NEWLINE = Buffer.from('\n')

/**
 * Where a logger made by createLogger on its own LineSink (stdout) takes lines as bytes, written
 * in place into the sink's buffer: `begin` writes the line's start (level, current timestamp,
 * ecs.version and the comma after it), the caller the record's JSON without its opening brace,
 * and `end` the newline, queueing the line. Pino's own formatting is not involved.
 */
export interface LineTarget {
  /** Start a line in `w`; false when lines are dropped (the log failed): write nothing then. */
  begin(level: RecordLevel, w: JsonBytes): boolean
  /** End the line begun in `w` and queue it; `evidence`: see LineSink.write (kept longer when stdout does not keep up). */
  end(w: JsonBytes, evidence?: boolean): void
}

const lineTargets = new WeakMap<Logger, LineTarget>()

/** The logger's LineTarget, when it writes to a LineSink of its own. */
export function lineTarget(logger: Logger): LineTarget | undefined {
  return lineTargets.get(logger)
}

/** The start of a line as pino writes it with these options, up to and including the comma after ecs.version. */
function head(level: string, stamp: string): string {
  return `{"log.level":"${level}"${stamp},"ecs.version":"${ECS_VERSION}",`
}

const lineTimes = new WeakMap<Logger, () => number>()

/**
 * The time of a logger made by createLogger's last line (its @timestamp, ms since the epoch), so
 * that what is sent about a line (an alert) carries the line's own time; undefined for another logger.
 */
export function lastLineTime(logger: Logger): (() => number) | undefined {
  return lineTimes.get(logger)
}

const lostReaders = new WeakMap<Logger, () => LostLines>()

const NONE_LOST: LostLines = { behind: 0, behindEvidence: 0, failed: 0 }

/** What reads the lines a logger made by createLogger on its own LineSink (stdout) has lost so far (another loses none it knows of). */
export function lostLines(logger: Logger): () => LostLines {
  return lostReaders.get(logger) ?? (() => NONE_LOST)
}

/** See LineSink.lost. */
export interface LostLines { readonly behind: number; readonly behindEvidence: number; readonly failed: number }

type Stderr = { write(s: string): unknown }
const DROPPED_METRIC = 'tunnelguard_log_lines_dropped_total'

/** Said once on stderr when stdout stops taking the log for good (EPIPE: the reader is gone; EBADF). */
export function stdoutFailed(e: NodeJS.ErrnoException, stderr: Stderr = process.stderr): void {
  stderr.write(`tunnelguard: the log cannot be written to stdout (${e.code ?? e.message}); lines are dropped from now on, and counted in ${DROPPED_METRIC}{reason="failed"}\n`)
}

/** Said on stderr when a write to stdout fails with an error that can pass (a full disk), once until one goes through. */
export function stdoutStuck(e: NodeJS.ErrnoException, stderr: Stderr = process.stderr): void {
  stderr.write(`tunnelguard: the log cannot be written to stdout (${e.code}); it is tried again every second, and lines wait meanwhile (past 64 MiB they are dropped and counted; block, sinkhole and alert decisions past 80 MiB)\n`)
}

/** Said on stderr when stdout takes the log again after stdoutStuck. */
export function stdoutResumed(stderr: Stderr = process.stderr): void {
  stderr.write('tunnelguard: the log is written to stdout again\n')
}

/**
 * Said on stderr when the first line is dropped because stdout did not keep up (once until the
 * count is logged); `reserve`: the bytes past `maxWaiting` the decisions may still take (LineSink's evidenceReserve).
 */
export function stdoutBehind(maxWaiting: number, reserve: number, stderr: Stderr = process.stderr): void {
  stderr.write(`tunnelguard: stdout is not taking the log (${mib(maxWaiting)} MiB of lines wait); lines are dropped (block, sinkhole and alert decisions past ${mib(reserve)} MiB more), and counted in ${DROPPED_METRIC}{reason="behind"} (those decisions: {reason="behind_evidence"}) and in a line once it moves\n`)
}

/** Bytes in MiB, to two decimals at most. */
const mib = (n: number): number => Math.round(n / (1 << 20) * 100) / 100

/**
 * The line written when stdout fell so far behind that lines were dropped (`stamp`: the logger's
 * `,"@timestamp":…`): how many, and how many of them were evidence (block, sinkhole and alert decisions).
 */
export function droppedLine(stamp: () => string): (dropped: number, evidence: number) => string {
  return (n, evidence) => `${head('error', stamp())}${KIND}"message":"log lines dropped: stdout did not keep up","tunnelguard":{"dropped_lines":${n},"dropped_evidence_lines":${evidence}}}\n`
}

export type RecordLevel = 'info' | 'warn' | 'error'
/** `evidence`: see LineSink.write (a line of a block, sinkhole or alert decision). */
type BodyWrite = (level: RecordLevel, body: string, evidence?: boolean) => void
const bodyWriters = new WeakMap<Logger, BodyWrite>()

/**
 * ECS `event.kind` of every operational line (start, stop, reload, notices, errors, the proxy's
 * close line): `event`. Decision lines have their own (alert or event, see ecs.ts eventKind).
 */
const KIND = '"event.kind":"event",'

/**
 * A writer of one operational message (`logger[level](fields, msg)`) that checks the level: for a
 * logger made by createLogger the fields are serialized by one JSON.stringify (pino's key-by-key
 * stringify cost a proxy tunnel about 35 µs per line), the message last as pino puts it, and
 * `event.kind: event` first (unless the fields give one). Fields JSON cannot take (a BigInt, a
 * cycle) and other loggers go through the logger's own method.
 */
export function messageWriter(logger: Logger): (level: RecordLevel, msg: string, fields?: Record<string, unknown>) => void {
  const body = bodyWriters.get(logger)
  return (level, msg, given) => {
    if (!logger.isLevelEnabled(level)) return
    const fields = given && ecsFields(given)
    const kind = fields?.['event.kind'] === undefined
    if (body) {
      let json: string | undefined
      try {
        json = fields === undefined ? '{}' : JSON.stringify(fields)
      } catch { /* pino's own stringify copes: below */ }
      if (json !== undefined) {
        body(level, `${kind ? KIND : ''}${json.length > 2 ? `${json.slice(1, -1)},` : ''}"message":${JSON.stringify(msg)}}`)
        return
      }
    }
    logger[level](kind ? { 'event.kind': 'event', ...fields } : fields!, msg)
  }
}

/**
 * A writer of one record (a non-empty object of plain JSON data) as one line, the caller having
 * checked the level: fast for a logger made by createLogger, the logger's own method otherwise.
 * `evidence`: see LineSink.write.
 */
export function recordWriter(logger: Logger): (level: RecordLevel, record: Readonly<Record<string, unknown>>, evidence?: boolean) => void {
  const body = bodyWriters.get(logger)
  return body ? (level, record, evidence) => body(level, JSON.stringify(record).slice(1), evidence) : (level, record) => logger[level](record)
}

/**
 * A writer of one record given as JSON text without its opening brace (`"k":v,…}`), the caller
 * having checked the level: written as it is for a logger made by createLogger, parsed and
 * handed to the logger's own method otherwise. `evidence`: see LineSink.write.
 */
export function bodyWriter(logger: Logger): BodyWrite {
  return bodyWriters.get(logger) ?? ((level, body) => logger[level](JSON.parse(`{${body}`) as Record<string, unknown>))
}
