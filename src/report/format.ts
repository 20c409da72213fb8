import { byText, sortedNames, type ClientStat, type Counts, type NameStat } from './aggregate.js'

export interface ReportData {
  readonly clients: readonly ClientStat[]
  readonly counts: Counts
  /** Files that could not be read to the end, with why. */
  readonly errors: readonly string[]
  readonly filters: Readonly<Record<string, string>>
  /** The time window --since/--until stand for (ms; a bound not given is absent). */
  readonly window?: { readonly since?: number; readonly until?: number }
  /** --list named a list no decision line read names (a typo looks like "nobody tried"): the lists they name instead. */
  readonly listUnseen?: { readonly list: string; readonly seen: readonly string[] }
}

const iso = (ms: number) => new Date(ms).toISOString()
/** "2026-11-21 10:00:01" (UTC). */
const short = (ms: number) => iso(ms).slice(0, 19).replace('T', ' ')
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`
const pairs = (r: Readonly<Record<string, number>>, sep = ' ') =>
  Object.entries(r).sort((a, b) => b[1] - a[1] || byText(a[0], b[0])).map(([k, v]) => `${k}${sep}${v}`)

/** A name's matched names, sorted, and how many decisions had one beyond the limit. */
function matchedOf(n: NameStat): { names: string[]; more: string } {
  return { names: [...n.matched].sort(byText), more: n.otherMatched > 0 ? `(+${n.otherMatched} more)` : '' }
}

function listsOf(c: ClientStat): { list: string; count: number; entries: { entry: string; count: number }[] }[] {
  return [...c.lists].map(([list, m]) => {
    const entries = [...m].map(([entry, count]) => ({ entry, count })).sort((a, b) => b.count - a.count || byText(a.entry, b.entry))
    return { list, count: entries.reduce((s, e) => s + e.count, 0), entries }
  }).sort((a, b) => b.count - a.count || byText(a.list, b.list))
}

/** One client as json gives it. */
function clientJson(c: ClientStat): unknown {
  return {
    ip: c.ip, hostname: c.hostname ?? null, domain: c.domain ?? null, mac: c.mac ?? null,
    first_seen: iso(c.first), last_seen: iso(c.last), total: c.total,
    actions: c.actions, where: c.where, lists: listsOf(c),
    names: sortedNames(c).map(([name, n]) => ({
      name, matched: matchedOf(n).names, other_matched: n.otherMatched, count: n.count, first_seen: iso(n.first), last_seen: iso(n.last),
      actions: n.actions, hits: [...n.hits].sort(), where: [...n.where].sort(),
    })),
    other_names: c.otherNames,
  }
}

/** JSON.stringify(v, null, 2) as it reads `depth` levels down: every line after the first indented (JSON escapes a newline in a string). */
const nested = (v: unknown, depth: number) => JSON.stringify(v, null, 2).replace(/\n/g, '\n' + '  '.repeat(depth))

/**
 * The report as one JSON object, `{"clients": [...], "summary": {...}}`, the text
 * JSON.stringify(…, null, 2) would give, in pieces: one per client. A whole report as one string
 * passes V8's limit on a string's length (about 512 MiB) with some 600,000 clients.
 */
export function* formatJson(r: ReportData): Generator<string> {
  yield r.clients.length === 0 ? '{\n  "clients": [],\n' : '{\n  "clients": [\n'
  for (let i = 0; i < r.clients.length; i++) {
    yield `    ${nested(clientJson(r.clients[i]!), 2)}${i < r.clients.length - 1 ? ',' : ''}\n`
  }
  if (r.clients.length > 0) yield '  ],\n'
  const window = r.window && { since: bound(r.window.since), until: bound(r.window.until) }
  const summary = { ...r.counts, clients: r.clients.length, filters: r.filters, ...window ? { window } : {}, errors: r.errors }
  yield `  "summary": ${nested(summary, 1)}\n}\n`
}

/**
 * What a CSV field is quoted for: a quote, a comma, and every character the table escapes (see
 * escapeCell): control characters (C0, DEL, C1) and the invisible ones that change how a line reads.
 */
const CSV_QUOTE = /[",\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/

/**
 * A CSV field (RFC 4180), quoted when it holds a quote, a comma or a character the table escapes,
 * its value kept as it was; a leading = + - @ (a tab, a CR) is defused for spreadsheets with a `'`
 * before it (a formula would run when the file is opened: CSV injection).
 */
function csv(v: string | number): string {
  let s = String(v)
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`
  return CSV_QUOTE.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

/** One row per client and name: the header, then one piece per client. */
export function* formatCsv(r: ReportData): Generator<string> {
  yield 'client_ip,hostname,domain,mac,name,count,first_seen,last_seen,actions,lists,where,matched\n'
  for (const c of r.clients) {
    const head = [c.ip, c.hostname ?? '', c.domain ?? '', c.mac ?? '']
    const rows: string[] = []
    for (const [name, n] of sortedNames(c)) {
      const m = matchedOf(n)
      rows.push([...head, name, n.count, iso(n.first), iso(n.last), pairs(n.actions, '=').join(' '), [...n.hits].sort().join('; '), [...n.where].sort().join(' '),
        [...m.names, m.more].join(' ').trimEnd()].map(csv).join(','))
    }
    if (c.otherNames > 0) rows.push([...head, '(other names)', c.otherNames, '', '', '', '', '', ''].map(csv).join(','))
    yield rows.join('\n') + '\n'
  }
}

const WIDTH = 80

/** `label` then the items joined by `sep`, wrapped at 80 columns between items, continuation lines indented. */
function wrap(label: string, items: readonly string[], sep = ', '): string[] {
  const indent = ' '.repeat(label.length)
  const out: string[] = []
  let line = label
  items.forEach((item, i) => {
    const piece = i < items.length - 1 ? item + sep.trimEnd() : item
    if (line.length > indent.length && line.length + 1 + piece.length > WIDTH) {
      out.push(line)
      line = indent + piece
    } else line += (line.length > indent.length ? ' ' : '') + piece
  })
  out.push(line)
  return out
}

/** The NAME column's width. */
const NAME_WIDTH = 30

/**
 * A name's row: the name, its count and times. A name longer than its column is never cut (the
 * left label of `1111-c0ffee.ngrok-free.app` is what tells one tunnel from another, and a cut
 * anywhere can make two names look the same): it has the line to itself, whole, and the count
 * and times are on the next line, under their headings.
 */
function nameRow(name: string, numbers: string): string[] {
  return name.length <= NAME_WIDTH ? [`  ${name.padEnd(NAME_WIDTH)} ${numbers}`] : [`  ${name}`, `  ${''.padEnd(NAME_WIDTH)} ${numbers}`]
}

/**
 * Backslash, C0 controls, DEL and C1 controls (a newline forges rows, ESC starts terminal escape
 * sequences), and the invisible format characters that change how a line reads: the Unicode line
 * and paragraph separators, bidirectional marks, embeddings, overrides and isolates (a name with
 * U+202E shows its end reversed: "Trojan Source"), zero-width characters and the BOM.
 */
// (CSV_QUOTE, above, holds the same characters but the backslash: keep the two in step)
const CONTROL = /[\\\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g
const NAMED: Readonly<Record<string, string>> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' }

/**
 * A text cell of the table with its controls escaped (\n, \r, \t, else \xNN or \uNNNN) and its backslashes
 * doubled, so that `a\nb` printed is told from a name holding a backslash and an `n`. Hostnames
 * come from DHCP clients and names from whoever asked (a DNS label may hold any octet).
 */
export function escapeCell(s: string): string {
  return s.replace(CONTROL, c => {
    const n = c.charCodeAt(0)
    return NAMED[c] ?? (n < 0x100 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`)
  })
}

/** One client's block of the table, its blank line after it. */
function tableClient(c: ClientStat): string {
  const out: string[] = []
  // every text cell escaped (pairs' values are counts)
  const who = [c.ip, c.hostname, c.domain, c.mac].filter(Boolean).map(v => escapeCell(v!)).join('  ')
  out.push(...wrap('CLIENT ', [who]))
  out.push(`  seen     ${short(c.first)} .. ${short(c.last)} UTC, ${plural(c.total, 'decision')}`)
  out.push(...wrap('  actions  ', pairs(c.actions).map(escapeCell)))
  const lists = listsOf(c).flatMap(l => l.entries.map((e, i) => `${i === 0 ? escapeCell(l.list) + ': ' : ''}${escapeCell(e.entry)} ${e.count}`))
  if (lists.length > 0) out.push(...wrap('  lists    ', lists))
  out.push(...wrap('  seen in  ', pairs(c.where).map(escapeCell)))
  out.push(`  ${'NAME'.padEnd(NAME_WIDTH)} ${'COUNT'.padStart(6)} ${'FIRST (UTC)'.padEnd(19)} ${'LAST (UTC)'.padEnd(19)}`)
  for (const [name, n] of sortedNames(c)) {
    out.push(...nameRow(escapeCell(name), `${String(n.count).padStart(6)} ${short(n.first)} ${short(n.last)}`))
    // the name decided on can be longer than the column: its own line(s), never cut
    if (n.matched.size > 0) {
      const m = matchedOf(n)
      const names = m.names.map(escapeCell)
      if (m.more) names.push(`${names.pop()} ${m.more}`)
      out.push(...wrap('    → ', names))
    }
  }
  if (c.otherNames > 0) out.push(`  ${'(other names)'.padEnd(NAME_WIDTH)} ${String(c.otherNames).padStart(6)}`)
  out.push('')
  return out.join('\n') + '\n'
}

/** The table: one piece per client, then the footer. */
export function* formatTable(r: ReportData): Generator<string> {
  for (const c of r.clients) yield tableClient(c)
  const out: string[] = []
  if (r.clients.length === 0) out.push('no matching decisions', '')
  if (r.listUnseen) {
    const { list, seen } = r.listUnseen
    out.push(`no decision line read names list ${escapeCell(list)}${seen.length > 0 ? `; the lines name: ${seen.map(escapeCell).sort(byText).join(', ')}` : ''}`)
  }
  if (r.window) out.push(`window: ${tableTime(r.window.since) ?? '(start)'} .. ${tableTime(r.window.until) ?? '(end)'} (UTC, both included)`)
  const k = r.counts
  const foot = [`${plural(r.clients.length, 'client')}, ${plural(k.decisions - k.filtered, 'decision')} shown`]
  if (k.filtered > 0) foot.push(`${k.filtered} filtered out`)
  foot.push(`${plural(k.lines, 'line')} read`)
  if (k.skipped > 0) foot.push(`${plural(k.skipped, 'non-decision line')} skipped`)
  if (k.malformed > 0) foot.push(`${plural(k.malformed, 'malformed line')} skipped`)
  if (r.errors.length > 0) foot.push(`${plural(r.errors.length, 'read error')} (see stderr)`)
  out.push(...wrap('', foot))
  yield out.join('\n') + '\n'
}

/** A bound of the window as ISO 8601 UTC, milliseconds and all; null for a bound not given. */
const bound = (ms: number | undefined): string | null => ms === undefined ? null : iso(ms)
/** A window's bound as the table's rows write a time (and --since takes it back), its milliseconds when it has some. */
const tableTime = (ms: number | undefined): string | null => ms === undefined ? null : ms % 1000 === 0 ? short(ms) : iso(ms).slice(0, 23).replace('T', ' ')
