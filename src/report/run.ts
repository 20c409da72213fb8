import { open, type FileHandle } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import { parseDuration } from '../config/duration.js'
import { AppError } from '../errors.js'
import { loadLeases } from '../observe/leases.js'
import { parseCidr } from '../policy/cidr.js'
import { Aggregator, type Filters } from './aggregate.js'
import { parseLine } from './fields.js'
import { formatCsv, formatJson, formatTable, type ReportData } from './format.js'
import { decompressed, readLines } from './read-lines.js'

export interface ReportArgs {
  /** Log files (plain or gzip). */
  readonly files: readonly string[]
  /** Read this too (after the files), e.g. for `-` or no files. */
  readonly stdin?: NodeJS.ReadableStream
  /** A duration back from now (24h) or a time (ISO 8601). */
  readonly since?: string
  readonly until?: string
  /** An address or CIDR. */
  readonly client?: string
  readonly list?: string
  /** Actions to keep, comma-separated: block,sinkhole,alert,allow,pass. */
  readonly action?: string
  /** DHCP lease files (dnsmasq, ISC dhcpd, Kea CSV): hostname and MAC per client as of each line's time. */
  readonly leases?: readonly string[]
  readonly format: 'table' | 'json' | 'csv'
  readonly now?: () => number
  /** Where the report goes: done with an error when it was not taken. */
  readonly out: { write(text: string, done: (e?: Error | null) => void): unknown }
}

/** A written time: date, then optionally time of day (with seconds and a fraction), then optionally a zone. */
const TIME = /^(\d{4})-(\d\d)-(\d\d)(?:[Tt ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,9}))?)?([Zz]|[+-]\d\d:?\d\d)?)?$/

/** A time of day alone (no date, no zone): today's, in UTC. */
const TIME_OF_DAY = /^\d\d:\d\d(?::\d\d(?:\.\d{1,9})?)?$/

/** Days in month `m` (1-12) of year `y` (Gregorian). */
function daysIn(y: number, m: number): number {
  return m === 2 ? (y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0) ? 29 : 28) : [4, 6, 9, 11].includes(m) ? 30 : 31
}

/**
 * "24h" → now − 24h; a time → that time. A time without a zone is UTC, as every time the report
 * prints is, and a time of day alone (09:00, 20:05:03) is today's (the UTC date of `now`). `end`
 * (--until): the end of what was written, so that a time copied from the table (to the second) or
 * a day (2026-11-30) includes all of it. A date or time that does not exist (February 30, 24:00)
 * is an error that says so.
 */
export function parseTime(flag: string, v: string, now: number, end = false): number {
  const ms = parseDuration(v)
  if (ms !== undefined) return now - ms
  const m = TIME.exec(TIME_OF_DAY.test(v) ? `${new Date(now).toISOString().slice(0, 10)}T${v}` : v)
  if (!m) throw new AppError('USAGE', `report: --${flag} ${v}: expected a duration (30m, 24h, 7d) or a time (2026-11-21, 2026-11-21T10:00:00Z, 10:00 today; UTC when no zone is given)`)
  const [, y, mo, d, h, mi, sec, frac, zone] = m
  const n = (x: string | undefined) => x === undefined ? 0 : Number(x)
  const none = (why: string) => new AppError('USAGE', `report: --${flag} ${v}: ${why}`)
  if (n(mo) < 1 || n(mo) > 12) throw none('no such date: months go from 01 to 12')
  if (n(d) < 1 || n(d) > daysIn(n(y), n(mo))) throw none(`no such date: ${y}-${mo} has days 01 to ${daysIn(n(y), n(mo))}`)
  if (n(h) > 23 || n(mi) > 59 || n(sec) > 59) throw none('no such time of day: hours go from 00 to 23, minutes and seconds from 00 to 59')
  let offset = 0
  if (zone !== undefined && zone.toUpperCase() !== 'Z') {
    const z = /^([+-])(\d\d):?(\d\d)$/.exec(zone)!
    if (Number(z[2]) > 23 || Number(z[3]) > 59) throw none(`no such zone offset: ${zone} (hours 00 to 23, minutes 00 to 59)`)
    offset = (z[1] === '-' ? -1 : 1) * (Number(z[2]) * 60 + Number(z[3])) * 60_000
  }
  const fracMs = frac === undefined ? 0 : Number(frac.slice(0, 3).padEnd(3, '0'))
  // setUTCFullYear, not Date.UTC: that reads a year 0-99 as 1900-1999
  const t = new Date(0).setUTCFullYear(n(y), n(mo) - 1, n(d)) + ((n(h) * 60 + n(mi)) * 60 + n(sec)) * 1000 + fracMs
  const unit = h === undefined ? 86_400_000 : sec === undefined ? 60_000 : frac === undefined ? 1000 : 10 ** Math.max(0, 3 - frac.length)
  return t - offset + (end ? unit - 1 : 0)
}

function filtersOf(args: ReportArgs): Filters {
  const now = (args.now ?? Date.now)()
  let client
  if (args.client !== undefined) {
    client = parseCidr(args.client)
    if (!client) throw new AppError('USAGE', `report: --client ${args.client}: expected an address or CIDR`)
  }
  const since = args.since === undefined ? undefined : parseTime('since', args.since, now)
  const until = args.until === undefined ? undefined : parseTime('until', args.until, now, true)
  if (since !== undefined && until !== undefined && until < since) {
    const at = (ms: number) => new Date(ms).toISOString()
    throw new AppError('USAGE', `report: --until ${args.until} (${at(until)}) is before --since ${args.since} (${at(since)}): nothing could match`)
  }
  return { since, until, client, list: args.list, actions: args.action === undefined ? undefined : actionsOf(args.action) }
}

const ACTIONS = ['block', 'sinkhole', 'alert', 'allow', 'pass', 'refused']

/** "block,alert" → the set; an empty item or an unknown action is a usage error. */
function actionsOf(v: string): Set<string> {
  const list = v.split(',').map(a => a.trim())
  if (!list.every(a => ACTIONS.includes(a))) {
    throw new AppError('USAGE', `report: --action ${v}: expected a comma-separated list of ${ACTIONS.join(', ')}`)
  }
  return new Set(list)
}

/** How much text is gathered before it is written: a piece is a client's (see format.ts). */
export const WRITE_CHUNK = 1 << 16

/**
 * The pieces, written in chunks of about WRITE_CHUNK characters, each one after the last was
 * taken: at most a chunk (and a piece) in memory, whatever the size of the report, and no
 * faster than the reader takes it. Rejects with the first write error.
 */
export async function writeOut(out: ReportArgs['out'], pieces: Iterable<string>): Promise<void> {
  const write = (text: string) => new Promise<void>((resolve, reject) => out.write(text, e => e ? reject(e) : resolve()))
  let chunk: string[] = []
  let size = 0
  for (const piece of pieces) {
    chunk.push(piece)
    size += piece.length
    if (size >= WRITE_CHUNK) {
      await write(chunk.join(''))
      chunk = []
      size = 0
    }
  }
  if (chunk.length > 0) await write(chunk.join(''))
}

/** `tunnelguard report`: read ECS log lines, aggregate per client, print table/json/csv. */
export async function runReport(args: ReportArgs): Promise<void> {
  const f = filtersOf(args)
  const agg = new Aggregator(f)
  let leases
  try {
    leases = args.leases && args.leases.length > 0 ? await loadLeases(args.leases) : undefined
  } catch (e) {
    throw new AppError('USAGE', `report: cannot read leases: ${(e as Error).message}`)
  }
  const errors: string[] = []
  const k = agg.counts
  const onLine = (line: string) => {
    if (line.length === 0) return
    k.lines++
    const r = parseLine(line)
    if (r === 'skip') k.skipped++
    else if (r === 'malformed') k.malformed++
    else {
      const lease = leases && r.hostname === undefined && r.mac === undefined ? leases.at(r.ip, r.time) : undefined
      agg.add(lease ? { ...r, hostname: lease.hostname, mac: lease.mac } : r)
    }
  }
  // an input that cannot be read (to the end) is named and skipped: the report shows the rest
  const failed = (name: string, e: unknown) => errors.push(`${name}: ${(e as Error).message.replace(/, \w+( '.*')?$/, '')}`)
  const read = async (src: Readable) => {
    const tooLong = await readLines(await decompressed(src), onLine)
    // a line too long to read is a line read, and malformed (lines = decisions + filtered + skipped + malformed)
    k.lines += tooLong       // not `+= await`: that would read the count before the lines are read
    k.malformed += tooLong
  }
  for (const f of args.files) {
    let fh: FileHandle | undefined
    try {
      fh = await open(f, 'r')
      await read(fh.createReadStream({ highWaterMark: 1 << 20 }))
    } catch (e) {
      failed(f, e)
    } finally {
      await fh?.close()
    }
  }
  if (args.stdin) {
    try {
      await read(args.stdin as Readable)
    } catch (e) {
      failed('stdin', e)
    }
  }
  const filters: Record<string, string> = {}
  for (const key of ['since', 'until', 'client', 'list', 'action'] as const) if (args[key] !== undefined) filters[key] = args[key]!
  if (leases) filters.leases = args.leases!.join(', ')
  const { since, until } = f
  const window = since === undefined && until === undefined ? undefined : { since, until }
  const clients = agg.sorted()
  const listUnseen = args.list !== undefined && !agg.listMet ? { list: args.list, seen: [...agg.listsSeen] } : undefined
  const data: ReportData = { clients, counts: k, errors, filters, window, ...listUnseen ? { listUnseen } : {} }
  await writeOut(args.out, args.format === 'json' ? formatJson(data) : args.format === 'csv' ? formatCsv(data) : formatTable(data))
  // after the report, so that what was read is shown; the CLI prints these on stderr and exits 1
  if (errors.length === 1) throw new AppError('INPUT_READ', `report: ${errors[0]}`)
  if (errors.length > 1) throw new AppError('INPUT_READ', `report: ${errors.length} inputs could not be read:`, errors)
}
