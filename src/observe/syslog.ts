import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { connect, isIP, type Socket } from 'node:net'
import { hostname as osHostname } from 'node:os'
import { AppError } from '../errors.js'
import type { AlertOutput } from './alerts.js'
import type { DecisionEvent } from './types.js'

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

export function parseSyslogUrl(url: string): { transport: 'udp' | 'tcp'; host: string; port: number } {
  const m = /^(udp|tcp):\/\/(?:\[([0-9a-fA-F:.]+)\]|([^:/[\]]+)):(\d{1,5})$/.exec(url)
  if (!m || Number(m[4]) > 65535 || Number(m[4]) === 0) {
    throw new AppError('USAGE', `syslog url "${url}": expected udp://HOST:PORT or tcp://HOST:PORT`)
  }
  return { transport: m[1] as 'udp' | 'tcp', host: (m[2] ?? m[3])!, port: Number(m[4]) }
}

/** Escape a structured-data parameter value (RFC 5424 §6.3.3). */
function sdValue(v: string): string {
  return v.replace(/["\\\]]/g, c => '\\' + c)
}

/** One RFC 5424 message for an alert event. */
export function formatSyslog(ev: DecisionEvent, o: { appName: string; facility: number; hostname: string; time: number; pid: number }): string {
  const d = ev.decision
  const severity = d.action === 'alert' ? 5 : 4   // notice for alerts, warning for block/sinkhole
  const params: [string, string | undefined][] = [
    ['action', d.action], ['client', ev.client.ip], ['name', d.name], ['where', d.where],
    ['list', d.list], ['rule', d.entry?.pattern], ['group', d.group], ['sigma', d.sigma?.id],
  ]
  const sd = params.filter(([, v]) => v !== undefined).map(([k, v]) => `${k}="${sdValue(v!)}"`).join(' ')
  const header = `<${o.facility * 8 + severity}>1 ${new Date(o.time).toISOString()} ${o.hostname || '-'} ${o.appName} ${o.pid} ${ev.message}`
  return `${header} [${SD_ID} ${sd}] ${ev.client.ip} ${d.reason}`
}

/** Sends alerts to a syslog receiver over UDP (one datagram each) or TCP. */
export function createSyslog(opts: SyslogOptions, onError: (msg: string, fields: Record<string, unknown>) => void, clock: () => number): AlertOutput {
  const { transport, host, port } = parseSyslogUrl(opts.url)
  const fmt = { appName: opts.appName ?? 'tunnelguard', facility: opts.facility ?? 16, hostname: opts.hostname ?? osHostname(), pid: process.pid }
  const maxQueue = opts.maxQueue ?? 1000
  const report = (e: Error) => onError('alert syslog failed', { url: opts.url, error: e.message })
  let udp: UdpSocket | undefined
  let tcp: Socket | undefined
  let connected = false
  let failedAt = -Infinity
  const pending: string[] = []

  function openTcp(): void {
    const s = connect({ host, port })
    tcp = s
    s.setNoDelay(true)
    s.on('error', e => { failedAt = clock(); report(e) })
    s.on('connect', () => {
      connected = true
      for (const m of pending.splice(0)) s.write(m)
    })
    s.on('close', () => {
      if (tcp === s) { tcp = undefined; connected = false }
    })
  }

  return {
    send(ev) {
      const msg = formatSyslog(ev, { ...fmt, time: clock() })
      if (transport === 'udp') {
        udp ??= createSocket(isIP(host) === 6 ? 'udp6' : 'udp4').on('error', report)
        udp.send(msg, port, host, e => { if (e) report(e) })
        return
      }
      const framed = `${Buffer.byteLength(msg)} ${msg}`
      if (connected) { tcp!.write(framed); return }
      if (pending.length < maxQueue) pending.push(framed)
      if (!tcp && clock() - failedAt >= 1000) openTcp()
    },
    async close() {
      pending.length = 0
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
