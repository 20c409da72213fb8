import type { Logger } from 'pino'
import type { Outcome } from '../policy/types.js'
import type { Snapshot } from '../snapshot-types.js'
import type { AlertSink } from './alerts.js'
import type { ClientNames } from './client-names.js'
import type { ClientTable } from './client-table.js'
import { eventKind, toEcs } from './ecs.js'
import { ecsBody, writeEcsBody } from './ecs-body.js'
import { fdNotice } from './fd-check.js'
import { JsonBytes } from './json-bytes.js'
import { bodyWriter, lastLineTime, lineTarget, messageWriter, recordWriter } from './logger.js'
import type { Metrics } from './metrics.js'
import type { Evidence } from './types.js'

export interface EvidenceOptions {
  readonly logger: Logger
  /** The current snapshot (its `log.queries` says whether plain queries are logged). */
  readonly getSnapshot: () => Snapshot
  readonly metrics: Metrics
  readonly clients: ClientTable
  readonly alerts?: AlertSink
  /** Adds client.hostname / client.mac (DHCP leases) and client.domain (PTR) to each line. */
  readonly names?: Pick<ClientNames, 'annotate'>
}

/**
 * The evidence sink: every decision is counted; decisions other than `pass` go to the live
 * client table and the log (alerts at warn, to the alert sink too); `pass` is logged only
 * with `log.queries: all`. Client names are added only to lines that are built.
 */
export function createEvidence(opts: EvidenceOptions): Evidence {
  const { logger, metrics, clients, alerts, getSnapshot, names } = opts
  const write = recordWriter(logger)
  const writeBody = bodyWriter(logger)
  const target = lineTarget(logger)
  const line = new JsonBytes()
  const logs = (action: Outcome): boolean => action !== 'pass' || getSnapshot().config.log.queries === 'all'
  const say = messageWriter(logger)
  const lineTime = lastLineTime(logger)
  // descriptors run out: counted (metrics), and said at most once per 10 s
  metrics.onFdExhausted(fdNotice((msg, fields) => say('warn', msg, fields)))
  return {
    counters: metrics.counters,
    logs,
    decision(ev) {
      const action = ev.decision.action
      metrics.decision(ev)
      if (!logs(action)) return
      // the client's names now (the lease it holds at this moment): its line and its row in the
      // live table both get them, so that neither credits the decision to a later holder
      let named: Record<string, unknown> | undefined
      const mac = ev.client.mac
      if (names || mac !== undefined) {
        const c: Record<string, unknown> = ev.client.port === 0 ? { ip: ev.client.ip } : { ip: ev.client.ip, port: ev.client.port }
        const plain = Object.keys(c).length
        names?.annotate(c, ev.client.ip)
        // the MAC the resolver in front saw ask, over the one a lease of this address names
        if (mac !== undefined) c.mac = mac
        if (Object.keys(c).length > plain) named = c   // names were added
      }
      if (action !== 'pass') clients.record(ev, named)
      const alert = eventKind(ev.decision) === 'alert'
      const level = alert ? 'warn' : 'info'
      // the responder's evidence (block, sinkhole and alert decisions, and what reached the
      // sinkhole): kept past the bound where other lines are dropped when stdout does not keep up
      const kept = alert || ev.message === 'sinkhole.capture'
      if (!alert && !logger.isLevelEnabled(level)) return
      if (ev.extra || (alert && alerts && alerts.active !== false)) {
        const record = toEcs(ev)
        if (named) Object.assign(record.client as Record<string, unknown>, named)
        const logged = logger.isLevelEnabled(level)
        if (logged) write(level, record, kept)
        if (alert && alerts) {
          // the alert carries its line's @timestamp (the webhook's body, syslog's TIMESTAMP), not the time it is sent
          record['@timestamp'] = new Date(logged && lineTime ? lineTime() : Date.now()).toISOString()
          alerts.alert(ev, record)
        }
        return
      }
      // the usual line (a blocked query): its JSON written directly, no ECS object built
      if (!logger.isLevelEnabled(level)) return
      const client = named && JSON.stringify(named)
      if (!target) return writeBody(level, ecsBody(ev, client), kept)
      // stdout: the line's bytes, written in place (no string built and encoded)
      if (target.begin(level, line)) {
        writeEcsBody(line, ev, client)
        target.end(line, kept)
      }
    },
    info: (msg, fields) => say('info', msg, fields),
    warn: (msg, fields) => say('warn', msg, fields),
    error: (msg, fields) => say('error', msg, fields),
  }
}
