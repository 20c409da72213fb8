import { closeSync, fstatSync, openSync, readFileSync, readSync, statSync, type Stats } from 'node:fs'
import { open, stat } from 'node:fs/promises'

/**
 * What a pipe may hold at most (`validate --config <(…)`, a list read through one): past it the
 * read stops with an error, so a pipe that never ends (`<(yes)`) cannot fill the memory.
 */
export const PIPE_MAX_BYTES = 256 * 1024 * 1024
const CHUNK = 1 << 16

export interface ReadOptions {
  /**
   * A FIFO or pipe is read (to its end, PIPE_MAX_BYTES at most): the one-shot commands, for
   * `--config <(…)`. Otherwise (serve, a reload) it is refused: reading one would hold the whole
   * process until something writes to it.
   */
  readonly pipes?: boolean
  /** Tests: a smaller bound than PIPE_MAX_BYTES. */
  readonly maxPipeBytes?: number
  /**
   * /dev/null is read as an empty file (the default), or, false, refused as every device is:
   * `report --leases /dev/null` names no lease file, which is a mistake rather than a wish.
   */
  readonly devNull?: boolean
}

/**
 * Why a config or list file is not read, from its stat (a symlink's target), or undefined. A
 * device or socket is refused for every command: /dev/zero or /dev/urandom never ends, and a read
 * of one to its end would fill the memory (/dev/null, an empty file, is fine). A directory is left
 * to the read (EISDIR) or to the caller's own word.
 */
export function refusal(st: Stats, file: string, opts: ReadOptions = {}): string | undefined {
  if (st.isFile() || st.isDirectory() || (file === '/dev/null' && opts.devNull !== false)) return undefined
  if (file === '/dev/null') return 'not a regular file (the null device: nothing to read); name a regular file, a symlink to one, or a pipe (<(…))'
  if (opts.pipes !== true) return 'not a regular file (a FIFO, socket or device: serve would wait on it, or read it without end); name a regular file or a symlink to one'
  if (st.isFIFO()) return undefined
  return 'not a regular file (a device or socket: reading it might never end); name a regular file, a symlink to one, or a pipe (<(…))'
}

/**
 * A config or list file's text from its bytes: UTF-8, or UTF-16 when it starts with a UTF-16 byte
 * order mark (Windows Notepad and PowerShell's `>` save that; read as UTF-8 it held a NUL between
 * every two letters, and a list of it loaded nothing). A UTF-8 BOM is the reader's (a U+FEFF first).
 */
export function decodeText(buf: Buffer): string {
  if (buf.length >= 2 && buf[0] === 0xff && buf[1] === 0xfe) return buf.toString('utf16le', 2)
  if (buf.length >= 2 && buf[0] === 0xfe && buf[1] === 0xff) {
    const le = Buffer.from(buf.subarray(2, buf.length - (buf.length % 2)))
    return le.swap16().toString('utf16le')
  }
  return buf.toString('utf8')
}

/**
 * Read a config or list file as text (utf8: decodeText's), bounded: a regular file (or a symlink to one: a Kubernetes
 * ConfigMap) whole, a pipe (opts.pipes) up to PIPE_MAX_BYTES, anything else refused before it is
 * opened (a FIFO would block the open). Throws an Error whose message says why (refusal's words,
 * or the system's: ENOENT, EISDIR, EACCES).
 */
export function readTextFile(file: string, encoding: 'utf8' | 'latin1', opts: ReadOptions = {}): string {
  const decode = (b: Buffer): string => encoding === 'utf8' ? decodeText(b) : b.toString(encoding)
  const check = (st: Stats): Stats => {
    const why = refusal(st, file, opts)
    if (why !== undefined) throw new Error(why)
    return st
  }
  check(statSync(file))
  const fd = openSync(file, 'r')
  try {
    // what was opened, again: the path may have been swapped between the stat and the open
    if (!check(fstatSync(fd)).isFIFO()) return decode(readFileSync(fd))
    const max = opts.maxPipeBytes ?? PIPE_MAX_BYTES
    const chunks: Buffer[] = []
    let total = 0
    // at most max / CHUNK + 2 turns: each read takes at least a byte, and the bound ends it
    for (;;) {
      const buf = Buffer.allocUnsafe(CHUNK)
      const n = readSync(fd, buf, 0, CHUNK, null)
      if (n === 0) return decode(Buffer.concat(chunks, total))
      total += n
      if (total > max) throw new Error(`more than ${max} bytes from a pipe; write it to a file and name the file`)
      chunks.push(buf.subarray(0, n))
    }
  } finally {
    closeSync(fd)
  }
}

/**
 * readTextFile for a running serve (a reload), without blocking: the bytes of a regular file (or a
 * symlink to one; /dev/null), a FIFO, socket or device refused as readTextFile refuses them, in
 * the same words. Decoding is the caller's (one decode of the whole is quicker than fs's pieces).
 */
export async function readFileAsync(file: string): Promise<Buffer> {
  const check = (st: Stats): void => {
    const why = refusal(st, file)
    if (why !== undefined) throw new Error(why)
  }
  check(await stat(file))
  const fh = await open(file, 'r')
  try {
    check(await fh.stat())
    return await fh.readFile()
  } finally {
    await fh.close()
  }
}
