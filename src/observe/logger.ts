import { pino, type DestinationStream, type Logger } from 'pino'

/** The ECS version the log lines follow (ecs-logging: `ecs.version` on every line). */
export const ECS_VERSION = '8.11.0'

export interface LoggerOptions {
  readonly level: string
  /** Where lines go; stdout when absent. */
  readonly destination?: NodeJS.WritableStream | DestinationStream
  /** Milliseconds since the epoch; Date.now when absent. */
  readonly clock?: () => number
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
  // stdout: asynchronous writes (sonic-boom coalesces lines while a write is pending); a line per
  // blocked query must not cost a write(2) each
  return pino(options, (opts.destination as DestinationStream | undefined) ?? pino.destination({ dest: 1, sync: false }))
}
