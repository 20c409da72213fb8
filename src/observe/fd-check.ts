import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs'
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

/**
 * This process's soft limit on open files (RLIMIT_NOFILE) as /proc/self/limits says it (node
 * raises the soft limit to the hard one as it starts); undefined where there is no such file
 * (not Linux) or the limit is "unlimited".
 */
export function softFdLimit(read: () => string = () => readFileSync('/proc/self/limits', 'latin1')): number | undefined {
  let text: string
  try {
    text = read()
  } catch {
    return undefined
  }
  const m = /^Max open files\s+(\d+)\s/m.exec(text)
  return m ? Number(m[1]) : undefined
}

/** The descriptors this process has open now (Linux; the one that reads the directory is not counted). */
export function countOpenFds(): number {
  return readdirSync('/proc/self/fd').length - 1
}

/**
 * The descriptors kept free for what is not a client connection (upstream sockets, the admin
 * listener and its connections, the log, list and lease files): an eighth of the limit, at
 * least 64 and at most 1024.
 */
export function fdReserve(limit: number): number {
  return Math.min(1024, Math.max(64, Math.floor(limit / 8)))
}

/** How often, at most, FdBudget counts the open descriptors again (a count of thousands takes a millisecond or more). */
export const FD_RECOUNT_MS = 1000

/**
 * Whether a new client connection (DNS over TCP, proxy) may be kept: not when the open
 * descriptors come within fdReserve of the soft limit, so that upstream sockets, the admin
 * listener and the log still get theirs. The count is taken again at most once per
 * FD_RECOUNT_MS, when asked (at an accept); between counts the client connections opened and
 * closed since are added in (`opened`, `closed`), so a burst of connections is seen as it comes.
 * Where the limit cannot be read (not Linux, unlimited), never low.
 */
export class FdBudget {
  private count = 0
  private delta = 0
  private countedAt = -Infinity
  private lim: number | undefined

  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly readLimit: () => number | undefined = softFdLimit,
    private readonly countOpen: () => number = countOpenFds,
  ) {}

  /** The soft limit as last read, and the reserve kept below it (undefined: no limit known). */
  get limit(): number | undefined { return this.lim }
  get reserve(): number { return fdReserve(this.lim ?? 0) }

  /** Are the open descriptors within the reserve of the limit (no more than `reserve` free), the connection just accepted aside? */
  low(): boolean {
    const now = this.now()
    if (now - this.countedAt >= FD_RECOUNT_MS) {
      this.countedAt = now
      this.lim = this.readLimit() ?? this.lim      // a limit once read is kept when the file cannot be read (no descriptor for it)
      this.delta = 0
      try {
        this.count = this.lim === undefined ? 0 : this.countOpen()
      } catch {
        this.count = this.lim!                      // no descriptor to read /proc/self/fd with: as low as can be
      }
    }
    return this.lim !== undefined && this.count + this.delta >= this.lim - fdReserve(this.lim)
  }

  /** A client connection was kept (it holds a descriptor until `closed`). */
  opened(): void { this.delta++ }
  /** A client connection closed. */
  closed(): void { this.delta-- }
}

/** The connection caps of a config, and the listeners they apply to, as fdCapsWarning weighs them. */
export interface FdCaps {
  /** dns.tcp.maxConnections, and the DNS TCP listeners it applies to each of. */
  readonly dnsTcp: number
  readonly dnsListeners: number
  /** proxy.maxConnections (0: no proxy listener): each connection may hold an origin socket too. */
  readonly proxy: number
  /** admin.maxConnections (0: no admin listener). */
  readonly admin: number
}

/**
 * The warning (its message and fields) when the connection caps, at their fullest, plus the
 * reserve kept for upstream sockets and files, need more descriptors than the soft limit allows,
 * as nginx warns when worker_connections exceed the open file resource limit; undefined when
 * they fit or no limit is known.
 */
export function fdCapsWarning(caps: FdCaps, limit: number | undefined): { msg: string, fields: Record<string, unknown> } | undefined {
  if (limit === undefined) return undefined
  const reserve = fdReserve(limit)
  const need = caps.dnsTcp * caps.dnsListeners + 2 * caps.proxy + caps.admin + reserve
  if (need <= limit) return undefined
  return {
    msg: `the connection caps need up to ${need} file descriptors, more than the open-files limit of ${limit}: past ${limit - reserve} open, `
      + 'new DNS TCP connections close an idle one or are refused, and new proxy connections get 503',
    fields: {
      fdLimit: limit, fdNeeded: need, fdReserve: reserve,
      fix: `raise the open-files limit to ${need} or more (systemd LimitNOFILE=, docker run --ulimit nofile=, ulimit -n) or lower `
        + `dns.tcp.maxConnections (${caps.dnsTcp} on each of ${caps.dnsListeners} listeners), proxy.maxConnections (${caps.proxy}, `
        + `counted twice: client and origin) and admin.maxConnections (${caps.admin})`,
    },
  }
}
