import t from 'tap'
import { Aggregator } from '../../src/report/aggregate.js'
import type { ReportEvent } from '../../src/report/fields.js'
import * as format from '../../src/report/format.js'
import type { ReportData } from '../../src/report/format.js'

const T = Date.UTC(2026, 10, 21, 10, 0, 0)
const e = (o: Partial<ReportEvent>): ReportEvent => ({ time: T, ip: '10.0.0.1', action: 'block', name: 'a.ngrok.io', where: 'qname', list: 'ngrok', entry: 'ngrok.io', ...o })
const data = (agg: Aggregator) => ({ clients: agg.sorted(), counts: agg.counts, errors: [], filters: {} })
/** Each format's pieces, joined: the whole text. */
const formatJson = (r: ReportData) => [...format.formatJson(r)].join('')
const formatCsv = (r: ReportData) => [...format.formatCsv(r)].join('')
const formatTable = (r: ReportData) => [...format.formatTable(r)].join('')

t.test('out-of-order times, hostnames, missing entries, ties', async t => {
  const agg = new Aggregator()
  const laptop = { hostname: 'laptop-7', mac: 'aa:bb:cc:dd:ee:ff', domain: 'laptop-7.corp.example' }
  agg.add(e({ time: T + 5000, ...laptop }))
  agg.add(e({ time: T, ...laptop }))
  agg.add(e({ time: T + 9000, ...laptop }))
  agg.add(e({ name: 'b.ngrok.io', entry: undefined, action: 'alert', ...laptop }))
  agg.add(e({ name: 'c.example', list: undefined, entry: undefined, action: 'allow', ...laptop }))
  agg.add(e({ ip: '10.0.0.3' }))
  agg.add(e({ ip: '10.0.0.2' }))
  const [c, x, y] = agg.sorted()
  t.same([c!.ip, x!.ip, y!.ip], ['10.0.0.1', '10.0.0.2', '10.0.0.3'])
  t.same([c!.first, c!.last, c!.hostname, c!.mac, c!.domain], [T, T + 9000, 'laptop-7', 'aa:bb:cc:dd:ee:ff', 'laptop-7.corp.example'])
  t.same([c!.names.get('a.ngrok.io')!.first, c!.names.get('a.ngrok.io')!.last], [T, T + 9000])
  const j = JSON.parse(formatJson(data(agg)))
  t.same(j.clients[0].lists, [{ list: 'ngrok', count: 4, entries: [{ entry: 'ngrok.io', count: 3 }, { entry: '?', count: 1 }] }])
  t.same(j.clients[0].actions, { block: 3, alert: 1, allow: 1 })
  t.match(j.clients[0], { hostname: 'laptop-7', domain: 'laptop-7.corp.example', mac: 'aa:bb:cc:dd:ee:ff' })
  t.match(j.clients[1], { hostname: null, domain: null, mac: null })
  t.same(j.clients[0].names.map((n: { name: string }) => n.name), ['a.ngrok.io', 'b.ngrok.io', 'c.example'])
  t.match(formatTable(data(agg)), 'CLIENT 10.0.0.1  laptop-7  laptop-7.corp.example  aa:bb:cc:dd:ee:ff\n')
  t.match(formatTable(data(agg)), '  actions  block 3, alert 1, allow 1\n')
  t.match(formatCsv(data(agg)), '10.0.0.1,laptop-7,laptop-7.corp.example,aa:bb:cc:dd:ee:ff,b.ngrok.io,1,2026-11-21T10:00:00.000Z,2026-11-21T10:00:00.000Z,alert=1,ngrok: ?,qname,\n')
  t.match(formatCsv(data(agg)), '10.0.0.1,laptop-7,laptop-7.corp.example,aa:bb:cc:dd:ee:ff,c.example,1,2026-11-21T10:00:00.000Z,2026-11-21T10:00:00.000Z,allow=1,,qname,\n')
})

t.test('a row per machine: an address handed from one machine to another keeps each one\'s decisions', async t => {
  const agg = new Aggregator()
  const bob = { hostname: 'dev-bob', mac: '52:54:00:00:00:22' }
  const kiosk = { hostname: 'kiosk-lobby', mac: '52:54:00:00:00:99' }
  // files read newest first (report tg.jsonl tg.jsonl.1): the kiosk's line before bob's
  agg.add(e({ ip: '10.0.0.22', time: T + 3000, name: 'foo.trycloudflare.com', list: 'tunnels', entry: 'trycloudflare.com', action: 'alert', ...kiosk }))
  agg.add(e({ ip: '10.0.0.22', time: T + 500, name: 'a.ngrok.io', ...bob, domain: 'bob.lan' }))
  agg.add(e({ ip: '10.0.0.22', time: T, name: 'connect.ngrok-agent.com', entry: 'ngrok-agent.com', action: 'sinkhole', ...bob, domain: 'old.lan' }))
  agg.add(e({ ip: '10.0.0.22', time: T + 1000, name: 'connect.ngrok-agent.com', entry: 'ngrok-agent.com', action: 'sinkhole', mac: bob.mac, hostname: 'bob-renamed' }))
  agg.add(e({ ip: '10.0.0.22', time: T + 4000, name: 'b.ngrok.io', hostname: 'printer' }))
  agg.add(e({ ip: '10.0.0.22', time: T + 5000, name: 'c.ngrok.io', domain: 'ptr.lan' }))
  agg.add(e({ ip: '10.0.0.22', time: T + 6000, name: 'd.ngrok.io' }))
  const rows = agg.sorted()
  t.same(rows.map(c => [c.ip, c.hostname, c.mac, c.domain, c.total, [...c.names.keys()]]), [
    ['10.0.0.22', 'bob-renamed', '52:54:00:00:00:22', 'bob.lan', 3, ['a.ngrok.io', 'connect.ngrok-agent.com']],
    ['10.0.0.22', undefined, undefined, 'ptr.lan', 2, ['c.ngrok.io', 'd.ngrok.io']],
    ['10.0.0.22', 'kiosk-lobby', '52:54:00:00:00:99', undefined, 1, ['foo.trycloudflare.com']],
    ['10.0.0.22', 'printer', undefined, undefined, 1, ['b.ngrok.io']],
  ], 'bob\'s queries stay his (his latest hostname and PTR name by time); a hostname without a MAC and the bare address have rows of their own')
  const table = formatTable(data(agg))
  t.match(table, 'CLIENT 10.0.0.22  bob-renamed  bob.lan  52:54:00:00:00:22\n  seen     2026-11-21 10:00:00 .. 2026-11-21 10:00:01 UTC, 3 decisions\n  actions  sinkhole 2, block 1\n')
  t.match(table, 'CLIENT 10.0.0.22  kiosk-lobby  52:54:00:00:00:99\n  seen     2026-11-21 10:00:03 .. 2026-11-21 10:00:03 UTC, 1 decision\n  actions  alert 1\n')
  t.notMatch(table.split('CLIENT').find(b => b.includes('kiosk'))!, 'ngrok-agent', 'nothing of bob\'s under the kiosk')
  const csv = formatCsv(data(agg))
  t.match(csv, '\n10.0.0.22,bob-renamed,bob.lan,52:54:00:00:00:22,connect.ngrok-agent.com,2,')
  t.match(csv, '\n10.0.0.22,kiosk-lobby,,52:54:00:00:00:99,foo.trycloudflare.com,1,')
  t.match(JSON.parse(formatJson(data(agg))).clients, [{ hostname: 'bob-renamed', total: 3 }, { hostname: null, total: 2 }, { hostname: 'kiosk-lobby', total: 1 }, { hostname: 'printer', total: 1 }])
})

t.test('lists and actions tie-break by name', async t => {
  const agg = new Aggregator()
  agg.add(e({ list: 'zeta', entry: 'z.io', action: 'alert' }))
  agg.add(e({ list: 'alpha', entry: 'b.io' }))
  agg.add(e({ list: 'alpha', entry: 'a.io', name: 'x.a.io' }))
  agg.add(e({ list: 'beta', entry: 'q.io', name: 'q.io', action: 'sinkhole' }))
  const j = JSON.parse(formatJson(data(agg)))
  t.same(j.clients[0].lists.map((l: { list: string }) => l.list), ['alpha', 'beta', 'zeta'])
  t.same(j.clients[0].lists[0].entries.map((x: { entry: string }) => x.entry), ['a.io', 'b.io'])
  t.match(formatTable(data(agg)), '  actions  block 2, alert 1, sinkhole 1\n  lists    alpha: a.io 1, b.io 1, beta: q.io 1, zeta: z.io 1\n')
})

t.test('bounded names per client; a long name whole on its own line; lines wrap at 80', async t => {
  const agg = new Aggregator({}, 2)
  const long = 'a-very-long-label-for-testing.another-long-label.tunnel.ngrok-free.app'
  agg.add(e({ name: long }))
  agg.add(e({ name: 'b.ngrok.io' }))
  agg.add(e({ name: 'c.ngrok.io' }))
  agg.add(e({ name: 'd.ngrok.io' }))
  for (let i = 0; i < 12; i++) agg.add(e({ list: `list-number-${i}`, entry: `entry-${i}.example`, name: long }))
  const text = formatTable(data(agg))
  t.ok(text.split('\n').every(l => l.length <= 80), 'every line fits in 80 columns')
  t.match(text, `\n  ${long}\n                                     13 2026-11-21 10:00:00 2026-11-21 10:00:00\n`)
  t.match(text, '\n  (other names)                       2\n')
  t.match(text, '\n  lists    ngrok: ngrok.io 4, list-number-0: entry-0.example 1,\n           list-number-1:')
  t.equal(JSON.parse(formatJson(data(agg))).clients[0].other_names, 2)
  t.match(formatCsv(data(agg)), '\n10.0.0.1,,,,(other names),2,,,,,,\n')
})

t.test('csv quoting and spreadsheet formulas', async t => {
  const agg = new Aggregator()
  agg.add(e({ name: '=cmd|"/c calc"!A0', hostname: 'pc, "main"', list: 'l', entry: '@x' }))
  agg.add(e({ name: 'b.ngrok.io', ip: '10.0.0.2', hostname: '-h' }))
  const csv = formatCsv(data(agg))
  t.match(csv, `\n10.0.0.1,"pc, ""main""",,,"'=cmd|""/c calc""!A0",1,`)
  t.match(csv, ',block=1,l: @x,qname,\n')
  t.match(csv, "\n10.0.0.2,'-h,,,b.ngrok.io,")
})

t.test('the table prints no terminal control characters from hostnames or names', async t => {
  const agg = new Aggregator()
  agg.add(e({ hostname: 'evil\u001b]0;pwned\u0007', name: 'x\u001b[2Jy.ngrok.io', mac: 'aa:bb\u009b' }))
  const table = formatTable(data(agg))
  t.notMatch(table, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, 'no ESC, BEL, CSI or other controls')
  t.match(table, 'evil\\x1b]0;pwned\\x07')
  t.match(table, 'x\\x1b[2Jy.ngrok.io')
  t.match(table, 'aa:bb\\x9b')
  t.match(JSON.parse(formatJson(data(agg))).clients[0].hostname, 'evil\u001b]0;pwned\u0007', 'json keeps the data as it was (escaped)')
})

t.test('the table shows the invisible characters that change how a line reads: separators, bidi controls, zero-width', async t => {
  const agg = new Aggregator()
  // shown as "x.ngrok-free.app" reversed at its end: U+202E (right-to-left override) before "ppa.eerf-korgn"
  agg.add(e({ name: 'abc\u202eppa.eerf-korgn.x', hostname: 'pc\u2028CLIENT 10.6.6.6', mac: '\u200baa\u2066\u2069\u061c\ufeff\u200f' }))
  const table = formatTable(data(agg))
  t.notMatch(table, /[\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/, 'none reaches the terminal')
  t.match(table, 'abc\\u202eppa.eerf-korgn.x')
  t.match(table, 'CLIENT 10.0.0.1  pc\\u2028CLIENT 10.6.6.6  \\u200baa\\u2066\\u2069\\u061c\\ufeff\\u200f\n')
  t.match(formatTable(data((() => { const a = new Aggregator(); a.add(e({ name: 'caf\u00e9.\u4f8b\u3048.jp' })); return a })())), 'caf\u00e9.\u4f8b\u3048.jp', 'other characters past ASCII stay as they are')
})

t.test('a name with a newline, a tab or a backslash cannot forge rows: every text cell is escaped', async t => {
  const agg = new Aggregator()
  // a row (and a client) of its own if the newline were printed as it is
  const forged = 'a.example\nCLIENT 10.6.6.6'
  agg.add(e({ name: forged, matched: 'b\\n\rc.ngrok.io', list: 'l\tist', entry: 'ngrok\n.io', where: 'sni\nx', action: 'block\u0000', domain: 'pc\\lan', mac: '\u007f' }))
  const table = formatTable(data(agg))
  t.same(table.split('\n').filter(l => l.startsWith('CLIENT')), ['CLIENT 10.0.0.1  pc\\\\lan  \\x7f'], 'one client, and no forged one')
  t.match(table, /\n {2}a\.example\\nCLIENT 10\.6\.6\.6 +1 2026-11-21 10:00:00 2026-11-21 10:00:00\n/, 'the name on its own row')
  t.match(table, '\n    → b\\\\n\\rc.ngrok.io\n', 'a backslash is doubled, so it is told from an escape')
  t.match(table, '  lists    l\\tist: ngrok\\n.io 1\n')
  t.match(table, '  actions  block\\x00 1\n')
  t.match(table, '  seen in  sni\\nx 1\n')
  t.match(table, 'CLIENT 10.0.0.1  pc\\\\lan  \\x7f\n')
  t.notMatch(table, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/)
  const j = JSON.parse(formatJson(data(agg)))
  t.equal(j.clients[0].names[0].name, forged, 'json keeps the name as it was')
  t.same(j.clients[0].names[0].matched, ['b\\n\rc.ngrok.io'])
})

t.test('the names decided on (or behind an address) beside the name asked', async t => {
  const agg = new Aggregator({}, 1000, 3)
  agg.add(e({ name: 'evil.example.test', matched: 'x.ngrok-free.app', where: 'cname', entry: 'ngrok-free.app' }))
  agg.add(e({ name: 'evil.example.test', matched: 'x.ngrok-free.app', where: 'cname', entry: 'ngrok-free.app' }))
  agg.add(e({ name: '127.0.0.1', matched: 'connect.ngrok-agent.com', where: 'sni', entry: 'ngrok-agent.com', time: T + 1000 }))
  agg.add(e({ name: '127.0.0.1', sni: 'example.net', action: 'pass', list: undefined, entry: undefined, where: 'connect', time: T + 1000 }))
  agg.add(e({ name: 'a.ngrok.io' }))
  const long = 'a-very-long-label-for-testing.another-long-label.tunnel.ngrok-free.app'
  for (const m of ['d.ngrok.io', 'c.ngrok.io', 'b.ngrok.io', 'c.ngrok.io', long, 'e.ngrok.io']) agg.add(e({ name: '192.0.2.9', matched: m, where: 'sni', time: T + 2000 }))
  agg.add(e({ name: '192.0.2.9', sni: 'f.example', where: 'sni', time: T + 2000 }))
  const [c] = agg.sorted()
  t.same([...c!.names.get('192.0.2.9')!.matched], ['d.ngrok.io', 'c.ngrok.io', 'b.ngrok.io'], 'at most 3 kept (the first seen)')
  t.equal(c!.names.get('192.0.2.9')!.otherMatched, 3, 'the decisions beyond them counted')

  const j = JSON.parse(formatJson(data(agg)))
  const by = Object.fromEntries(j.clients[0].names.map((n: { name: string }) => [n.name, n]))
  t.match(by['evil.example.test'], { matched: ['x.ngrok-free.app'], other_matched: 0, count: 2, where: ['cname'] })
  t.match(by['127.0.0.1'], { matched: ['connect.ngrok-agent.com', 'example.net'], other_matched: 0 })
  t.match(by['a.ngrok.io'], { matched: [], other_matched: 0 })
  t.match(by['192.0.2.9'], { matched: ['b.ngrok.io', 'c.ngrok.io', 'd.ngrok.io'], other_matched: 3 })

  const csv = formatCsv(data(agg)).split('\n')
  t.equal(csv[0], 'client_ip,hostname,domain,mac,name,count,first_seen,last_seen,actions,lists,where,matched')
  t.match(csv, [String, /^10\.0\.0\.1,,,,192\.0\.2\.9,7,.*,sni,b\.ngrok\.io c\.ngrok\.io d\.ngrok\.io \(\+3 more\)$/])
  t.ok(csv.includes('10.0.0.1,,,,evil.example.test,2,2026-11-21T10:00:00.000Z,2026-11-21T10:00:00.000Z,block=2,ngrok: ngrok-free.app,cname,x.ngrok-free.app'))
  t.ok(csv.some(r => r.startsWith('10.0.0.1,,,,127.0.0.1,2,') && r.endsWith(',connect sni,connect.ngrok-agent.com example.net')))
  t.ok(csv.some(r => r.startsWith('10.0.0.1,,,,a.ngrok.io,1,') && r.endsWith(',qname,')), 'an empty matched column')

  const table = formatTable(data(agg))
  t.ok(table.split('\n').every(l => l.length <= 80), 'every line fits in 80 columns')
  t.match(table, /\n  evil\.example\.test +2 2026-11-21 10:00:00 2026-11-21 10:00:00\n    → x\.ngrok-free\.app\n/)
  t.match(table, /\n  127\.0\.0\.1 +2 2026-11-21 10:00:01 2026-11-21 10:00:01\n    → connect\.ngrok-agent\.com, example\.net\n/)
  t.match(table, /\n  a\.ngrok\.io +1 2026-11-21 10:00:00 2026-11-21 10:00:00\n(?! {4})/, 'no line for a name without one')
  t.match(table, /\n  192\.0\.2\.9 +7 .*\n    → b\.ngrok\.io, c\.ngrok\.io, d\.ngrok\.io \(\+3 more\)\n/)

  const wide = new Aggregator()
  for (let i = 0; i < 4; i++) wide.add(e({ name: '192.0.2.10', matched: `${i}.${long}` }))
  const lines = formatTable(data(wide)).split('\n')
  t.ok(lines.every(l => l.length <= 80), 'long matched names wrap')
  t.same(lines.filter(l => l.startsWith('    ')).map(l => l.trim().replace(/,$/, '')), ['→ 0.' + long, '1.' + long, '2.' + long, '3.' + long], 'one per line, none cut')
})

t.test('csv: a cell with a control or invisible character is quoted, its value kept; a formula start defused', async t => {
  const agg = new Aggregator()
  agg.add(e({ name: 'evil\x1b[31mhost\u202e.ngrok.io', hostname: 'pc\u200b7', mac: '02:00:00:00:00:07' }))
  agg.add(e({ name: '=1+2.ngrok.io', time: T + 1 }))
  agg.add(e({ name: 'tab\there.ngrok.io', time: T + 2 }))
  const rows = formatCsv(data(agg)).split('\n')
  t.ok(rows.some(r => r.startsWith('10.0.0.1,"pc\u200b7",,02:00:00:00:00:07,"evil\x1b[31mhost\u202e.ngrok.io",1,')), 'ESC, U+202E and a zero-width space: quoted, as they were')
  t.ok(rows.some(r => r.includes(",'=1+2.ngrok.io,1,")), 'a leading = gets a \' before it')
  t.ok(rows.some(r => r.includes(',"tab\there.ngrok.io",1,')), 'a tab: quoted')
  t.notOk(rows.slice(1).some(r => /(^|,)[^",]*[\x00-\x1f\u202e\u200b]/.test(r)), 'no bare cell holds one')
})

t.test('each format comes in pieces, one per client, none growing with the number of clients; json is JSON.stringify\'s text', async t => {
  const agg = new Aggregator()
  for (let i = 0; i < 300; i++) {
    const who = { ip: `10.0.${i >> 8}.${i & 255}`, hostname: i % 2 === 0 ? `pc-${i}` : undefined }
    agg.add(e({ ...who, name: `n${i}.ngrok.io`, matched: i % 3 === 0 ? 'x.ngrok.io' : undefined }))
    agg.add(e({ ...who, name: 'line\nbreak\u2028.ngrok.io', time: T + i }))
  }
  const d = { ...data(agg), window: { since: T } }
  for (const [f, extra] of [[format.formatJson, 3], [format.formatCsv, 1], [format.formatTable, 1]] as const) {
    const pieces = [...f(d)]
    t.equal(pieces.length, 300 + extra, `${f.name}: a piece per client, and ${extra} more`)
    t.ok(Math.max(...pieces.map(p => p.length)) < 2000, `${f.name}: each piece small (a client's)`)
  }
  const text = formatJson(d)
  t.equal(text, JSON.stringify(JSON.parse(text), null, 2) + '\n', 'the text JSON.stringify(…, null, 2) gives, to the byte')
  t.equal(JSON.parse(text).clients.length, 300)
  t.same(JSON.parse(text).summary.window, { since: '2026-11-21T10:00:00.000Z', until: null })
  const none = formatJson(data(new Aggregator()))
  t.equal(none, JSON.stringify(JSON.parse(none), null, 2) + '\n', 'no client: the same')
  t.same(JSON.parse(none).clients, [])
  t.same([...format.formatCsv(data(new Aggregator()))], ['client_ip,hostname,domain,mac,name,count,first_seen,last_seen,actions,lists,where,matched\n'])
})

t.test('the table never makes two names look the same: a name longer than its column is shown whole', async t => {
  const agg = new Aggregator()
  // the left label tells the tunnels apart; a cut from the left, or in the middle, would hide it
  const names = ['1111-c0ffee-0000-4a5b-9c8d.ngrok-free.app', '2222-c0ffee-0000-4a5b-9c8d.ngrok-free.app', 'a.x1-0000-0000-0000-0000.ngrok-free.app', 'a.x2-0000-0000-0000-0000.ngrok-free.app']
  names.forEach((name, i) => agg.add(e({ name, time: T + i * 1000, matched: i === 0 ? 'cname.ngrok-free.app' : undefined })))
  agg.add(e({ name: 'x'.repeat(30) }))
  agg.add(e({ name: 'tab\there' + 'y'.repeat(23) }))
  const lines = formatTable(data(agg)).split('\n')
  for (const name of names) t.ok(lines.includes(`  ${name}`), `${name}: whole, on its own line`)
  const at = lines.indexOf(`  ${names[0]}`)
  t.same(lines.slice(at, at + 3), [`  ${names[0]}`, `  ${' '.repeat(30)}      1 2026-11-21 10:00:00 2026-11-21 10:00:00`, '    → cname.ngrok-free.app'],
    'its count and times on the next line, under their headings; then the name decided on')
  t.ok(lines.includes(`  ${'x'.repeat(30)}      1 2026-11-21 10:00:00 2026-11-21 10:00:00`), 'a name that fits its column: one line, as before')
  t.ok(lines.includes(`  tab\\there${'y'.repeat(23)}`), 'the escaped name is what is measured (tab\\t: two columns)')
  t.ok(lines.every(l => l.length <= 80), 'names up to 78 characters keep every line within 80 columns')
})

t.test('a --list no decision names: the lists they name instead (the first 20), escaped; none when no line names a list', async t => {
  const agg = new Aggregator({ list: 'nope' })
  for (let i = 0; i < 25; i++) agg.add(e({ list: `l${String(i).padStart(2, '0')}` }))
  agg.add(e({ list: undefined, entry: undefined, action: 'pass' }))
  t.equal(agg.listMet, false)
  t.equal(agg.listsSeen.size, 20, 'at most 20 kept')
  const text = [...format.formatTable({ ...data(agg), listUnseen: { list: 'no\u001bpe', seen: [...agg.listsSeen] } })].join('')
  t.match(text, 'no decision line read names list no\\x1bpe; the lines name: l00, l01, ')
  t.match(text, ', l19\n')
  t.notMatch(text, 'l20')
  const none = [...format.formatTable({ ...data(new Aggregator({ list: 'x' })), listUnseen: { list: 'x', seen: [] } })].join('')
  t.match(none, '\nno decision line read names list x\n')
  const met = new Aggregator({ list: 'ngrok', since: T + 1 })
  met.add(e({}))
  t.equal(met.listMet, true, 'named, though the time filter leaves the line out')
})
