import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { connect, isIP, type Socket } from 'node:net'
import { hostname as osHostname } from 'node:os'
import { AppError } from '../errors.js'
import { parseSyslogUrl } from '../config/endpoints.js'
import { alertFields, errorText, type AlertOutput, type AlertResult } from './alert-output.js'
import { destinationHost, type DecisionEvent } from './types.js'

export interface SyslogOptions {
  /** udp://HOST:PORT or tcp://HOST:PORT (IPv6 in brackets). TCP uses octet-counting framing (RFC 6587). */
  readonly url: string
  /** APP-NAME; default "tunnelguard". */
  readonly appName?: string
  /** Facility number; default 16 (local0). */
  readonly facility?: number
  /** HOSTNAME; default the machine's. */
  readonly hostname?: string
  /** Messages held while a TCP connection is (re)opened; default 1000. */
  readonly maxQueue?: number
}

/** Structured-data ID: private enterprise number 32473 is reserved for examples (RFC 5612). */
const SD_ID = 'tunnelguard@32473'

/** Escape a structured-data parameter value (RFC 5424 §6.3.3). */
function sdValue(v: string): string {
  return v.replace(/["\\\]]/g, c => '\\' + c)
}

/**
 * One RFC 5424 message for an alert event, stamped `time` (the event's @timestamp). `name` is the
 * name decided on, `asked` the name the client asked (the DNS question, the CONNECT host, SNI or
 * URL host): a CNAME target's alert names the machine's own question too.
 */
export function formatSyslog(ev: DecisionEvent, o: { appName: string; facility: number; hostname: string; time: number; pid: number }): string {
  const d = ev.decision
  const severity = d.action === 'alert' ? 5 : 4   // notice for alerts, warning for block/sinkhole
  const asked = ev.dns?.name ?? destinationHost(ev.destination) ?? ev.sni ?? ev.urlDomain
  const params: [string, string | undefined][] = [
    ['action', d.action], ['client', ev.client.ip], ['name', d.name], ['asked', asked], ['where', d.where],
    ['list', d.list], ['rule', d.entry?.pattern], ['group', d.group], ['sigma', d.sigma?.id],
  ]
  const sd = params.filter(([, v]) => v !== undefined).map(([k, v]) => `${k}="${sdValue(v!)}"`).join(' ')
  const header = `<${o.facility * 8 + severity}>1 ${new Date(o.time).toISOString()} ${o.hostname || '-'} ${o.appName} ${o.pid} ${ev.message}`
  return `${header} [${SD_ID} ${sd}] ${ev.client.ip} ${d.reason}`
}

interface Pending {
  readonly framed: string
  readonly ev: DecisionEvent
  readonly report: (result: AlertResult) => void
}

/**
 * Sends alerts to a syslog receiver over UDP (one datagram each) or TCP. An alert is `sent` once
 * its datagram or frame is handed to the socket without error (syslog has no acknowledgement);
 * over TCP it waits in a bounded queue while the connection opens. A send or connection error is
 * a line (`alert syslog failed`: the cause) and gives up each alert it takes down with it, each a
 * line of its own (`alert syslog gave up`: why, and how many this output has dropped). A failed
 * connection is retried at most once a second, when an alert is waiting.
 */
export function createSyslog(opts: SyslogOptions, onError: (msg: string, fields: Record<string, unknown>) => void, clock: () => number,
  createUdp: (type: 'udp4' | 'udp6') => UdpSocket = createSocket): AlertOutput {
  const parts = parseSyslogUrl(opts.url)
  // the config's schema checks it by the same rule: only a caller that skipped it gets here
  if (typeof parts === 'string') throw new AppError('USAGE', `alerts.syslog.url: ${parts}`)
  const { transport, host, port } = parts
  const fmt = { appName: opts.appName ?? 'tunnelguard', facility: opts.facility ?? 16, hostname: opts.hostname ?? osHostname(), pid: process.pid }
  const maxQueue = opts.maxQueue ?? 1000
  const failed = (e: unknown) => onError('alert syslog failed', { url: opts.url, error: errorText(e) })
  let udp: UdpSocket | undefined
  /** The alerts sent on `udp` before it bound (undefined once it has). */
  let unbound: Set<Omit<Pending, 'framed'>> | undefined
  let tcp: Socket | undefined
  let connected = false
  let closed = false
  let failedAt = -Infinity
  let retry: NodeJS.Timeout | undefined
  let dropped = 0
  let lastError: unknown
  /** Alerts waiting for the connection being opened (or for the next one). */
  let pending: Pending[] = []

  function giveUp(p: Omit<Pending, 'framed'>, reason: string, error?: string): void {
    dropped++
    p.report('dropped')
    onError('alert syslog gave up', { url: opts.url, ...alertFields(p.ev), reason, error, dropped })
  }
  /**
   * Write one frame: taken when its callback comes without an error on a live socket (Node calls
   * back without an error for a write still pending when the socket is destroyed by an error).
   */
  function write(s: Socket, p: Pending): void {
    s.write(p.framed, e => {
      if (!e && !s.destroyed) return p.report('sent')
      p.report('failed')
      giveUp(p, 'send failed', errorText(e ?? lastError))
    })
  }
  /** The connection is gone (`end`, `close`, or an error): the next alert opens another. */
  function lost(s: Socket): void {
    if (tcp === s) { tcp = undefined; connected = false; pending = [] }
  }

  /**
   * The UDP socket, bound by its first send. When that bind fails (no descriptor free: EMFILE),
   * dgram drops the sends queued behind it, callbacks and all: each of their alerts is given up
   * here (it went uncounted), and the next alert opens another socket.
   */
  function openUdp(): UdpSocket {
    const s = createUdp(isIP(host) === 6 ? 'udp6' : 'udp4')
    const waiting = unbound = new Set()
    s.once('listening', () => { if (unbound === waiting) unbound = undefined })
    s.on('error', e => {
      failed(e)
      if (unbound !== waiting) return
      udp = undefined
      unbound = undefined
      s.close()
      for (const p of waiting) {
        p.report('failed')
        giveUp(p, 'send failed', errorText(e))
      }
    })
    return s
  }

  function openTcp(): void {
    retry = undefined
    const s = connect({ host, port })
    const waiting = pending   // the alerts queued until this connection opens
    tcp = s
    s.setNoDelay(true)
    s.on('error', e => {
      failedAt = clock()
      lastError = e
      failed(e)
      lost(s)
      for (const p of waiting.splice(0)) {
        p.report('failed')
        giveUp(p, 'connect failed', errorText(e))
      }
    })
    s.on('connect', () => {
      connected = true
      for (const p of waiting.splice(0)) write(s, p)
    })
    s.on('end', () => lost(s))
    s.on('close', () => lost(s))
  }

  return {
    name: 'syslog',
    send(ev, record, report) {
      if (closed) return giveUp({ ev, report }, 'closed')
      // the event's time (its log line's @timestamp), not the time it is sent
      const stamp = record['@timestamp']
      const at = typeof stamp === 'string' ? Date.parse(stamp) : NaN
      const msg = formatSyslog(ev, { ...fmt, time: Number.isNaN(at) ? clock() : at })
      if (transport === 'udp') {
        udp ??= openUdp()
        const p = { ev, report }
        const waiting = unbound
        waiting?.add(p)
        udp.send(msg, port, host, e => {
          waiting?.delete(p)
          if (!e) return report('sent')
          failed(e)
          report('failed')
          giveUp({ ev, report }, 'send failed', errorText(e))
        })
        return
      }
      const p = { framed: `${Buffer.byteLength(msg)} ${msg}`, ev, report }
      if (connected) return write(tcp!, p)
      if (pending.length >= maxQueue) return giveUp(p, `queue full (${maxQueue})`)
      pending.push(p)
      if (tcp || retry) return
      const wait = failedAt + 1000 - clock()
      if (wait <= 0) openTcp()
      else retry = setTimeout(openTcp, wait)
    },
    async close() {
      closed = true
      clearTimeout(retry)
      for (const p of pending.splice(0)) giveUp(p, 'closed')
      const u = udp
      udp = undefined
      if (u) await new Promise<void>(resolve => u.close(() => resolve()))
      const t = tcp
      tcp = undefined
      if (t) {
        await new Promise<void>(resolve => {
          t.once('close', () => resolve())
          if (connected) t.end(() => t.destroy())
          else t.destroy()
        })
      }
    },
  }
}
