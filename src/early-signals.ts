/**
 * Signals that come to `tunnelguard serve` before it has its own handlers: while the modules load,
 * the lists are read and the listeners open. Node's default for SIGHUP is to end the process, and
 * systemd takes such an end for a clean exit, so `systemctl start` followed at once by `reload`
 * would leave the service down. Imported first by the CLI, which holds them for `serve` before
 * anything else is loaded (for any other command a hangup ends it, as it should); serve() holds
 * them too (when called in process), and takes what came once it has started.
 */
export interface EarlySignals {
  /** A SIGHUP came: one reload once started. */
  hup: boolean
  /** A SIGTERM or SIGINT came: stop once started. */
  stop: string | undefined
}

const seen: EarlySignals = { hup: false, stop: undefined }
const onHup = (): void => { seen.hup = true }
const onTerm = (): void => { seen.stop ??= 'SIGTERM' }
const onInt = (): void => { seen.stop ??= 'SIGINT' }
let installed = false

/** Hold SIGHUP, SIGTERM and SIGINT from now until takeEarlySignals (once, however often called). */
export function holdSignals(): void {
  if (installed) return
  installed = true
  process.on('SIGHUP', onHup).on('SIGTERM', onTerm).on('SIGINT', onInt)
}

/** holdSignals for the command `serve` (argv as the process has it). */
export function catchEarlySignals(argv: readonly string[]): void {
  if (argv[2] === 'serve') holdSignals()
}

/** What came so far; the early handlers are removed (serve's own are in place by then). */
export function takeEarlySignals(): EarlySignals {
  if (installed) process.off('SIGHUP', onHup).off('SIGTERM', onTerm).off('SIGINT', onInt)
  installed = false
  const s = { ...seen }
  seen.hup = false
  seen.stop = undefined
  return s
}

catchEarlySignals(process.argv)
