import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { blockedLine, runCli } from '../fixtures/cli.js'

// `tunnelguard report` through the CLI entry: what reaches stdout and stderr, and the exit code.

const run = runCli

const LINE = blockedLine

t.test('--until before --since is a usage error: exit 2, one line', async t => {
  const r = await run(['report', '--since', '2026-11-22T05:00:00Z', '--until', '2026-11-22T04:00:00Z'], LINE('10.1.1.1', 'a.ngrok.io'))
  t.equal(r.code, 2)
  t.equal(r.out, '', 'no report')
  t.match(r.err, /^tunnelguard: report: --until 2026-11-22T04:00:00Z .* is before --since 2026-11-22T05:00:00Z/)
  t.equal(r.err.trim().split('\n').length, 1, 'one line')
  const same = await run(['report', '--since', '2026-11-22T04:00:00Z', '--until', '2026-11-22T04:00:00Z', '--format', 'csv'], LINE('10.1.1.1', 'a.ngrok.io'))
  t.equal(same.code, 0, 'the same time is a valid (one-instant) range')
  t.match(same.out, /^10\.1\.1\.1,/m)
})

t.test('read errors: on stderr, one line naming each input, exit 1, what was read still shown', async t => {
  const names = Array.from({ length: 400 }, (_, i) => LINE(`10.0.${i >> 8}.${i & 255}`, `n${i}.ngrok.io`)).join('')
  const dir = t.testdir({ 'ok.jsonl': LINE('10.2.2.2', 'b.ngrok.io') })
  const gz = gzipSync(names)
  const trunc = join(dir, 'trunc.gz')
  writeFileSync(trunc, gz.subarray(0, 1000))   // head -c 1000 log.jsonl.gz > trunc.gz
  const csv = await run(['report', trunc, '--format', 'csv'])
  t.equal(csv.code, 1, 'csv: exit 1')
  t.match(csv.out, /^client_ip,.*\n10\.0\./, 'the rows read before the cut')
  t.equal(csv.err, `tunnelguard: report: ${trunc}: unexpected end of file\n`)

  const table = await run(['report', trunc])
  t.equal(table.code, 1, 'table: exit 1')
  t.notMatch(table.out, /error:|unexpected end of file/, 'nothing of the error on stdout but a count')
  t.match(table.out, /CLIENT 10\.0\.0\.0\n[^]*, 1 read error \(see stderr\)\n$/)
  t.equal(table.err, `tunnelguard: report: ${trunc}: unexpected end of file\n`)

  const json = await run(['report', trunc, '--format', 'json'])
  t.equal(json.code, 1, 'json: exit 1')
  t.same(JSON.parse(json.out).summary.errors, [`${trunc}: unexpected end of file`], 'json keeps its errors field')
  t.equal(json.err.trim().split('\n').length, 1)

  const missing = join(dir, 'missing.jsonl')
  const corrupt = join(dir, 'corrupt.gz')
  writeFileSync(corrupt, Buffer.concat([gz.subarray(0, 2), Buffer.from('not deflate at all')]))
  const sub = join(dir, 'sub')
  mkdirSync(sub)
  const many = await run(['report', missing, join(dir, 'ok.jsonl'), corrupt, sub, '-', '--format', 'csv'], LINE('10.1.1.1', 'a.ngrok.io'))
  t.equal(many.code, 1)
  t.match(many.out, /^10\.2\.2\.2,/m, 'the readable file is still read')
  t.match(many.out, /^10\.1\.1\.1,/m, 'and stdin after the failed ones')
  t.same(many.err.trimEnd().split('\n'), [
    'tunnelguard: report: 3 inputs could not be read:',
    `  ${missing}: ENOENT: no such file or directory`,
    `  ${corrupt}: unknown compression method`,
    `  ${sub}: EISDIR: illegal operation on a directory`,
  ], 'one line per input, naming it')

  const clean = await run(['report', join(dir, 'ok.jsonl')])
  t.equal(clean.code, 0)
  t.equal(clean.err, '')
})

t.test('--action from the command line keeps only those actions; a bad one is a usage error', async t => {
  const pass = LINE('10.3.3.3', 'fine.example').replace('"action":"block","kind":"alert"', '"action":"pass","kind":"event"')
  const input = LINE('10.3.3.3', 'a.ngrok.io') + pass
  const all = await run(['report', '--format', 'csv'], input)
  t.equal(all.out.trim().split('\n').length, 3, 'header and two rows without the filter')
  const blocked = await run(['report', '--format', 'csv', '--action', 'block,sinkhole'], input)
  t.equal(blocked.code, 0)
  t.match(blocked.out, /a\.ngrok\.io/)
  t.notMatch(blocked.out, /fine\.example/)
  const bad = await run(['report', '--action', 'blocked'], input)
  t.equal(bad.code, 2)
  t.match(bad.err, /^tunnelguard: report: --action blocked: expected a comma-separated list of block, sinkhole, alert, allow, pass, refused\n$/)
})

t.test('a date or time that does not exist: a usage error that says so, exit 2, one line', async t => {
  for (const [argv, why] of [
    [['--until', '2026-02-30'], '--until 2026-02-30: no such date: 2026-02 has days 01 to 28'],
    [['--since=2026-11-21T24:00'], '--since 2026-11-21T24:00: no such time of day: hours go from 00 to 23, minutes and seconds from 00 to 59'],
  ] as const) {
    const r = await run(['report', ...argv], LINE('10.1.1.1', 'a.ngrok.io'))
    t.equal(r.code, 2, argv.join(' '))
    t.equal(r.out, '')
    t.equal(r.err, `tunnelguard: report: ${why}\n`)
  }
})
