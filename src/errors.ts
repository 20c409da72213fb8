/** The one application error type: a stable `code` plus a message meant for people. */
export type ErrorCode =
  | 'USAGE'
  | 'CONFIG_INVALID'
  | 'LIST_LOAD'
  | 'NAME_INVALID'
  | 'UPSTREAM_TIMEOUT'
  | 'UPSTREAM_FAILED'

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
