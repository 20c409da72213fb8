import type { Socket } from 'node:dgram'

/**
 * The UDP datagrams of one turn of the event loop (answers to clients, queries to upstreams), sent
 * together at its end (setImmediate: after every socket's datagrams of the turn were read and
 * handled), in the order they were given, rather than each as soon as it is ready.
 *
 * Why: on loopback, and on a VM above all, a `sendmsg` that finds its receiver asleep pays for
 * waking it (a cross-CPU interrupt, a VM exit), and the receiver, woken for one datagram, sleeps
 * again before the next. Sent back to back, a turn's datagrams to one peer (dnsperf, a stub
 * resolver, the upstream) wake it once. Measured on the 2-vCPU bench box (bench/README.md, "Stop
 * 31", pinned A/Bs against the code before): a blocked query 1.3–2.8 µs of CPU cheaper in six
 * rounds of six, a forwarded one cheaper in eight of nine, both in the main thread's system time;
 * the load generator itself used less CPU. A datagram waits at most the rest of the turn it was
 * made in (about 10 µs more at the median at 10k queries/s).
 *
 * A datagram whose socket was closed before the end of the turn is not sent (its query was
 * failed, or the server is stopping); a server that stops sends what it queued first (flushSends).
 */
const sockets: (Socket | undefined)[] = []
const bufs: (Buffer | undefined)[] = []
/** The address to send to; port 0 for a connected socket (dgram's send without an address). */
const ports: number[] = []
const ips: string[] = []
let queued = 0
let scheduled = false

/** Send `buf` on `s` at the end of this turn: to `ip`:`port`, or (port 0) to the socket's connected peer. */
export function sendSoon(s: Socket, buf: Buffer, port = 0, ip = ''): void {
  sockets[queued] = s
  bufs[queued] = buf
  ports[queued] = port
  ips[queued] = ip
  queued++
  if (!scheduled) {
    scheduled = true
    setImmediate(flushSends)
  }
}

/** Send every datagram queued, now (also what the end of a turn does). */
export function flushSends(): void {
  // (queued is read on each pass: a datagram given while these go out goes out with them)
  for (let i = 0; i < queued; i++) {
    const s = sockets[i]!
    const buf = bufs[i]!
    const ip = ips[i]!
    // the slots let go of what they held (these arrays outlive every datagram: see slot-table.ts)
    sockets[i] = undefined
    bufs[i] = undefined
    ips[i] = ''
    try {
      if (ports[i] === 0) s.send(buf)
      else s.send(buf, ports[i], ip)
    } catch {
      // the socket was closed since (ERR_SOCKET_DGRAM_NOT_RUNNING): nobody waits for this datagram
    }
  }
  queued = 0
  scheduled = false
}

/** Datagrams waiting for the end of the turn (tests). */
export function queuedSends(): number {
  return queued
}
