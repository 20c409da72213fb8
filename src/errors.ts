/** The one application error type: a stable `code` plus a message meant for people. */
export type ErrorCode =
  | 'USAGE'
  | 'CONFIG_INVALID'
  | 'LIST_LOAD'
  | 'LISTEN_FAILED'
  /** A log input `report` could not read (to the end). */
  | 'INPUT_READ'
  | 'NAME_INVALID'
  | 'UPSTREAM_TIMEOUT'
  | 'UPSTREAM_FAILED'
  /** This process or host ran out of descriptors or buffers (EMFILE, ENFILE, ENOBUFS): not the peer's failure. */
  | 'LOCAL_EXHAUSTED'

export class AppError extends Error {
  readonly code: ErrorCode
  readonly details: readonly string[]
  constructor(code: ErrorCode, message: string, details: readonly string[] = []) {
    super(message)
    this.name = 'AppError'
    this.code = code
    this.details = details
  }
}

/** The message, then each detail that does not repeat it (a single error is often both). */
export function errorLines(e: AppError): string[] {
  return [e.message, ...e.details.filter(d => d !== e.message)]
}
