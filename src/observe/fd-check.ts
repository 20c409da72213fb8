import { closeSync, openSync } from 'node:fs'
import { NOTICE_WINDOW_MS, throttled } from './throttle.js'
import type { Counters, FdWhere } from './types.js'

/** How often the process checks that it can still open a file descriptor. */
export const FD_CHECK_MS = 2000
/** The warning about descriptors run out is said at most once per this window. */
export const FD_NOTICE_MS = NOTICE_WINDOW_MS

/** Is `e` the error of a process (EMFILE) or system (ENFILE) that has no file descriptor free? */
export function fdExhausted(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code
  return code === 'EMFILE' || code === 'ENFILE'
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
      if (fdExhausted(e)) counters.fdExhausted('check')
    }
  }, everyMs)
  timer.unref()
  return () => clearInterval(timer)
}

/**
 * The warning that descriptors ran out: the first time at once, then at most once per
 * `windowMs`, with how many times it happened since the last one (`count`) and where first.
 */
export function fdNotice(warn: (msg: string, fields: Record<string, unknown>) => void, now: () => number = () => performance.now(),
  windowMs = FD_NOTICE_MS): (where: FdWhere) => void {
  return throttled((where, count) => warn('no file descriptor free (EMFILE): new connections are closed as they are accepted and upstream sockets cannot open', {
    'error.code': 'EMFILE', where, count,
    fix: 'raise the open-files limit (systemd LimitNOFILE=, docker run --ulimit nofile=, ulimit -n) or lower dns.tcp.maxConnections, proxy.maxConnections and admin.maxConnections',
  }), now, windowMs)
}
