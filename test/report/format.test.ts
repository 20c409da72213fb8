import t from 'tap'
import { Aggregator } from '../../src/report/aggregate.js'
import type { ReportEvent } from '../../src/report/fields.js'
import { formatCsv, formatJson, formatTable } from '../../src/report/format.js'

const T = Date.UTC(2026, 10, 21, 10, 0, 0)
const e = (o: Partial<ReportEvent>): ReportEvent => ({ time: T, ip: '10.0.0.1', action: 'block', name: 'a.ngrok.io', where: 'dns', list: 'ngrok', entry: 'ngrok.io', ...o })
const data = (agg: Aggregator) => ({ clients: agg.sorted(), counts: agg.counts, errors: [], filters: {} })

t.test('out-of-order times, hostnames, missing entries, ties', async t => {
  const agg = new Aggregator()
  agg.add(e({ time: T + 5000, hostname: 'laptop-7', mac: 'aa:bb:cc:dd:ee:ff', domain: 'laptop-7.corp.example' }))
  agg.add(e({ time: T }))
  agg.add(e({ time: T + 9000 }))
  agg.add(e({ name: 'b.ngrok.io', entry: undefined, action: 'alert' }))
  agg.add(e({ name: 'c.example', list: undefined, entry: undefined, action: 'allow' }))
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
  t.match(formatCsv(data(agg)), '10.0.0.1,laptop-7,laptop-7.corp.example,aa:bb:cc:dd:ee:ff,b.ngrok.io,1,2026-11-21T10:00:00.000Z,2026-11-21T10:00:00.000Z,alert=1,ngrok: ?,dns\n')
  t.match(formatCsv(data(agg)), '10.0.0.1,laptop-7,laptop-7.corp.example,aa:bb:cc:dd:ee:ff,c.example,1,2026-11-21T10:00:00.000Z,2026-11-21T10:00:00.000Z,allow=1,,dns\n')
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

t.test('bounded names per client; long names keep their end; lines wrap at 80', async t => {
  const agg = new Aggregator({}, 2)
  const long = 'a-very-long-label-for-testing.another-long-label.tunnel.ngrok-free.app'
  agg.add(e({ name: long }))
  agg.add(e({ name: 'b.ngrok.io' }))
  agg.add(e({ name: 'c.ngrok.io' }))
  agg.add(e({ name: 'd.ngrok.io' }))
  for (let i = 0; i < 12; i++) agg.add(e({ list: `list-number-${i}`, entry: `entry-${i}.example`, name: long }))
  const text = formatTable(data(agg))
  t.ok(text.split('\n').every(l => l.length <= 80), 'every line fits in 80 columns')
  t.match(text, /\n  …[a-z.-]*tunnel\.ngrok-free\.app\s+13 /)
  t.match(text, '\n  (other names)                       2\n')
  t.match(text, '\n  lists    ngrok: ngrok.io 4, list-number-0: entry-0.example 1,\n           list-number-1:')
  t.equal(JSON.parse(formatJson(data(agg))).clients[0].other_names, 2)
  t.match(formatCsv(data(agg)), '\n10.0.0.1,,,,(other names),2,,,,,\n')
})

t.test('csv quoting and spreadsheet formulas', async t => {
  const agg = new Aggregator()
  agg.add(e({ name: '=cmd|"/c calc"!A0', hostname: 'pc, "main"', list: 'l', entry: '@x' }))
  agg.add(e({ name: 'b.ngrok.io', ip: '10.0.0.2', hostname: '-h' }))
  const csv = formatCsv(data(agg))
  t.match(csv, `\n10.0.0.1,"pc, ""main""",,,"'=cmd|""/c calc""!A0",1,`)
  t.match(csv, ',block=1,l: @x,dns\n')
  t.match(csv, "\n10.0.0.2,'-h,,,b.ngrok.io,")
})

t.test('the table prints no terminal control characters from hostnames or names', async t => {
  const agg = new Aggregator()
  agg.add(e({ hostname: 'evil\u001b]0;pwned\u0007', name: 'x\u001b[2Jy.ngrok.io', mac: 'aa:bb\u009b' }))
  const table = formatTable(data(agg))
  t.notMatch(table, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, 'no ESC, BEL, CSI or other controls')
  t.match(table, 'evil?]0;pwned?')
  t.match(table, 'x?[2Jy.ngrok.io')
  t.match(table, 'aa:bb?')
  t.match(JSON.parse(formatJson(data(agg))).clients[0].hostname, 'evil\u001b]0;pwned\u0007', 'json keeps the data as it was (escaped)')
})
