import t from 'tap'
import type { Test } from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CLI } from '../fixtures/serve-process.js'
import { dig } from '../fixtures/dig.js'
import { freePort, probe } from '../fixtures/unbound.js'

// A real `serve` whose stdout's reader stops while a flood of pass lines (log.queries: all, which
// a client makes cheaply) fills what may wait (64 MiB): the block lines that follow are the
// evidence, and are kept (LineSink's reserve), where the passes are dropped. (test/e2e/log-outage
// has the other troubles of the log path.)

const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))
const until = async (cond: () => boolean, ms: number): Promise<boolean> => {
  for (let i = 0; i < ms / 50; i++) { if (cond()) return true; await sleep(50) }
  return cond()
}

/** An upstream on 127.0.0.1 that answers every query NXDOMAIN at once (its question echoed). */
async function nxUpstream(t: Test): Promise<number> {
  const up = createSocket('udp4')
  await new Promise<void>(r => up.bind(0, '127.0.0.1', r))
  up.on('message', (m, from) => {
    m[2]! |= 0x80                                            // QR
    m[3] = (m[3]! & 0xf0) | 3                                // NXDOMAIN
    up.send(m, from.port, from.address)
  })
  t.teardown(() => up.close())
  return up.address().port
}

/**
 * A query whose pass line is about 3 KB: a name of 253 octets, nearly all 0x01 (each written
 * `\\001` in the line, twice: dns.question.name and related.hosts), so that 64 MiB of lines take
 * some 21,000 queries, a few seconds.
 */
function bigQuery(id: number): Buffer {
  const label = (n: number): Buffer => Buffer.concat([Buffer.from([n]), Buffer.alloc(n, 1)])
  const name = Buffer.concat([label(63), label(63), label(63), label(40), Buffer.from('\x07example\x04test\x00', 'latin1')])
  const q = Buffer.alloc(12)
  q.writeUInt16BE(id & 0xffff, 0)
  q.writeUInt16BE(0x0100, 2)                                 // RD
  q.writeUInt16BE(1, 4)                                      // one question
  return Buffer.concat([q, name, Buffer.from([0, 1, 0, 1])]) // A IN
}
const BIG = '\\\\001'                                        // as it is in a line's JSON

/** `n` big queries to `port`, 200 in flight; resolves with the answers once all came back, or none did for a second. */
async function flood(port: number, n: number): Promise<number> {
  const c = createSocket('udp4')
  await new Promise<void>(r => c.bind(0, '127.0.0.1', r))
  let sent = 0
  let got = 0
  let last = Date.now()
  const send = (): void => { c.send(bigQuery(sent++), port, '127.0.0.1') }
  await new Promise<void>(resolve => {
    const idle = setInterval(() => { if (Date.now() - last > 1000) done() }, 100)
    const done = (): void => { clearInterval(idle); resolve() }
    c.on('message', () => {
      got++
      last = Date.now()
      if (sent < n) send()
      else if (got === n) done()
    })
    for (let i = 0; i < Math.min(200, n); i++) send()
  })
  c.close()
  return got
}

t.test('stdout\'s reader stopped, a flood of pass lines past 64 MiB: the block lines that follow are kept (the evidence reserve), the passes dropped', async t => {
  const port = await freePort()
  const admin = await freePort()
  const upstream = await nxUpstream(t)
  const dir = t.testdir({
    'tg.yaml': [
      'dns:', `  listen: ["127.0.0.1:${port}"]`, `  upstreams: ["udp://127.0.0.1:${upstream}"]`, 'proxy: { listen: [] }',
      `admin: { listen: "127.0.0.1:${admin}" }`, `state: { dir: ${JSON.stringify(join(t.testdirName, 'state'))} }`,
      'log: { queries: all }', 'lists:', '  ngrok: { files: [ngrok.txt], action: block }', '',
    ].join('\n'),
    'ngrok.txt': 'ngrok-free.app\n',
  })
  // stdout: a FIFO (64 KiB) read by `cat` into a file; the reader is stopped below (SIGSTOP)
  const fifo = join(dir, 'log.fifo')
  const path = join(dir, 'out.log')
  execFileSync('mkfifo', [fifo])
  const outFd = openSync(path, 'w')
  const reader = spawn('cat', [fifo], { stdio: ['ignore', outFd, 'ignore'] })
  closeSync(outFd)
  const w = openSync(fifo, 'r+')                             // read-write: opens without waiting for cat
  const s = spawn(process.execPath, [CLI, 'serve', '--config', join(dir, 'tg.yaml')], { stdio: ['ignore', w, 'pipe'] })
  closeSync(w)                                               // serve holds the pipe's only write end now
  let stderr = ''
  s.stderr!.on('data', d => { stderr += String(d) })
  const exited = new Promise<number | null>(r => s.once('exit', code => r(code)))
  t.teardown(async () => {
    reader.kill('SIGCONT')
    if (s.exitCode === null && s.signalCode === null) { s.kill('SIGKILL'); await exited }
    reader.kill()
  })
  let up = false
  for (let i = 0; i < 50 && !up && s.exitCode === null; i++) up = await probe(port, 'use-application-dns.net', 300) === 3
  t.ok(up, 'serve answers')
  const out = (): string => readFileSync(path, 'utf8')
  t.ok(await until(() => out().includes('"message":"dns.query"'), 10_000), 'the lines of the probes are out')

  reader.kill('SIGSTOP')
  let passes = 0
  for (let round = 0; round < 40 && !stderr.includes('stdout is not taking the log'); round++) passes += await flood(port, 2000)
  t.match(stderr, /stdout is not taking the log \(64 MiB of lines wait\)/, `lines are dropped past 64 MiB (after ${passes} passes)`)
  const atCap = passes
  const blocked: string[] = []
  for (let i = 0; i < 20; i++) {                             // the flood goes on around them
    const name = `x${i}.ngrok-free.app`
    t.equal((await dig({ address: '127.0.0.1', port }, name)).status, 'NXDOMAIN', `${name}: blocked`)
    blocked.push(name)
    passes += await flood(port, 300)
  }
  const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text()
  const dropped = (reason: string): number => Number(new RegExp(`^tunnelguard_log_lines_dropped_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(metrics)?.[1])
  t.ok(dropped('behind') >= passes - atCap, `pass lines dropped: ${dropped('behind')}, at least the ${passes - atCap} answered since`)
  t.equal(dropped('behind_evidence'), 0, 'no evidence line dropped')

  reader.kill('SIGCONT')
  t.ok(await until(() => out().includes('"message":"log lines dropped'), 30_000), 'the backlog is out, and the count of what was dropped after it')
  const all = out().split('\n').filter(Boolean)
  const written = all.filter(l => l.includes(BIG)).length
  const lines = all.filter(l => !l.includes(BIG)).map(l => JSON.parse(l) as Record<string, any>)
  const blocks = lines.filter(l => l.message === 'dns.query' && l.event.action === 'block').map(l => l.dns.question.name as string)
  t.same(blocks, blocked, 'every block line, in order')
  const notice = lines.find(l => l.message === 'log lines dropped: stdout did not keep up')!
  t.match(notice, { 'log.level': 'error', tunnelguard: { dropped_evidence_lines: 0 } }, 'none of the dropped lines evidence')
  t.ok(written < passes, `pass lines dropped (${written} of ${passes} written)`)
  t.ok(written + notice.tunnelguard.dropped_lines >= passes, `each pass answered written or counted (${notice.tunnelguard.dropped_lines} dropped)`)
  s.kill('SIGTERM')
  t.equal(await Promise.race([exited, sleep(30_000).then(() => 'hung')]), 0, 'a normal stop')
})
