import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough, Readable, Writable } from 'node:stream'
import { gzipSync } from 'node:zlib'
import { createClientTable } from '../../src/observe/client-table.js'
import { createEvidence } from '../../src/observe/evidence.js'
import { createLogger } from '../../src/observe/logger.js'
import { createMetrics } from '../../src/observe/metrics.js'
import { decisionDestination, parseAuthority } from '../../src/proxy/address.js'
import { parseTime, runReport, WRITE_CHUNK, writeOut, type ReportArgs } from '../../src/report/run.js'
import { MAX_LINE } from '../../src/report/read-lines.js'
import { makeSnapshot } from '../fixtures/snapshot.js'

const T0 = Date.UTC(2026, 10, 21, 10, 0, 0)

/** The log of a run where three clients asked for ngrok names, written by the real logger and evidence. */
function runLog(): string {
  let now = T0
  let text = ''
  const destination = new Writable({ write(c, _e, cb) { text += c; cb() } })
  const logger = createLogger({ level: 'info', destination, clock: () => now })
  const snap = makeSnapshot()
  const evidence = createEvidence({ logger, getSnapshot: () => snap, metrics: createMetrics(), clients: createClientTable() })
  const dns = (ip: string, name: string) => evidence.decision({
    message: 'dns.query', decision: snap.policy.decide(ip, name, 'qname'), client: { ip, port: 40000 }, transport: 'udp', durationNs: 1000,
    dns: { name, type: 'A', rcode: 'NOERROR' },
  })
  evidence.info('started', { dns: ['127.0.0.1:1053'] })
  const asks: [string, string][] = [
    ['10.0.0.5', 'tunnel.us.ngrok.com.ngrok.io'], ['10.0.0.5', 'connect.ngrok-agent.com'], ['10.0.0.5', 'connect.ngrok-agent.com'],
    ['10.0.0.6', 'abc123.ngrok-free.app'], ['10.0.0.7', 'connect.ngrok-agent.com'], ['10.0.0.5', 'example.com'],
    ['10.0.0.7', 'x.trycloudflare.com'], ['10.0.0.6', 'abc123.ngrok-free.app'],
  ]
  for (const [ip, name] of asks) { dns(ip, name); now += 60_000 }
  evidence.decision({
    message: 'proxy.connect', decision: snap.policy.decide('10.0.0.7', 'tunnel.ngrok.io', 'sni'), client: { ip: '10.0.0.7', port: 50000 },
    transport: 'tcp', durationNs: 1, destination: { domain: 'example.org', port: 443 }, sni: 'tunnel.ngrok.io',
  })
  evidence.warn('upstream down', { upstream: 'udp://127.0.0.1:5399' })
  return text + 'this is not json\n'
}

function capture(): { out: Writable; text: () => string } {
  let s = ''
  return { out: new Writable({ write(c, _e, cb) { s += c; cb() } }), text: () => s }
}

async function report(args: Partial<ReportArgs>): Promise<string> {
  const c = capture()
  await runReport({ files: [], format: 'table', now: () => T0 + 3_600_000, ...args, out: c.out })
  return c.text()
}

const dir = t.testdir({})
const log = runLog()
const plain = join(dir, 'tunnelguard.log')
const gz = join(dir, 'tunnelguard.log.1.gz')
writeFileSync(plain, log)
writeFileSync(gz, gzipSync(log))

t.test('json names each client with its names, counts and times', async t => {
  const j = JSON.parse(await report({ files: [plain], format: 'json' }))
  t.same(j.clients.map((c: { ip: string; total: number }) => [c.ip, c.total]), [['10.0.0.5', 3], ['10.0.0.7', 3], ['10.0.0.6', 2]],
    'example.com passed and is not logged; most decisions first, ties by address')
  t.same(j.clients[0], {
    ip: '10.0.0.5', hostname: null, domain: null, mac: null,
    first_seen: '2026-11-21T10:00:00.000Z', last_seen: '2026-11-21T10:02:00.000Z', total: 3,
    actions: { sinkhole: 3 }, where: { qname: 3 },
    lists: [{ list: 'ngrok', count: 3, entries: [{ entry: 'ngrok-agent.com', count: 2 }, { entry: 'ngrok.io', count: 1 }] }],
    names: [
      { name: 'connect.ngrok-agent.com', matched: [], other_matched: 0, count: 2, first_seen: '2026-11-21T10:01:00.000Z', last_seen: '2026-11-21T10:02:00.000Z', actions: { sinkhole: 2 }, hits: ['ngrok: ngrok-agent.com'], where: ['qname'] },
      { name: 'tunnel.us.ngrok.com.ngrok.io', matched: [], other_matched: 0, count: 1, first_seen: '2026-11-21T10:00:00.000Z', last_seen: '2026-11-21T10:00:00.000Z', actions: { sinkhole: 1 }, hits: ['ngrok: ngrok.io'], where: ['qname'] },
    ],
    other_names: 0,
  })
  t.match(j.clients[1], { ip: '10.0.0.7', actions: { sinkhole: 2, alert: 1 }, where: { qname: 2, sni: 1 } })
  t.match(j.clients[1].names, [{ name: 'connect.ngrok-agent.com' }, { name: 'example.org', matched: ['tunnel.ngrok.io'], hits: ['ngrok: ngrok.io'], where: ['sni'] }, { name: 'x.trycloudflare.com' }])
  t.same(j.summary, { lines: 11, decisions: 8, filtered: 0, skipped: 2, malformed: 1, clients: 3, filters: {}, errors: [] })
})

t.test('a line cut by a writer killed mid-line, with the next line after it, is malformed, not a decision', async t => {
  const [a, b] = log.split('\n').filter(l => l.includes('"dns.query"') && (l.includes('"10.0.0.6"') || l.includes('"10.0.0.7"'))).filter((l, i, all) => i === 0 || !l.includes(JSON.stringify(JSON.parse(all[0]!).client.ip)))
  t.ok(a && b, 'two clients\' lines')
  t.not(JSON.parse(a!)['@timestamp'], JSON.parse(b!)['@timestamp'])
  const broken = a!.slice(0, 120) + b! + '\n'
  const j = JSON.parse(await report({ stdin: Readable.from([broken]), format: 'json' }))
  t.same(j.summary, { lines: 1, decisions: 0, filtered: 0, skipped: 0, malformed: 1, clients: 0, filters: {}, errors: [] })
  t.same(j.clients, [], 'the second client is not given the first line\'s time')
  // every cut of the first line, and an operational line's: the fast path never reads one line's fields from another
  const { parseLine, parseJson } = await import('../../src/report/fields.js')
  const ops = log.split('\n').find(l => l.includes('"started"'))!
  for (const first of [a!, ops]) {
    for (let cut = 1; cut < first.length; cut++) {
      const line = first.slice(0, cut) + b!
      const r = parseLine(line)
      if (r !== parseJson(line) || r !== 'malformed') { t.fail(`cut at ${cut}: ${JSON.stringify(r)}`); break }
    }
  }
  // another writer's lines, starting with @timestamp
  const other = '{"@timestamp":"2026-11-21T10:00:00Z","ecs.version":"8.11.0","message":"dns.query","event":{"action":"block"},"client":{"ip":"1.2.3.4","port":1},"dns":{"question":{"name":"a.io"}}}'
  t.match(parseLine(other), { ip: '1.2.3.4' })
  t.equal(parseLine(other.slice(0, 50) + other.replace('1.2.3.4', '5.6.7.8').replace('10:00:00', '11:00:00')), 'malformed')
})

t.test('a line too long to read (past 1 MiB) is a line read and malformed: the counts add up', async t => {
  const decisions = log.split('\n').filter(l => l.includes('"dns.query"')).slice(0, 2)
  const huge = `{"x":"${'a'.repeat(MAX_LINE + 10)}"}`
  const j = JSON.parse(await report({ stdin: Readable.from([`${decisions[0]}\n${huge}\n${decisions[1]}\n`]), format: 'json' }))
  t.same(j.summary, { lines: 3, decisions: 2, filtered: 0, skipped: 0, malformed: 1, clients: j.summary.clients, filters: {}, errors: [] })
  const s = j.summary
  t.equal(s.lines, s.decisions + s.filtered + s.skipped + s.malformed)
})

t.test('table at 80 columns', async t => {
  const text = await report({ files: [plain] })
  const lines = text.split('\n')
  t.ok(lines.every(l => l.length <= 80), 'no line wider than 80')
  t.match(text, 'CLIENT 10.0.0.5\n  seen     2026-11-21 10:00:00 .. 2026-11-21 10:02:00 UTC, 3 decisions\n  actions  sinkhole 3\n'
    + '  lists    ngrok: ngrok-agent.com 2, ngrok.io 1\n  seen in  qname 3\n')
  t.match(text, /  connect\.ngrok-agent\.com\s+2 2026-11-21 10:01:00 2026-11-21 10:02:00\n/)
  t.match(text, /  tunnel\.us\.ngrok\.com\.ngrok\.io\s+1 2026-11-21 10:00:00 2026-11-21 10:00:00\n/)
  t.match(text, 'CLIENT 10.0.0.6')
  t.match(text, 'CLIENT 10.0.0.7')
  t.match(text, /\n3 clients, 8 decisions shown, 11 lines read, 2 non-decision lines skipped,\n1 malformed line skipped\n$/)
})

t.test('csv: one row per client and name', async t => {
  const rows = (await report({ files: [plain], format: 'csv' })).trimEnd().split('\n')
  t.equal(rows[0], 'client_ip,hostname,domain,mac,name,count,first_seen,last_seen,actions,lists,where,matched')
  t.equal(rows[1], '10.0.0.5,,,,connect.ngrok-agent.com,2,2026-11-21T10:01:00.000Z,2026-11-21T10:02:00.000Z,sinkhole=2,ngrok: ngrok-agent.com,qname,')
  t.equal(rows.length, 1 + 2 + 3 + 1)
  t.match(rows, [String, String, String, /^10\.0\.0\.7,/, /^10\.0\.0\.7,,,,example\.org,1,.*,sni,tunnel\.ngrok\.io$/, /^10\.0\.0\.7,,,,x\.trycloudflare\.com,1,.*,alert=1,tunnels: trycloudflare\.com,qname,$/, /^10\.0\.0\.6,,,,abc123\.ngrok-free\.app,2,/])
})

t.test('gzip and stdin read like plain files, and add up', async t => {
  const stdin = Readable.from([gzipSync(log)])
  const j = JSON.parse(await report({ files: [plain, gz], stdin, format: 'json' }))
  t.equal(j.summary.decisions, 24)
  t.equal(j.clients[0].total, 9)
  const piped = new PassThrough()
  const p = report({ files: [], stdin: piped, format: 'csv' })
  for (const l of log.split('\n')) piped.write(l + '\n')
  piped.end()
  t.match(await p, /^client_ip,.*\n10\.0\.0\.5,,,,connect\.ngrok-agent\.com,2,/)
})

t.test('filters', async t => {
  const q = async (a: Partial<ReportArgs>) => JSON.parse(await report({ files: [plain], format: 'json', ...a }))
  t.same((await q({ client: '10.0.0.6' })).clients.map((c: { ip: string }) => c.ip), ['10.0.0.6'])
  t.same((await q({ client: '10.0.0.4/31' })).clients.map((c: { ip: string }) => c.ip), ['10.0.0.5'])
  t.same((await q({ client: '::1' })).clients, [])
  const tunnels = await q({ list: 'tunnels' })
  t.same(tunnels.clients.map((c: { ip: string; total: number }) => [c.ip, c.total]), [['10.0.0.7', 1]])
  t.equal(tunnels.summary.filtered, 7)
  t.same(tunnels.summary.filters, { list: 'tunnels' })
  // a list no line names (a typo) is said so under the table, with the lists the lines do name, not a silent "nobody"
  const typo = await report({ files: [plain], list: 'tunels' })
  t.match(typo, /^no matching decisions\n\nno decision line read names list tunels; the lines name: ngrok, tunnels\n/)
  t.notMatch(await report({ files: [plain], list: 'tunnels' }), /no decision line read names/, 'a list the lines name: no note')
  t.notMatch(await report({ files: [plain], list: 'tunnels', since: '1m' }), /no decision line read names/, 'nor when the other filters leave none of its lines')
  t.same(Object.keys((await q({ list: 'tunels' })).summary).sort(), ['clients', 'decisions', 'errors', 'filtered', 'filters', 'lines', 'malformed', 'skipped'], 'json: the summary as before')
  // now = T0 + 1h: since 56m = from 10:04
  t.same((await q({ since: '56m' })).clients.map((c: { ip: string; total: number }) => [c.ip, c.total]), [['10.0.0.7', 3], ['10.0.0.6', 1]])
  t.same((await q({ since: '2026-11-21T10:03:00Z', until: '2026-11-21T10:04:00Z' })).clients.map((c: { ip: string }) => c.ip), ['10.0.0.6', '10.0.0.7'])
  t.same((await q({ until: '59m' })).clients.map((c: { ip: string }) => c.ip), ['10.0.0.5'])
  const alerts = await q({ action: 'alert' })
  t.same(alerts.clients.map((c: { ip: string; total: number }) => [c.ip, c.total]), [['10.0.0.7', 1]])
  t.same(alerts.summary.filters, { action: 'alert' })
  t.equal(alerts.summary.filtered, 7)
  const two = await q({ action: ' sinkhole ,alert', client: '10.0.0.7' })
  t.same(two.clients.map((c: { ip: string; actions: object }) => [c.ip, c.actions]), [['10.0.0.7', { sinkhole: 2, alert: 1 }]])
  t.same((await q({ action: 'block,pass' })).clients, [], 'none of these in the log')
  for (const bad of ['', 'deny', 'block,', 'block,,alert', 'Block']) {
    await t.rejects(report({ files: [plain], action: bad }),
      { code: 'USAGE', message: `report: --action ${bad}: expected a comma-separated list of block, sinkhole, alert, allow, pass` }, JSON.stringify(bad))
  }
  const none = await report({ files: [plain], client: '192.0.2.1' })
  t.match(none, 'no matching decisions\n\n0 clients, 0 decisions shown, 8 filtered out, 11 lines read')
})

t.test('--since and --until: UTC when no zone is given, the end of what --until names, dates that exist', async t => {
  const now = Date.parse('2026-11-21T11:00:00Z')
  const at = (v: string, end = false) => new Date(parseTime('x', v, now, end)).toISOString()
  t.equal(at('2026-11-21 10:05:03'), '2026-11-21T10:05:03.000Z', 'as the table prints it: UTC')
  t.equal(at('2026-11-21T10:05:03', true), '2026-11-21T10:05:03.999Z', 'until a second: all of it (the table shows no fraction)')
  t.equal(at('2026-11-21T10:05', true), '2026-11-21T10:05:59.999Z')
  t.equal(at('2026-11-21', true), '2026-11-21T23:59:59.999Z', 'until a day: all of it')
  t.equal(at('2026-11-21'), '2026-11-21T00:00:00.000Z')
  t.equal(at('2026-11-21T10:05:03.4', true), '2026-11-21T10:05:03.499Z', 'until a tenth of a second: all of it')
  t.equal(at('2026-11-21T10:05:03.45', true), '2026-11-21T10:05:03.459Z')
  t.equal(at('2026-11-21T10:05:03.456', true), '2026-11-21T10:05:03.456Z', 'to the millisecond: that one')
  t.equal(at('2026-11-21T10:05:03.4'), '2026-11-21T10:05:03.400Z')
  t.equal(at('2026-11-21T10:05:03.123456789Z'), '2026-11-21T10:05:03.123Z')
  t.equal(at('2026-11-21T12:05:03+02:00'), '2026-11-21T10:05:03.000Z')
  t.equal(at('2026-11-21t05:05:03-0500'), '2026-11-21T10:05:03.000Z')
  t.equal(at('2026-11-21T10:05:03z'), '2026-11-21T10:05:03.000Z')
  t.equal(at('30m'), '2026-11-21T10:30:00.000Z')
  // a time of day alone (README: `--until 20:05:03`): today's, UTC
  t.equal(at('20:05:03', true), '2026-11-21T20:05:03.999Z', 'until a time of day: that whole second, today')
  t.equal(at('09:00'), '2026-11-21T09:00:00.000Z', 'since 09:00: today, UTC')
  t.equal(at('09:00', true), '2026-11-21T09:00:59.999Z')
  t.equal(at('10:05:03.4', true), '2026-11-21T10:05:03.499Z')
  t.equal(new Date(parseTime('x', '00:00', Date.parse('2026-11-21T23:59:59.999Z'))).toISOString(), '2026-11-21T00:00:00.000Z', 'the UTC date of now')
  for (const bad of ['9:00', '10:05Z', '10']) {
    t.throws(() => parseTime('until', bad, now, true), { code: 'USAGE', message: /^report: --until .*: expected a duration/ }, bad)
  }
  for (const bad of ['2026-11-21Z', '21/11/2026', '2026-11-21T10', 'yesterday', '2026-2-3']) {
    t.throws(() => parseTime('since', bad, now), { code: 'USAGE', message: `report: --since ${bad}: expected a duration (30m, 24h, 7d) or a time (2026-11-21, 2026-11-21T10:00:00Z, 10:00 today; UTC when no zone is given)` }, bad)
  }
  // written as a time, but no such time: said so
  const TIME_OF_DAY = 'no such time of day: hours go from 00 to 23, minutes and seconds from 00 to 59'
  for (const [bad, why] of [
    ['2026-02-30', 'no such date: 2026-02 has days 01 to 28'], ['2026-02-29', 'no such date: 2026-02 has days 01 to 28'],
    ['2100-02-29', 'no such date: 2100-02 has days 01 to 28'], ['2026-04-31T10:00Z', 'no such date: 2026-04 has days 01 to 30'],
    ['2026-11-00', 'no such date: 2026-11 has days 01 to 30'], ['2026-01-32', 'no such date: 2026-01 has days 01 to 31'],
    ['2026-13-01', 'no such date: months go from 01 to 12'], ['2026-00-10', 'no such date: months go from 01 to 12'],
    ['2026-11-21T24:00', TIME_OF_DAY], ['2026-11-21T10:60', TIME_OF_DAY], ['2026-11-21T10:05:60', TIME_OF_DAY],
    ['24:00', TIME_OF_DAY], ['10:60', TIME_OF_DAY], ['10:05:60', TIME_OF_DAY],
    ['2026-11-21T10:05+25:00', 'no such zone offset: +25:00 (hours 00 to 23, minutes 00 to 59)'],
    ['2026-11-21T10:05+02:61', 'no such zone offset: +02:61 (hours 00 to 23, minutes 00 to 59)'],
  ]) {
    t.throws(() => parseTime('until', bad!, now, true), { code: 'USAGE', message: `report: --until ${bad}: ${why}` }, bad)
  }
  t.equal(at('2028-02-29', true), '2028-02-29T23:59:59.999Z', 'a leap day')
  t.equal(at('2000-02-29'), '2000-02-29T00:00:00.000Z', 'a leap day of a year divisible by 400')
  t.equal(at('2026-12-31T23:59:59'), '2026-12-31T23:59:59.000Z')
  t.equal(at('0050-06-01'), '0050-06-01T00:00:00.000Z', 'a year below 100 is that year, not 1950')
  // the window is shown: in the table's last lines and in JSON
  const table = await report({ files: [plain], since: '2026-11-21 10:03', until: '2026-11-21T10:04' })
  // (the table writes its rows' times: what --since and --until take back; milliseconds when there are any)
  t.match(table, '\nwindow: 2026-11-21 10:03:00 .. 2026-11-21 10:04:59.999 (UTC, both included)\n')
  for (const bound of ['2026-11-21 10:03:00', '2026-11-21 10:04:59.999']) t.equal(at(bound), `${bound.replace(' ', 'T')}${bound.includes('.') ? '' : '.000'}Z`, `${bound}: read back as shown`)
  t.match(await report({ files: [plain], since: '56m' }), '\nwindow: 2026-11-21 10:04:00 .. (end) (UTC, both included)\n')
  t.same(JSON.parse(await report({ files: [plain], until: '59m', format: 'json' })).summary.window, { since: null, until: '2026-11-21T10:01:00.000Z' })
  t.match(await report({ files: [plain], until: '59m' }), '\nwindow: (start) .. 2026-11-21 10:01:00 (UTC, both included)\n')
  t.notOk('window' in JSON.parse(await report({ files: [plain], format: 'json' })).summary, 'no window without --since or --until')
  t.notMatch(await report({ files: [plain] }), /window:/)
  t.match(await report({ files: [plain], since: '10:03', until: '10:04' }), table.slice(table.indexOf('\nwindow:')), 'times of day: today, the same window and decisions')
})

t.test('errors', async t => {
  await t.rejects(report({ since: 'yesterday' }), { code: 'USAGE', message: /--since yesterday/ })
  await t.rejects(report({ until: '2026-13-45' }), { code: 'USAGE', message: 'report: --until 2026-13-45: no such date: months go from 01 to 12' })
  await t.rejects(report({ client: 'nope' }), { code: 'USAGE', message: /--client nope/ })
  // now = T0 + 1h: --since 30m is 10:30, before --until 10:10
  await t.rejects(report({ files: [plain], since: '30m', until: '2026-11-21T10:10:00Z' }),
    { code: 'USAGE', message: 'report: --until 2026-11-21T10:10:00Z (2026-11-21T10:10:00.999Z) is before --since 30m (2026-11-21T10:30:00.000Z): nothing could match' })
  const failing = new Writable({ write(_c, _e, cb) { cb(new Error('EPIPE')) } })
  failing.on('error', () => {})
  await t.rejects(runReport({ files: [plain], format: 'json', out: failing }), /EPIPE/)
})

t.test('inputs that cannot be read: the rest is reported, then the errors are thrown', async t => {
  const broken = join(dir, 'broken.gz')
  writeFileSync(broken, gzipSync(log).subarray(0, 200))
  const missing = join(dir, 'missing.log')
  const c = capture()
  await t.rejects(runReport({ files: [broken, missing, plain], format: 'table', out: c.out }), {
    code: 'INPUT_READ', message: 'report: 2 inputs could not be read:',
    details: [`${broken}: unexpected end of file`, `${missing}: ENOENT: no such file or directory`],
  })
  t.match(c.text(), 'CLIENT 10.0.0.5', 'the report of what was read comes first')
  t.match(c.text(), /, 2 read errors \(see stderr\)\n$/)
  t.notMatch(c.text(), 'ENOENT')
  const one = capture()
  await t.rejects(runReport({ files: [plain], stdin: Readable.from([gzipSync(log).subarray(0, 200)]), format: 'json', out: one.out }),
    { code: 'INPUT_READ', message: 'report: stdin: unexpected end of file', details: [] })
  t.same(JSON.parse(one.text()).summary.errors, ['stdin: unexpected end of file'])
})

t.test('--leases: hostname and MAC per client as of each line', async t => {
  const s = (ms: number) => Math.floor(ms / 1000)
  const leaseDir = t.testdir({
    'dnsmasq.leases': `${s(T0 + 86_400_000)} 02:00:00:00:00:05 10.0.0.5 laptop-7 *\n`,
    'dhcpd.leases': 'lease 10.0.0.6 {\n  starts 6 2026/11/21 09:00:00;\n  ends 6 2026/11/21 10:05:00;\n  hardware ethernet 02:00:00:00:00:06;\n  client-hostname "build-6";\n}\n',
  })
  const j = JSON.parse(await report({ files: [plain], format: 'json', leases: [join(leaseDir, 'dnsmasq.leases'), join(leaseDir, 'dhcpd.leases')] }))
  const by = Object.fromEntries(j.clients.map((c: { ip: string }) => [c.ip, c]))
  t.match(by['10.0.0.5'], { hostname: 'laptop-7', mac: '02-00-00-00-00-05' })
  t.match(by['10.0.0.6'], { hostname: 'build-6', mac: '02-00-00-00-00-06' }, 'leased at 10:03, the first of its lines')
  t.match(by['10.0.0.7'], { hostname: null, mac: null })
  t.match(j.summary.filters, { leases: /dnsmasq\.leases, .*dhcpd\.leases$/ })
  const table = await report({ files: [plain], leases: [join(leaseDir, 'dnsmasq.leases')] })
  t.match(table, 'CLIENT 10.0.0.5  laptop-7  02-00-00-00-00-05\n')
  t.notMatch(await report({ files: [plain], leases: [] }), 'laptop-7')
  // every error names the file, once
  await t.rejects(report({ files: [plain], leases: [join(leaseDir, 'nope')] }),
    { code: 'USAGE', message: `report: cannot read leases: ${join(leaseDir, 'nope')}: ENOENT: no such file or directory` })
  await t.rejects(report({ files: [plain], leases: [leaseDir] }), { code: 'USAGE', message: `report: cannot read leases: ${leaseDir}: EISDIR: illegal operation on a directory` })
  // a device is refused before a byte is read (read to its end, /dev/zero took 512 MiB before failing), /dev/null too
  await t.rejects(report({ files: [plain], leases: ['/dev/zero'] }), { code: 'USAGE', message: /^report: cannot read leases: \/dev\/zero: not a regular file \(a device or socket: reading it might never end\)/ })
  await t.rejects(report({ files: [plain], leases: [join(leaseDir, 'dnsmasq.leases'), '/dev/null'] }),
    { code: 'USAGE', message: /^report: cannot read leases: \/dev\/null: not a regular file \(the null device: nothing to read\)/ })
  // the wrong file (a dhcpd.conf) is an error naming it; an empty lease file is no lease
  writeFileSync(join(leaseDir, 'dhcpd.conf'), 'subnet 10.0.0.0 netmask 255.255.255.0 {\n  range 10.0.0.10 10.0.0.99;\n}\n')
  await t.rejects(report({ files: [plain], leases: [join(leaseDir, 'dhcpd.conf')] }),
    { code: 'USAGE', message: /cannot read leases: .*dhcpd\.conf: no lease found \(expected a dnsmasq, ISC dhcpd or Kea CSV lease file\)/ })
  // what each server writes when it holds no lease: empty, not the wrong file
  const empty = {
    'empty.leases': '\n',
    'kea-empty.csv': 'address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n',
    'dhcpd-empty.leases': '# The format of this file is documented in the dhcpd.leases(5) manual page.\n# This lease file was written by isc-dhcp-4.4.3\n\n'
      + '# authoring-byte-order entry is generated, DO NOT DELETE\nauthoring-byte-order little-endian;\n\nserver-duid "\\000\\001\\000\\001";\n',
    'dnsmasq-duid.leases': 'duid 00:01:00:01:2c:9f:3a:10:02:42:ac:11:00:02\n',
  }
  for (const [f, text] of Object.entries(empty)) {
    writeFileSync(join(leaseDir, f), text)
    t.notMatch(await report({ files: [plain], leases: [join(leaseDir, f)] }), 'laptop-7', `${f}: no lease, no error`)
  }
})

t.test('the name decided on is shown beside the name asked (CNAME target, SNI of a CONNECT to an address)', async t => {
  let text = ''
  const logger = createLogger({ level: 'info', destination: new Writable({ write(c, _e, cb) { text += c; cb() } }), clock: () => T0 })
  const snap = makeSnapshot({ config: { log: { queries: 'all' } } })
  const evidence = createEvidence({ logger, getSnapshot: () => snap, metrics: createMetrics(), clients: createClientTable() })
  const client = { ip: '10.0.0.9', port: 40000 }
  // a DNS query whose answer CNAMEs to a listed name
  evidence.decision({ message: 'dns.query', decision: snap.policy.decide(client.ip, 'x.ngrok-free.app', 'cname'), client, transport: 'udp', durationNs: 1,
    dns: { name: 'evil.example.test', type: 'A', rcode: 'NOERROR' } })
  // CONNECT 127.0.0.1:443 with SNI connect.ngrok-agent.com, and a passed CONNECT to another address with its SNI
  evidence.decision({ message: 'proxy.connect', decision: snap.policy.decide(client.ip, 'connect.ngrok-agent.com', 'sni'), client, transport: 'tcp', durationNs: 1,
    destination: { domain: '127.0.0.1', ip: '127.0.0.1', port: 443 }, sni: 'connect.ngrok-agent.com' })
  evidence.decision({ message: 'proxy.connect', decision: snap.policy.decide(client.ip, '192.0.2.7', 'connect'), client, transport: 'tcp', durationNs: 1,
    destination: { domain: '192.0.2.7', ip: '192.0.2.7', port: 443 }, sni: 'example.net' })
  t.match(text, '"destination":{"domain":"127.0.0.1","ip":"127.0.0.1","port":443},"tls":{"client":{"server_name":"connect.ngrok-agent.com"}}', 'the line as the user saw it')
  const file = join(dir, 'matched.log')
  writeFileSync(file, text)

  const j = JSON.parse(await report({ files: [file], format: 'json' }))
  t.match(j.clients[0].names, [
    { name: '127.0.0.1', matched: ['connect.ngrok-agent.com'], hits: ['ngrok: ngrok-agent.com'], where: ['sni'] },
    { name: '192.0.2.7', matched: ['example.net'], actions: { pass: 1 } },
    { name: 'evil.example.test', matched: ['x.ngrok-free.app'], hits: ['ngrok: ngrok-free.app'], where: ['cname'] },
  ])
  const table = await report({ files: [file] })
  t.match(table, /\n  127\.0\.0\.1 +1 [^\n]*\n    → connect\.ngrok-agent\.com\n/)
  t.match(table, /\n  evil\.example\.test +1 [^\n]*\n    → x\.ngrok-free\.app\n/)
  t.ok(table.split('\n').every(l => l.length <= 80))
  const csv = await report({ files: [file], format: 'csv' })
  t.match(csv, /\n10\.0\.0\.9,,,,127\.0\.0\.1,1,.*,sni,connect\.ngrok-agent\.com\n/)
  t.match(csv, /\n10\.0\.0\.9,,,,evil\.example\.test,1,.*,cname,x\.ngrok-free\.app\n/)
  const noPass = JSON.parse(await report({ files: [file], format: 'json', action: 'block,sinkhole,alert' }))
  t.same(noPass.clients[0].names.map((n: { name: string }) => n.name), ['127.0.0.1', 'evil.example.test'], '--action leaves the pass row out')
  t.same(noPass.clients[0].names[0].matched, ['connect.ngrok-agent.com'], 'and the SNI that came with it')
})

t.test('a DNS name with a newline or an escape sequence is escaped in the table, kept in json', async t => {
  let text = ''
  const logger = createLogger({ level: 'info', destination: new Writable({ write(c, _e, cb) { text += c; cb() } }), clock: () => T0 })
  const snap = makeSnapshot()
  const evidence = createEvidence({ logger, getSnapshot: () => snap, metrics: createMetrics(), clients: createClientTable() })
  // labels may carry any octet: dns-packet decodes them into the name as they are
  const name = 'a\nCLIENT 10.6.6.6\u001b[2J.ngrok.io'
  evidence.decision({ message: 'dns.query', decision: snap.policy.decide('10.0.0.9', name, 'qname'), client: { ip: '10.0.0.9', port: 40000 }, transport: 'udp',
    durationNs: 1, dns: { name, type: 'A', rcode: 'NOERROR' } })
  t.match(text, '"question":{"name":"a\\nCLIENT 10.6.6.6\\u001b[2J.ngrok.io"', 'the log line has the name JSON-escaped')
  const file = join(dir, 'control.log')
  writeFileSync(file, text)

  const table = await report({ files: [file] })
  t.same(table.split('\n').filter(l => l.startsWith('CLIENT')), ['CLIENT 10.0.0.9'], 'no forged client row')
  // names are folded to lowercase by report; a name longer than its column is whole, on its own line
  t.match(table, '\n  NAME                            COUNT FIRST (UTC)         LAST (UTC)         \n  a\\nclient 10.6.6.6\\x1b[2j.ngrok.io\n'
    + '                                      1 2026-11-21 10:00:00 2026-11-21 10:00:00\n\n',
    'the name on one row, escaped')
  t.notMatch(table, /\u001b/, 'no ESC reaches the terminal')
  const j = JSON.parse(await report({ files: [file], format: 'json' }))
  t.equal(j.clients[0].names[0].name, name.toLowerCase(), 'json: the name as it was (folded)')
})

/**
 * The log of the user test's runs, written by the real evidence with names as ClientNames adds
 * them; and the live table the same evidence filled.
 */
function machinesLog() {
  let now = T0
  let text = ''
  const logger = createLogger({ level: 'info', destination: new Writable({ write(c, _e, cb) { text += c; cb() } }), clock: () => now })
  const snap = makeSnapshot()
  const live = createClientTable({ clock: () => now })
  let holder: Record<string, Record<string, string>> = {
    '10.0.0.22': { hostname: 'dev-bob', mac: '52-54-00-00-00-22' },
  }
  const names = { annotate: (c: Record<string, unknown>, ip: string) => { Object.assign(c, holder[ip]) } }
  const evidence = createEvidence({ logger, getSnapshot: () => snap, metrics: createMetrics(), clients: live, names })
  const dns = (ip: string, name: string, decided = name) => evidence.decision({
    message: 'dns.query', decision: snap.policy.decide(ip, decided, decided === name ? 'qname' : 'cname'), client: { ip, port: 40000 }, transport: 'udp',
    durationNs: 1, dns: { name, type: 'A', rcode: 'NOERROR' },
  })
  const client = (ip: string) => ({ ip, port: 50000 })
  // as the sinkhole listener logs a connection: the name decided on, the SNI as sent or the Host as the URL domain
  const capture = (ip: string, name: string, where: 'sni' | 'host') => {
    const decision = snap.policy.decide(ip, name, where)
    evidence.decision({
      message: 'sinkhole.capture', decision, client: client(ip), transport: 'tcp', durationNs: 1,
      destination: { domain: decision.name, port: where === 'sni' ? 443 : 80 }, ...(where === 'sni' ? { sni: name } : { urlDomain: decision.name }),
    })
  }
  // as the proxy writes it: an address the client named in destination.ip, a name in destination.domain
  const connect = (ip: string, host: string, sni?: string) => evidence.decision({
    message: 'proxy.connect', decision: snap.policy.decide(ip, sni ?? host, sni === undefined ? 'connect' : 'sni'), client: client(ip), transport: 'tcp', durationNs: 1,
    destination: decisionDestination(parseAuthority(`${host}:443`)!), sni,
  })
  const http = (ip: string, url: string, host = url) => evidence.decision({
    message: 'proxy.http', decision: snap.policy.decide(ip, host, host === url ? 'url' : 'host'), client: client(ip), transport: 'tcp', durationNs: 1,
    destination: { domain: url, port: 80 }, urlDomain: url,
  })
  const step = () => { now += 1000 }
  // D1: dev-bob holds 10.0.0.22 and asks for ngrok; the lease moves to the kiosk
  dns('10.0.0.22', 'connect.ngrok-agent.com'); step()
  holder = { '10.0.0.22': { hostname: 'kiosk-lobby', mac: '52-54-00-00-00-99' } }
  dns('10.0.0.22', 'foo.trycloudflare.com'); step()
  // D4: machine A reaches the sinkhole listener; machine B uses the proxy (SNI, URL); machine C sends a Host header
  capture('10.0.0.31', 'connect.ngrok-agent.com', 'sni'); step()
  capture('10.0.0.31', 'abc123.ngrok-free.app', 'host'); step()
  connect('10.0.0.32', '127.0.0.100', 'connect.ngrok-agent.com'); step()
  http('10.0.0.32', 'abc123.ngrok-free.app'); step()
  http('10.0.0.33', 'www.example.test', 'abc123.ngrok-free.app'); step()
  // D12: a CNAME hit; D13: names as the client spelt them
  dns('10.0.0.11', 'innocent.example.test', 'x1.ngrok-free.app'); step()
  http('10.0.0.12', 'ABC123.Ngrok-Free.APP'); step()
  http('10.0.0.12', 'abc123.ngrok-free.app'); step()
  connect('10.0.0.12', 'CONNECT.Ngrok-Agent.COM'); step()
  connect('10.0.0.12', 'connect.ngrok-agent.com.'); step()
  return { text, live }
}

t.test('an address handed to another machine: each machine keeps its own decisions, in whatever order the files are read', async t => {
  const { text } = machinesLog()
  const lines = text.trimEnd().split('\n')
  const [bob, kiosk] = lines.filter(l => l.includes('"10.0.0.22"'))
  t.match(JSON.parse(bob!), { client: { hostname: 'dev-bob' }, dns: { question: { name: 'connect.ngrok-agent.com' } } }, 'the lines are right')
  t.match(JSON.parse(kiosk!), { client: { hostname: 'kiosk-lobby' }, dns: { question: { name: 'foo.trycloudflare.com' } } })
  // `report tg.jsonl tg.jsonl.1`: the newer file first
  const newer = join(dir, 'machines.jsonl')
  const older = join(dir, 'machines.jsonl.1')
  writeFileSync(newer, kiosk + '\n')
  writeFileSync(older, bob + '\n')
  for (const files of [[newer, older], [older, newer]]) {
    const j = JSON.parse(await report({ files, format: 'json', client: '10.0.0.22' }))
    t.same(j.clients.map((c: { ip: string; hostname: string; mac: string; names: { name: string }[] }) => [c.ip, c.hostname, c.mac, c.names.map(n => n.name)]), [
      ['10.0.0.22', 'dev-bob', '52-54-00-00-00-22', ['connect.ngrok-agent.com']],
      ['10.0.0.22', 'kiosk-lobby', '52-54-00-00-00-99', ['foo.trycloudflare.com']],
    ], `--client by address keeps both machines (${files.map(f => f.slice(dir.length + 1)).join(' ')})`)
  }
  const table = await report({ files: [newer, older] })
  t.match(table, /CLIENT 10\.0\.0\.22  dev-bob  52-54-00-00-00-22\n[^]*connect\.ngrok-agent\.com[^]*\n\nCLIENT 10\.0\.0\.22  kiosk-lobby  52-54-00-00-00-99\n[^]*foo\.trycloudflare\.com/)
  t.notMatch(table.slice(table.indexOf('kiosk-lobby')), 'ngrok', 'nothing of dev-bob\'s under the kiosk')
  const csv = await report({ files: [newer, older], format: 'csv' })
  t.match(csv, '\n10.0.0.22,dev-bob,,52-54-00-00-00-22,connect.ngrok-agent.com,1,')
  t.match(csv, '\n10.0.0.22,kiosk-lobby,,52-54-00-00-00-99,foo.trycloudflare.com,1,')
  t.same(JSON.parse(await report({ files: [newer, older], format: 'json', client: '10.0.0.0/24' })).clients.length, 2, 'and by CIDR')
})

t.test('where: a sinkhole capture is labelled apart from proxy traffic, a Host header apart from a URL', async t => {
  const file = join(dir, 'where.jsonl')
  writeFileSync(file, machinesLog().text)
  const j = JSON.parse(await report({ files: [file], format: 'json' }))
  const by = (ip: string) => j.clients.find((c: { ip: string }) => c.ip === ip)
  t.same(by('10.0.0.31').where, { 'sinkhole-host': 1, 'sinkhole-sni': 1 }, 'the agent that reached the sinkhole')
  t.same(by('10.0.0.32').where, { sni: 1, url: 1 }, 'the proxy user')
  t.same(by('10.0.0.33').where, { host: 1 }, 'a Host header')
  t.match(by('10.0.0.31').names, [{ name: 'abc123.ngrok-free.app', where: ['sinkhole-host'] }, { name: 'connect.ngrok-agent.com', where: ['sinkhole-sni'] }])
  t.match(by('10.0.0.33').names, [{ name: 'www.example.test', matched: ['abc123.ngrok-free.app'], where: ['host'] }])
  const table = await report({ files: [file] })
  t.match(table, /CLIENT 10\.0\.0\.31\n(.*\n){3}  seen in  sinkhole-host 1, sinkhole-sni 1\n/)
  t.match(table, /CLIENT 10\.0\.0\.32\n(.*\n){3}  seen in  sni 1, url 1\n/)
  t.match(await report({ files: [file], format: 'csv', client: '10.0.0.31' }), /,sinkhole-sni,\n/)
})

t.test('names folded: one row however the client spelt the name', async t => {
  const file = join(dir, 'case.jsonl')
  writeFileSync(file, machinesLog().text)
  const j = JSON.parse(await report({ files: [file], format: 'json', client: '10.0.0.12' }))
  t.same(j.clients[0].names.map((n: { name: string; count: number; matched: string[] }) => [n.name, n.count, n.matched]),
    [['abc123.ngrok-free.app', 2, []], ['connect.ngrok-agent.com', 2, []]])
})

t.test('lines written before client.mac took the ECS notation name the same machine as later ones', async t => {
  const file = join(dir, 'mac-forms.jsonl')
  const line = (at: number, mac: string, name: string) => JSON.stringify({
    '@timestamp': new Date(T0 + at).toISOString(), message: 'dns.query', 'event.action': 'block',
    client: { ip: '10.0.0.40', port: 5353, hostname: 'build-40', mac }, dns: { question: { name } },
  }) + '\n'
  writeFileSync(file, line(0, '52:54:00:ab:cd:40', 'a.ngrok.io') + line(1000, '52-54-00-AB-CD-40', 'b.ngrok.io') + line(2000, 'not a mac', 'c.ngrok.io'))
  const j = JSON.parse(await report({ files: [file], format: 'json' }))
  t.same(j.clients.map((c: { mac: string; total: number }) => [c.mac, c.total]), [['52-54-00-AB-CD-40', 2], ['not a mac', 1]],
    'the two notations are one machine; a value that is no MAC is kept as it was written')
})

t.test('one machine however its address was written: IPv4-mapped, upper case, written out in full (older lines)', async t => {
  const file = join(dir, 'ip-forms.jsonl')
  const line = (at: number, ip: string, name: string, fast = false) => fast
    ? `{"log.level":"warn","@timestamp":"${new Date(T0 + at).toISOString()}","ecs.version":"8.11.0","message":"dns.query","event":{"action":"block"},"client":{"ip":"${ip}","port":5353},"dns":{"question":{"name":"${name}"}}}\n`
    : JSON.stringify({ '@timestamp': new Date(T0 + at).toISOString(), message: 'dns.query', 'event.action': 'block', client: { ip, port: 5353 }, dns: { question: { name } } }) + '\n'
  writeFileSync(file, line(0, '::ffff:10.1.2.3', 'a.ngrok.io') + line(1000, '10.1.2.3', 'b.ngrok.io', true) + line(1500, '::FFFF:10.1.2.3', 'f.ngrok.io', true)
    + line(2000, '2001:DB8:1:2:0:0:0:1', 'c.ngrok.io') + line(3000, '2001:db8:1:2::1', 'd.ngrok.io', true))
  const j = JSON.parse(await report({ files: [file], format: 'json' }))
  t.same(j.clients.map((c: { ip: string; total: number }) => [c.ip, c.total]).sort(), [['10.1.2.3', 3], ['2001:db8:1:2::1', 2]])
  t.match(await report({ files: [file], format: 'csv', client: '2001:db8:1:2::/64' }), /c\.ngrok\.io/)
})

t.test('report and /api/clients say the same: the client, the name asked, the name decided on, where', async t => {
  const { text, live } = machinesLog()
  const file = join(dir, 'same.jsonl')
  writeFileSync(file, text)
  const j = JSON.parse(await report({ files: [file], format: 'json' }))
  type Row = { ip: string; hostname?: string | null; mac?: string | null; where: object; names: { name: string; count: number; matched: string[] }[] }
  const view = (r: Row) => ({ ip: r.ip, hostname: r.hostname ?? null, mac: r.mac ?? null, where: r.where, names: r.names.map(n => ({ name: n.name, count: n.count, matched: n.matched })) })
  const sort = (rows: ReturnType<typeof view>[]) => rows.sort((a, b) => `${a.ip} ${a.mac}`.localeCompare(`${b.ip} ${b.mac}`))
  t.same(sort((live.list() as Row[]).map(view)), sort((j.clients as Row[]).map(view)))
  t.match(live.list().find(c => c.ip === '10.0.0.11')!.names, [{ name: 'innocent.example.test', matched: ['x1.ngrok-free.app'] }], 'the name the client asked, the CNAME target beside it')
})

t.test('a log spanning the upgrade: an address a client named, in destination.domain before and destination.ip now, is one destination', async t => {
  let text = ''
  const logger = createLogger({ level: 'info', destination: new Writable({ write(c, _e, cb) { text += c; cb() } }), clock: () => T0 })
  const snap = makeSnapshot({ config: { log: { queries: 'all' } } })
  const live = createClientTable({ clock: () => T0 })
  const evidence = createEvidence({ logger, getSnapshot: () => snap, metrics: createMetrics(), clients: live })
  const client = { ip: '10.0.0.9', port: 40000 }
  const pass = (name: string, where: 'connect' | 'url') => ({ action: 'pass' as const, group: 'default', where, name, reason: 'an address, not a name' })
  // the lines older builds wrote: the literal as the client wrote it in destination.domain (the
  // address decided on in matched_name when that differed), and an SNI behind an address
  const old = (message: string, domain: string, matched?: string, more: Record<string, unknown> = {}) => JSON.stringify({
    'log.level': 'info', '@timestamp': '2026-11-21T09:00:00.000Z', 'ecs.version': '8.11.0', message,
    event: { action: 'pass', kind: 'event', category: ['network'], type: ['connection', 'allowed'], duration: 1 }, client, network: { transport: 'tcp' },
    destination: { domain, ip: matched ?? domain, port: 443 }, ...more,
    tunnelguard: { group: 'default', matched_on: message === 'proxy.http' ? 'url' : 'connect', reason: 'an address, not a name', ...(matched ? { matched_name: matched } : {}) },
  }) + '\n'
  const before = [
    old('proxy.connect', '203.0.113.5'), old('proxy.connect', '2001:DB8:0::1'), old('proxy.connect', '::ffff:198.51.100.2', '198.51.100.2'),
    old('proxy.connect', '0x7f000001', '127.0.0.1'), old('proxy.http', '192.0.2.80', undefined, { url: { domain: '192.0.2.80' } }),
  ].join('')
  // today's, from the proxy's own helpers: the same targets, each once
  for (const [authority, message] of [['203.0.113.5:443', 'proxy.connect'], ['[2001:db8::1]:443', 'proxy.connect'], ['[::ffff:198.51.100.2]:443', 'proxy.connect'],
    ['0x7f000001:443', 'proxy.connect'], ['192.0.2.80:80', 'proxy.http']] as const) {
    const target = parseAuthority(authority)!
    const ev = { message, decision: pass(target.ip!, message === 'proxy.http' ? 'url' : 'connect'), client, transport: 'tcp' as const, durationNs: 1,
      destination: decisionDestination(target, target.ip), ...(message === 'proxy.http' ? { urlDomain: target.host } : {}) }
    evidence.decision(ev)
    live.record(ev)                                     // a pass is not in the table: put there as a block would be
  }
  const now = text.trimEnd().split('\n').map(l => JSON.parse(l) as { destination: Record<string, unknown> })
  t.same(now.map(l => l.destination), [{ ip: '203.0.113.5', port: 443 }, { ip: '2001:db8::1', port: 443 }, { ip: '198.51.100.2', port: 443 },
    { ip: '127.0.0.1', port: 443 }, { ip: '192.0.2.80', port: 80 }], 'today: the canonical address in destination.ip, no destination.domain')
  const file = join(dir, 'upgrade.jsonl')
  writeFileSync(file, before + text)
  const j = JSON.parse(await report({ files: [file], format: 'json' }))
  t.equal(j.clients.length, 1)
  const names = (j.clients[0].names as { name: string; count: number; matched: string[] }[]).map(n => [n.name, n.count, n.matched])
  t.same(names.sort(), [['127.0.0.1', 2, []], ['192.0.2.80', 2, []], ['198.51.100.2', 2, []], ['2001:db8::1', 2, []], ['203.0.113.5', 2, []]],
    'each address once, counted twice (an old line and a new one), with nothing beside it')
  // the live table (/api/clients) names today's lines as report does
  t.same(live.list()[0]!.names.map(n => n.name).sort(), ['127.0.0.1', '192.0.2.80', '198.51.100.2', '2001:db8::1', '203.0.113.5'])
  t.same(JSON.parse(await report({ files: [file], format: 'json', client: '10.0.0.9' })).clients[0].names.length, 5)
})

t.test('the report is written in chunks, each after the last was taken, whatever its size', async t => {
  // 3000 clients: some 1.8 MB of json, 0.7 MB of table
  const lines = Array.from({ length: 3000 }, (_, i) => JSON.stringify({
    '@timestamp': '2026-11-21T10:00:00.000Z', message: 'dns.query', event: { action: 'sinkhole', kind: 'alert' },
    client: { ip: `10.1.${i >> 8}.${i & 255}`, port: 5353 }, dns: { question: { name: `h${i % 50}.ngrok-free.app`, type: 'A' } },
    rule: { name: 'ngrok-free.app', ruleset: 'ngrok' }, tunnelguard: { matched_on: 'qname' },
  })).join('\n') + '\n'
  const file = join(dir, 'many.jsonl')
  writeFileSync(file, lines)
  for (const format of ['json', 'csv', 'table'] as const) {
    const writes: number[] = []
    let text = ''
    let waiting = 0
    let overlapped = false
    // a slow reader: each write is taken a turn later
    const out = {
      write(s: string, done: (e?: Error | null) => void) {
        if (waiting > 0) overlapped = true
        waiting++
        writes.push(s.length)
        text += s
        setImmediate(() => { waiting--; done() })
      },
    }
    await runReport({ files: [file], format, out })
    t.ok(writes.length >= text.length / (2 * WRITE_CHUNK) && writes.length > 5, `${format}: ${writes.length} writes for ${text.length} characters`)
    t.ok(Math.max(...writes) < WRITE_CHUNK + 4096, `${format}: none much past WRITE_CHUNK`)
    t.notOk(overlapped, `${format}: each write after the last was taken`)
    if (format === 'json') t.equal(JSON.parse(text).clients.length, 3000)
    else t.match(text, format === 'csv' ? /^client_ip,[^]*\n10\.1\.11\.183,/ : /\n3000 clients, 3000 decisions shown, 3000 lines read\n$/)
  }
})

t.test('writeOut: what it is given, in chunks; nothing for nothing; the first write error, and no write after it', async t => {
  const writes: string[] = []
  const ok = { write(s: string, done: (e?: Error | null) => void) { writes.push(s); done() } }
  await writeOut(ok, [])
  t.same(writes, [])
  await writeOut(ok, ['a', 'b'])
  t.same(writes, ['ab'], 'small pieces: one write at the end')
  writes.length = 0
  const big = 'x'.repeat(WRITE_CHUNK - 1)
  await writeOut(ok, [big, 'yy', 'z', big, 'w'])
  t.same(writes, [big + 'yy', 'z' + big, 'w'])
  let calls = 0
  const failing = { write(_s: string, done: (e?: Error | null) => void) { calls++; done(new Error('ENOSPC')) } }
  await t.rejects(writeOut(failing, [big, 'yy', big, 'yy']), /ENOSPC/)
  t.equal(calls, 1)
})

t.test('hand-made lines: an unknown action is a malformed line; a line without matched_on was seen somewhere unknown', async t => {
  const line = (action: string, ip: string, more: object = {}) => JSON.stringify({
    '@timestamp': '2026-11-21T10:00:00Z', message: 'dns.query', event: { action }, client: { ip }, dns: { question: { name: 'y.ngrok.io' } }, ...more }) + '\n'
  const stdin = () => Readable.from([line('frobnicate', '10.0.0.6') + line('block', '10.0.0.7') + line('sinkhole', '10.0.0.8', { tunnelguard: { matched_on: 'cname' } })])
  const j = JSON.parse(await report({ stdin: stdin(), format: 'json' }))
  t.same(j.clients.map((c: { ip: string; where: object }) => [c.ip, c.where]), [['10.0.0.7', { unknown: 1 }], ['10.0.0.8', { cname: 1 }]], 'no client 10.0.0.6; no qname made up')
  t.same(j.clients[0].names[0].where, ['unknown'])
  t.match(j.summary, { lines: 3, decisions: 2, malformed: 1 })
  const table = await report({ stdin: stdin() })
  t.match(table, 'CLIENT 10.0.0.7\n  seen     2026-11-21 10:00:00 .. 2026-11-21 10:00:00 UTC, 1 decision\n  actions  block 1\n  seen in  unknown 1\n')
  t.notMatch(table, /frobnicate|10\.0\.0\.6/)
  t.match(table, /\n2 clients, 2 decisions shown, 3 lines read, 1 malformed line skipped\n$/)
  t.match(await report({ stdin: stdin(), format: 'csv' }), '\n10.0.0.7,,,,y.ngrok.io,1,2026-11-21T10:00:00.000Z,2026-11-21T10:00:00.000Z,block=1,,unknown,\n')
})
