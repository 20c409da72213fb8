import t from 'tap'
import { PassThrough, Readable } from 'node:stream'
import { main } from '../../src/cli.js'

// `tunnelguard report` through the CLI entry: what reaches stdout and stderr, and the exit code.

/** Run the CLI in-process; capture stdout, stderr and the exit code. */
async function run(argv: string[], stdin = '') {
  const out = new PassThrough()
  const err = new PassThrough()
  let o = ''
  let e = ''
  out.on('data', d => { o += d })
  err.on('data', d => { e += d })
  const code = await main(argv, { stdout: out, stderr: err, stdin: Readable.from([stdin]), resolvConf: '/nonexistent' })
  return { code, out: o, err: e }
}

const LINE = (ip: string, name: string) => JSON.stringify({
  '@timestamp': '2026-11-22T04:00:00.000Z', 'log.level': 'warn', message: 'dns.query',
  event: { action: 'block', kind: 'alert' }, client: { ip, port: 5353 }, network: { transport: 'udp' },
  dns: { question: { name, type: 'A' } }, rule: { name: 'ngrok.io', ruleset: 'ngrok' },
  tunnelguard: { group: 'default', matched_on: 'qname' },
}) + '\n'

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
