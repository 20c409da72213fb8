/**
 * Signals that come to `tunnelguard serve` before serve() has its own handlers: while the modules
 * load, the lists are read and the listeners open. Node's default for SIGHUP is to end the
 * process, and systemd takes such an end for a clean exit, so `systemctl start` followed at once
 * by `reload` would leave the service down. Imported first by the CLI, so that its handlers are in
 * place before anything else is loaded; for any other command a hangup ends it, as it should.
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

/** Catch SIGHUP, SIGTERM and SIGINT for `serve` from now until takeEarlySignals. */
export function catchEarlySignals(argv: readonly string[]): void {
  if (installed || argv[2] !== 'serve') return
  installed = true
  process.on('SIGHUP', onHup).on('SIGTERM', onTerm).on('SIGINT', onInt)
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
