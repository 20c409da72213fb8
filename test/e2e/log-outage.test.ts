import t from 'tap'
import type { Test } from 'tap'
import { execFileSync, spawn, type ChildProcess, type StdioOptions } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CLI } from '../fixtures/serve-process.js'
import { dig } from '../fixtures/dig.js'
import { freePort, probe } from '../fixtures/unbound.js'

// The log path against a real `serve` (and the real logger) in a child process: a stdout or a
// stderr that fails or stops taking bytes must neither end the process, nor hold its stop, nor
// put a stderr notice inside a log line.

const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))
const until = async (cond: () => boolean | Promise<boolean>, ms: number): Promise<boolean> => {
  for (let i = 0; i < ms / 50; i++) { if (await cond()) return true; await sleep(50) }
  return cond()
}
const CANARY = 'use-application-dns.net'                     // answered by serve itself: NXDOMAIN (3)
/** A config that logs every query, DNS on `port`. */
const loud = (port: number, state: string): string => [
  'dns:', `  listen: ["127.0.0.1:${port}"]`, '  upstreams: ["udp://127.0.0.1:9"]',
  'proxy: { listen: [] }', 'admin: null', `state: { dir: ${JSON.stringify(state)} }`, 'log: { queries: all }', '',
].join('\n')

interface Child { readonly child: ChildProcess; readonly exited: Promise<number | null>; readonly stderr: () => string }
function spawnKept(t: Test, argv: readonly string[], stdio: StdioOptions): Child {
  const child = spawn(argv[0]!, argv.slice(1), { stdio })
  let err = ''
  child.stderr?.on('data', d => { err += String(d) })
  const exited = new Promise<number | null>(r => child.once('exit', code => r(code)))
  t.teardown(async () => { if (child.exitCode === null && child.signalCode === null) { child.kill('SIGKILL'); await exited } })
  return { child, exited, stderr: () => err }
}
async function serveOn(t: Test, stdio: StdioOptions | ((dir: string) => StdioOptions)): Promise<{ port: number; s: Child }> {
  const port = await freePort()
  const dir = t.testdir({ 'tg.yaml': loud(port, join(t.testdirName, 'state')) })
  if (typeof stdio === 'function') stdio = stdio(dir)
  const s = spawnKept(t, [process.execPath, CLI, 'serve', '--config', join(dir, 'tg.yaml')], stdio)
  let up = false
  await until(async () => s.child.exitCode !== null || (up = await probe(port, CANARY, 300) === 3), 15_000)
  t.ok(up, 'serve answers')
  return { port, s }
}
/** Exit code, or 'hung' when it has not exited within `ms`. */
const exitWithin = (c: Child, ms: number): Promise<number | null | 'hung'> =>
  Promise.race([c.exited, sleep(ms).then(() => 'hung' as const)])

t.test('stdout and stderr on a device that fails every write (ENOSPC: `serve >/dev/full 2>&1`): DNS goes on, the stop is bounded', async t => {
  const full = openSync('/dev/full', 'w')
  const { port, s } = await serveOn(t, ['ignore', full, full])
  closeSync(full)
  await sleep(2500)                                          // the write is tried again every second
  t.equal(s.child.exitCode, null, 'still running after the log and its notices failed')
  for (let i = 0; i < 3; i++) t.equal((await dig({ address: '127.0.0.1', port }, CANARY)).status, 'NXDOMAIN', `dig ${i}: answered`)
  const t0 = Date.now()
  s.child.kill('SIGTERM')
  t.equal(await exitWithin(s, 30_000), 0, 'SIGTERM: a normal stop, though no line could be written')
  t.ok(Date.now() - t0 >= 4000, 'after the final flush waited for its bound')
})

t.test('stderr on a failing device, stdout a pipe whose reader goes (EPIPE): the notice fails (ENOSPC), the process does not', async t => {
  const full = openSync('/dev/full', 'w')
  const { port, s } = await serveOn(t, ['ignore', 'pipe', full])
  closeSync(full)
  s.child.stdout!.destroy()                                  // the next log write is EPIPE, its notice ENOSPC
  for (let i = 0; i < 3; i++) t.equal((await dig({ address: '127.0.0.1', port }, CANARY)).status, 'NXDOMAIN', `dig ${i}: answered`)
  await sleep(500)
  t.equal(s.child.exitCode, null, 'still running')
  t.equal((await dig({ address: '127.0.0.1', port }, CANARY)).status, 'NXDOMAIN')
  s.child.kill('SIGTERM')
  t.equal(await exitWithin(s, 30_000), 0)
})

/**
 * `serve` with stdout into a pipe (a FIFO: 64 KiB, where the socket pair of spawn's 'pipe' takes
 * more) read by `cat` into a file, stderr kept; the reader can be stopped (SIGSTOP).
 */
async function serveIntoReader(t: Test): Promise<{ port: number; s: Child; reader: Child; out: () => string }> {
  let path = ''
  let reader: Child | undefined
  let w = -1
  const { port, s } = await serveOn(t, dir => {
    const fifo = join(dir, 'log.fifo')
    path = join(dir, 'out.log')
    execFileSync('mkfifo', [fifo])
    const outFd = openSync(path, 'w')
    reader = spawnKept(t, ['cat', fifo], ['ignore', outFd, 'ignore'])
    closeSync(outFd)
    t.teardown(() => { reader!.child.kill('SIGCONT') })
    w = openSync(fifo, 'r+')                                 // read-write: opens without waiting for cat
    return ['ignore', w, 'pipe']
  })
  closeSync(w)                                               // serve holds the pipe's only write end now
  return { port, s, reader: reader!, out: () => readFileSync(path, 'utf8') }
}
/** Enough queries, each logged (a line of about 600 bytes), to fill a pipe (64 KiB) that nobody reads. */
async function fill(port: number): Promise<number> {
  let n = 0
  for (let i = 0; i < 300; i++) if (await probe(port, CANARY, 2000) === 3) n++
  return n
}

t.test('SIGTERM while stdout\'s reader is stopped: the stop waits at most the bound, then says on stderr what was lost, exit 0', async t => {
  const { port, s, reader, out } = await serveIntoReader(t)
  reader.child.kill('SIGSTOP')
  const answered = await fill(port)
  t.equal(answered, 300, 'answered while the log waits')
  const t0 = Date.now()
  s.child.kill('SIGTERM')
  t.equal(await exitWithin(s, 30_000), 0, 'ended, as a normal stop does')
  t.ok(Date.now() - t0 >= 4000, `the final flush waited for its bound (${Date.now() - t0} ms)`)
  const m = /^tunnelguard: stopping: (\d+) log lines \((\d+) bytes\) not written to stdout within 5 s of the stop; they are lost$/m.exec(s.stderr())
  t.ok(m, `one notice says what was lost: ${s.stderr()}`)
  t.equal(s.stderr().split('\n').filter(l => l.includes('stopping:')).length, 1, 'once')
  reader.child.kill('SIGCONT')
  await reader.exited
  const whole = out().split('\n').filter(l => l.endsWith('}')).length
  t.ok(whole < answered, `not all written (${whole})`)
  t.ok(whole + Number(m?.[1]) >= answered + 3, 'each line (started, the queries, stopping, stopped) written or counted')
})

t.test('SIGTERM while stdout\'s reader is stopped, and it resumes within the bound: every line is delivered, nothing said', async t => {
  const { port, s, reader, out } = await serveIntoReader(t)
  const queries = (): number => out().split('\n').filter(l => l.includes('"message":"dns.query"')).length
  t.ok(await until(() => queries() > 0, 10_000), 'the lines of the probes that found serve up are out')
  await sleep(300)
  const before = queries()
  reader.child.kill('SIGSTOP')
  t.equal(await fill(port), 300)
  s.child.kill('SIGTERM')
  await sleep(1000)
  reader.child.kill('SIGCONT')
  t.equal(await exitWithin(s, 30_000), 0)
  await reader.exited
  const lines = out().split('\n').filter(Boolean).map(l => JSON.parse(l) as { message: string })
  t.equal(lines.filter(l => l.message === 'dns.query').length, before + 300, 'every query\'s line')
  t.equal(lines.at(-1)!.message, 'stopped', 'to the last one')
  t.equal(s.stderr(), '', 'no notice')
})

t.test('stdout and stderr on one pipe (2>&1) whose reader pauses: every line read back is valid JSON or a whole notice', async t => {
  // the real logger (dist, as serve has it), with a small bound on what waits, so that lines are
  // dropped (and the drop said on stderr) while a partial write has left a line cut in the pipe
  const logger = new URL('../../dist/observe/logger.js', import.meta.url).pathname
  const code = `import { writeSync } from 'node:fs'
const { createLogger } = await import(${JSON.stringify(logger)})
const log = createLogger({ level: 'info', maxWaiting: 1 << 20 })
const pad = 'x'.repeat(500)
let i = 0
const more = () => { for (let k = 0; k < 100; k++, i++) log.info({ n: i, pad }, 'line'); if (i < 10000) setTimeout(more, 2); else writeSync(3, 'done\\n') }
more()
process.stdin.on('data', () => log.flush(() => process.exit(0)))`
  const c = spawnKept(t, ['sh', '-c', `exec "$0" --input-type=module -e "$1" 2>&1`, process.execPath, code], ['pipe', 'pipe', 'ignore', 'pipe'])
  c.child.stdout!.pause()                                    // the reader stops: the pipe fills, a batch is cut in it
  const done = await Promise.race([new Promise(r => c.child.stdio[3]!.once('data', () => r(true))), sleep(60_000).then(() => false)])
  t.ok(done, 'the writer went on while the pipe was full')
  let out = ''
  c.child.stdout!.on('data', d => { out += String(d) })
  c.child.stdout!.resume()
  c.child.stdin!.write('go\n')
  t.equal(await exitWithin(c, 30_000), 0)
  const lines = out.split('\n')
  t.equal(lines.pop(), '', 'ends with a whole line')
  const notices = lines.filter(l => l.startsWith('tunnelguard: '))
  t.same(notices, [
    'tunnelguard: stdout is not taking the log (1 MiB of lines wait); lines are dropped (block, sinkhole and alert decisions past 0.25 MiB more), and counted in tunnelguard_log_lines_dropped_total{reason="behind"} (those decisions: {reason="behind_evidence"}) and in a line once it moves',
  ], 'the drop is said, on a line of its own')
  const bad = lines.filter(l => { if (l.startsWith('tunnelguard: ')) return false; try { JSON.parse(l); return false } catch { return true } })
  t.same(bad, [], 'no line cut by a notice')
  t.ok(lines.some(l => l.includes('"dropped_lines"')), 'the count of dropped lines, once it moved')
})
