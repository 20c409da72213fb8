import { closeSync, openSync } from 'node:fs'
import { NOTICE_WINDOW_MS, throttled } from './throttle.js'
import type { Counters, FdCode, FdWhere } from './types.js'

/** How often the process checks that it can still open a file descriptor. */
export const FD_CHECK_MS = 2000
/** The warning about descriptors run out is said at most once per this window. */
export const FD_NOTICE_MS = NOTICE_WINDOW_MS

/** Is `e` the error of a process (EMFILE) or system (ENFILE) that has no file descriptor free? */
export function fdExhausted(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code
  return code === 'EMFILE' || code === 'ENFILE'
}

/** Which limit an fdExhausted error hit: the host's (ENFILE) or, otherwise, this process's (EMFILE). */
export function fdCode(e: unknown): FdCode {
  return (e as NodeJS.ErrnoException | undefined)?.code === 'ENFILE' ? 'ENFILE' : 'EMFILE'
}

/**
 * Is `e` a failure of this host rather than of the peer: no file descriptor (fdExhausted) or no
 * buffer space (ENOBUFS)? A socket to a healthy upstream fails so when the process is exhausted.
 */
export function localExhausted(e: unknown): boolean {
  return fdExhausted(e) || (e as NodeJS.ErrnoException | undefined)?.code === 'ENOBUFS'
}

/**
 * Every `everyMs`, open /dev/null and close it again; a failure for want of a descriptor is
 * counted (`where: check`). It is the one sign of what the listeners then do: libuv keeps a
 * descriptor in reserve and, when an accept fails with EMFILE, frees it, accepts the waiting
 * connections and closes them at once, so nothing reaches the process (no error, no line).
 * Returns the function that stops the check.
 */
export function watchFds(counters: Pick<Counters, 'fdExhausted'>, everyMs = FD_CHECK_MS,
  open: () => number = () => openSync('/dev/null', 'r')): () => void {
  const timer = setInterval(() => {
    try {
      closeSync(open())
    } catch (e) {
      if (fdExhausted(e)) counters.fdExhausted('check', fdCode(e))
    }
  }, everyMs)
  timer.unref()
  return () => clearInterval(timer)
}

/**
 * The warning that descriptors ran out: the first time at once, then at most once per
 * `windowMs`, with how many times it happened since the last one (`count`), where first and
 * which limit: this process's (EMFILE) or the host's (ENFILE), each with its own fix.
 */
export function fdNotice(warn: (msg: string, fields: Record<string, unknown>) => void, now: () => number = () => performance.now(),
  windowMs = FD_NOTICE_MS): (where: FdWhere, code: FdCode) => void {
  const say = throttled<{ where: FdWhere, code: FdCode }>(({ where, code }, count) => warn(
    `no file descriptor free (${code}${code === 'ENFILE' ? ': the whole host is out of them' : ''}): new connections `
    + 'are closed as they are accepted and upstream sockets cannot open', {
      'error.code': code, where, count,
      fix: code === 'ENFILE'
        ? 'the host\'s open-files table is full: find the process holding them (lsof, /proc/*/fd) or raise fs.file-max (sysctl)'
        : 'raise the open-files limit (systemd LimitNOFILE=, docker run --ulimit nofile=, ulimit -n) or lower dns.tcp.maxConnections, proxy.maxConnections and admin.maxConnections',
    }), now, windowMs)
  return (where, code) => say({ where, code })
}
