/**
 * stdout as the CLI's commands write to it: a reader gone (EPIPE) is no error, any other write
 * error is kept for main to say once on stderr (outputFailure).
 */

/** A write error of stdout in words, where Node's message may not say it (a pipe's: `write EIO`). */
const OUTPUT_WHY: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large',
  EIO: 'input/output error',
  EBADF: 'stdout is not open for writing',
}

/** The stderr line (after `tunnelguard: `) for an error stdout gave a command's output: `… ENOSPC (no space left on device)`. */
export function outputFailure(e: NodeJS.ErrnoException): string {
  const code = e.code
  if (code === undefined) return `cannot write the output to stdout: ${e.message}`
  // Node says what it means in a file's message (`ENOSPC: no space left on device, write`)
  const why = OUTPUT_WHY[code] ?? new RegExp(`^${code}: (.+), write$`).exec(e.message)?.[1]
  return `cannot write the output to stdout: ${code}${why === undefined ? '' : ` (${why})`}`
}

/**
 * stdout as the commands write to it. A reader that went away (EPIPE, as `| head` does) takes the
 * rest without a word, as coreutils do, and the command ends with its own exit code; any other
 * error (a full disk: ENOSPC) is kept, the first of them, for main to say once on stderr. Each
 * write's error comes to its callback, in order; the stream's 'error' event is the same error again.
 */
export class Output {
  private failed: NodeJS.ErrnoException | undefined
  private last: Promise<void> = Promise.resolve()
  constructor(private readonly stdout: NodeJS.WritableStream) {
    stdout.on('error', () => {})
  }

  /** `done`: once the text was taken, or dropped because the reader is gone; with the error otherwise. */
  write(text: string, done?: (e?: Error | null) => void): void {
    let settle!: () => void
    const taken = new Promise<void>(r => { settle = r })
    this.stdout.write(text, (e?: Error | null) => {
      const err = e as NodeJS.ErrnoException | null | undefined
      // after EPIPE every write is ERR_STREAM_DESTROYED: the reader is still gone
      const gone = err?.code === 'EPIPE' || err?.code === 'ERR_STREAM_DESTROYED'
      if (err && !gone) this.failed ??= err
      settle()
      done?.(gone ? null : err)
    })
    this.last = taken
  }

  /** The first error other than a reader gone, once every write so far was taken (or failed). */
  async settled(): Promise<NodeJS.ErrnoException | undefined> {
    await this.last
    return this.failed
  }

  /** Whether a write failed already (an error thrown since is that one's). */
  get hasFailed(): boolean {
    return this.failed !== undefined
  }
}
