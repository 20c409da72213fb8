import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { LineSink } from '../../src/observe/line-sink.js'
import { sinkMode, type LineSinkOptions } from '../../src/observe/line-sink-options.js'

const tick = (): Promise<void> => new Promise(r => setImmediate(r))
const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))
const flushed = (s: LineSink): Promise<void> => new Promise(r => s.flush(() => r()))
const mod = new URL('../../dist/observe/line-sink.js', import.meta.url).pathname   // npm test builds dist first
const optionsMod = new URL('../../dist/observe/line-sink-options.js', import.meta.url).pathname

function file(t: { teardown: (f: () => void) => void }): { fd: number; text: () => string } {
  const dir = mkdtempSync(join(tmpdir(), 'tg-sink-'))
  const path = join(dir, 'log')
  const fd = openSync(path, 'w')
  t.teardown(() => closeSync(fd))
  return { fd, text: () => readFileSync(path, 'utf8') }
}

type WriteSync = NonNullable<LineSinkOptions['writeSync']>

/** A write(2) stand-in: each call is recorded and answered by `answer` (bytes taken, or an error thrown). */
function fakeWrite(answer: (call: number, len: number) => number | NodeJS.ErrnoException): { writeSync: WriteSync; out: Buffer[]; calls: number[] } {
  const out: Buffer[] = []
  const calls: number[] = []
  const writeSync = ((_fd: number, buf: Buffer, off: number, len: number) => {
    const a = answer(calls.length, len)
    calls.push(len)
    if (typeof a !== 'number') throw a
    out.push(Buffer.from(buf.subarray(off, off + a)))
    return a
  }) as unknown as WriteSync
  return { writeSync, out, calls }
}

/** A stream whose writes complete only when the test says so. */
function heldStream(): { stream: Writable; held: ((err?: Error) => void)[]; out: string[] } {
  const held: ((err?: Error) => void)[] = []
  const out: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      held.push(err => { if (!err) out.push(chunk.toString()); cb(err) })
    },
  })
  return { stream, held, out }
}

const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code })

t.test('the mode follows the fd: a pipe or a socket is a stream; a file, a device or an unknown fd is written in place', async t => {
  const st = (fifo: boolean, sock: boolean) => () => ({ isFIFO: () => fifo, isSocket: () => sock })
  t.equal(sinkMode(0, st(true, false)), 'stream')
  t.equal(sinkMode(0, st(false, true)), 'stream')
  t.equal(sinkMode(0, st(false, false)), 'sync')
  t.equal(sinkMode(0, () => { throw errno('EBADF') }), 'sync', 'fstat failed: the write will say why')
  const f = file(t)
  t.equal(sinkMode(f.fd), 'sync', 'a regular file')
  const nul = openSync('/dev/null', 'w')
  t.teardown(() => closeSync(nul))
  t.equal(sinkMode(nul), 'sync', '/dev/null')
})

t.test('with delayMs 0, the lines of one turn go out in one write, in order', async t => {
  const fake = fakeWrite((_c, len) => len)
  const sink = new LineSink({ fd: 99, mode: 'sync', writeSync: fake.writeSync, delayMs: 0 })
  t.teardown(() => sink.close())
  for (let i = 0; i < 100; i++) sink.write(`{"n":${i}}\n`)
  t.equal(fake.calls.length, 0, 'nothing is written during the turn')
  await flushed(sink)
  t.same(fake.calls.length, 1, 'one write for the whole turn')
  const lines = Buffer.concat(fake.out).toString().trim().split('\n')
  t.equal(lines.length, 100)
  t.same(lines.map(l => (JSON.parse(l) as { n: number }).n), [...Array(100).keys()])
})

t.test('lines given as bytes (writeBytes) go out in order with the others, under the same cap', async t => {
  const fake = fakeWrite((_c, len) => len)
  const sink = new LineSink({ fd: 99, mode: 'sync', writeSync: fake.writeSync, delayMs: 0, maxWaiting: 40 })
  t.teardown(() => sink.close())
  const scratch = Buffer.from('bytes 1\nleft over')
  sink.write('text 0\n')
  sink.writeBytes(scratch.subarray(0, 8))
  sink.writeBytes(Buffer.from('bytes 2\n'))
  sink.writeBytes(Buffer.from('this line is past the cap of 40 bytes\n'))
  sink.write('text 3\n')
  await flushed(sink)
  t.same(Buffer.concat(fake.out).toString(), 'text 0\nbytes 1\nbytes 2\ntext 3\n')
  const roomy = fakeWrite((_c, len) => len)
  const wide = new LineSink({ fd: 99, mode: 'sync', writeSync: roomy.writeSync, delayMs: 0 })
  t.teardown(() => wide.close())
  const big = Buffer.alloc(100_000, 0x61)
  big[big.length - 1] = 0x0a
  wide.write('small\n')
  wide.writeBytes(big)                            // more than the buffer in use holds
  await flushed(wide)
  t.same(Buffer.concat(roomy.out), Buffer.concat([Buffer.from('small\n'), big]), 'a line larger than the buffer')
  const bad = fakeWrite(() => errno('EBADF'))
  const failed = new LineSink({ fd: 99, mode: 'sync', writeSync: bad.writeSync, delayMs: 0, onError: () => {} })
  t.teardown(() => failed.close())
  failed.write('x\n')
  await flushed(failed)
  failed.writeBytes(Buffer.from('y\n'))
  await flushed(failed)
  t.same(bad.calls, [2], 'after a failed write, lines given as bytes are dropped too')
})

t.test('lines written in place (lineBuffer, endLine): in order, past one buffer, under the cap', async t => {
  const fake = fakeWrite((_c, len) => len)
  const sink = new LineSink({ fd: 99, mode: 'sync', writeSync: fake.writeSync, delayMs: 0 })
  t.teardown(() => sink.close())
  const want: string[] = []
  for (let i = 0; i < 200; i++) {                            // 200 kB: more than one buffer
    const line = `${String(i).padStart(3, '0')}${'z'.repeat(995)}\n`
    const b = sink.lineBuffer(line.length)!
    const end = sink.lineStart + b.write(line, sink.lineStart)
    sink.endLine(end)
    want.push(line)
  }
  await flushed(sink)
  t.equal(Buffer.concat(fake.out).toString(), want.join(''))
})

t.test('lines of several turns within delayMs go out in one write', async t => {
  const fake = fakeWrite((_c, len) => len)
  const sink = new LineSink({ fd: 99, mode: 'sync', writeSync: fake.writeSync, delayMs: 1000 })   // long enough that five ticks fit in it on a loaded CI box
  t.teardown(() => sink.close())
  const t0 = Date.now()
  for (let i = 0; i < 5; i++) { sink.write(`${i}\n`); await tick() }
  t.equal(fake.calls.length, 0, 'nothing written yet: the delay has not passed')
  await flushed(sink)
  t.ok(Date.now() - t0 >= 990, 'the write waited for the delay')
  t.same(fake.calls, [10], 'five turns, one write')
  t.equal(Buffer.concat(fake.out).toString(), '0\n1\n2\n3\n4\n')
})

t.test('a real file receives every line, batch after batch, UTF-8 and long lines intact', async t => {
  const f = file(t)
  const sink = new LineSink({ fd: f.fd, delayMs: 0 })
  t.teardown(() => sink.close())
  sink.write('a\n')
  await flushed(sink)
  t.equal(f.text(), 'a\n', 'the first batch is out')
  sink.write('b\n')
  sink.write('ü€😀\n')
  await flushed(sink)
  t.equal(f.text(), 'a\nb\nü€😀\n')
  await flushed(sink)
  t.equal(f.text(), 'a\nb\nü€😀\n', 'a flush with nothing queued calls back and writes nothing')
  // one batch over several 64 KiB buffers, and one line larger than a buffer
  const many = Array.from({ length: 3000 }, (_, i) => `${'x'.repeat(40)} ${i}\n`)
  const big = `${'y'.repeat(200_000)}\n`
  for (const l of many.slice(0, 1500)) sink.write(l)
  sink.write(big)
  for (const l of many.slice(1500)) sink.write(l)
  await flushed(sink)
  t.equal(f.text(), `a\nb\nü€😀\n${many.slice(0, 1500).join('')}${big}${many.slice(1500).join('')}`)
  for (let round = 0; round < 5; round++) {                  // buffers reused across batches keep nothing stale
    sink.write(`round ${round}\n`)
    await flushed(sink)
  }
  t.ok(f.text().endsWith('round 0\nround 1\nround 2\nround 3\nround 4\n'))
  sink.write('d\n')
  sink.flushSync()
  t.ok(f.text().endsWith('round 4\nd\n'), 'flushSync writes what waits at once')
})

t.test('a partial write continues where it stopped; EAGAIN is retried after retryMs, lines meanwhile wait', async t => {
  const fake = fakeWrite((call, len) => (call === 0 ? 3 : call === 1 ? errno('EAGAIN') : len))
  const sink = new LineSink({ fd: 99, mode: 'sync', writeSync: fake.writeSync, retryMs: 20, delayMs: 0 })
  t.teardown(() => sink.close())
  sink.write('hello\n')
  sink.write('world\n')
  await tick()
  t.same(fake.calls, [12, 9], 'the rest after 3 bytes, then EAGAIN')
  sink.write('later\n')                                      // the batch is stalled: this waits behind it
  await tick()
  t.same(fake.calls, [12, 9], 'nothing more until the retry')
  await flushed(sink)
  t.equal(Buffer.concat(fake.out).toString(), 'hello\nworld\nlater\n')
  t.same(fake.calls, [12, 9, 9, 6], 'the retry writes the rest, then the waiting line')
})

t.test('a write error is reported once; later lines are dropped, not queued', async t => {
  const errors: string[] = []
  const fake = fakeWrite(() => errno('EPIPE'))
  const sink = new LineSink({ fd: 99, mode: 'sync', writeSync: fake.writeSync, onError: e => errors.push(e.code!) })
  t.teardown(() => sink.close())
  sink.write('x\n')
  await flushed(sink)
  sink.write('y\n')
  sink.flushSync()
  await flushed(sink)
  t.same(errors, ['EPIPE'])
  t.equal(fake.calls.length, 1, 'nothing written after the failure')
})

t.test('flushSync writes a stalled batch first, then what waits, retrying EAGAIN; a hard error is reported', async t => {
  let stalled = true
  const fake = fakeWrite((call, len) => (stalled ? errno('EAGAIN') : call === 2 ? 2 : len))
  const sink = new LineSink({ fd: 99, mode: 'sync', writeSync: fake.writeSync, retryMs: 60_000, delayMs: 0 })
  sink.write('abc\n')
  await tick()
  t.same(fake.calls, [4], 'the batch stalled on EAGAIN; its retry is a minute away')
  sink.write('def\n')
  stalled = false
  sink.flushSync()
  t.equal(Buffer.concat(fake.out).toString(), 'abc\ndef\n')
  t.same(fake.calls, [4, 4, 4, 2], 'the stalled batch, then the waiting line in two parts')
  sink.write('ghi\n')
  await flushed(sink)
  t.equal(Buffer.concat(fake.out).toString(), 'abc\ndef\nghi\n', 'the sink goes on after flushSync')
  sink.close()

  const again = fakeWrite((call, len) => (call === 0 ? errno('EAGAIN') : len))
  const sink3 = new LineSink({ fd: 99, mode: 'sync', writeSync: again.writeSync, retryMs: 1 })
  sink3.write('xyz\n')
  sink3.flushSync()
  t.same(again.calls, [4, 4], 'EAGAIN in flushSync waits and tries again')
  sink3.close()

  const errors: string[] = []
  const bad = fakeWrite(() => errno('EBADF'))
  const sink2 = new LineSink({ fd: 99, mode: 'sync', writeSync: bad.writeSync, onError: e => errors.push(e.code!) })
  sink2.write('z\n')
  sink2.flushSync()
  t.same(errors, ['EBADF'])
  sink2.close()
})

t.test('a stalled reader (sync mode): lines past maxWaiting are dropped and counted, then one notice', async t => {
  let open = false
  const fake = fakeWrite((_c, len) => (open ? len : errno('EAGAIN')))
  const sink = new LineSink({ fd: 99, mode: 'sync', writeSync: fake.writeSync, maxWaiting: 20, retryMs: 5, dropNotice: n => `dropped ${n}\n`, delayMs: 0 })
  t.teardown(() => sink.close())
  sink.write('first\n')
  await tick()                                               // the batch is stalled on EAGAIN
  for (let i = 0; i < 10; i++) sink.write(`line ${i}\n`)     // 7 bytes each: 6 in flight + two fit in 20
  open = true
  await flushed(sink)
  t.same(Buffer.concat(fake.out).toString().split('\n').filter(Boolean), ['first', 'line 0', 'line 1', 'dropped 8'])
  sink.write('after\n')
  await flushed(sink)
  t.equal(Buffer.concat(fake.out).toString().split('\n').filter(Boolean).at(-1), 'after', 'counting starts again')
})

t.test('stream mode: one batch in flight at a time; a stalled stream drops past maxWaiting, then one notice', async t => {
  const h = heldStream()
  const sink = new LineSink({ fd: 99, mode: 'stream', stream: h.stream, maxWaiting: 20, dropNotice: n => `dropped ${n}\n`, delayMs: 0 })
  t.teardown(() => sink.close())
  sink.write('first\n')
  await tick()
  t.equal(h.held.length, 1, 'the first batch is in the stream')
  for (let i = 0; i < 10; i++) sink.write(`line ${i}\n`)
  await tick()
  t.equal(h.held.length, 1, 'the next batch waits for the first')
  h.held.shift()!()
  await tick()
  t.equal(h.held.length, 1, 'the waiting lines and the notice follow as one batch')
  h.held.shift()!()
  await flushed(sink)
  t.same(h.out.join('').split('\n').filter(Boolean), ['first', 'line 0', 'line 1', 'dropped 8'])
  sink.write('after\n')
  await tick()
  h.held.shift()!()
  await flushed(sink)
  t.equal(h.out.join('').split('\n').filter(Boolean).at(-1), 'after', 'counting starts again')
})

t.test('a stalled reader: past maxWaiting only evidence lines are taken, up to a reserve of a quarter more; their drops are counted apart', async t => {
  let open = false
  const said: string[] = []
  const fake = fakeWrite((_c, len) => (open ? len : errno('EAGAIN')))
  const sink = new LineSink({
    fd: 99, mode: 'sync', writeSync: fake.writeSync, maxWaiting: 40, retryMs: 5, delayMs: 0,
    dropNotice: (n, evidence) => `dropped ${n} (${evidence} evidence)\n`, onDropping: (max, reserve) => said.push(`dropping past ${max} (+${reserve})`),
  })
  t.teardown(() => sink.close())
  sink.write('first\n')
  await tick()                                               // the batch (6 bytes) is stalled on EAGAIN
  for (let i = 0; i < 5; i++) sink.write(`pass ${i}\n`)     // 7 bytes each: four fit in 40 (34 bytes)
  t.same(sink.lost, { behind: 1, behindEvidence: 0, failed: 0 }, 'pass 4 is past maxWaiting')
  t.same(said, ['dropping past 40 (+10)'], 'said once, with the reserve (a quarter of maxWaiting)')
  sink.write('ev 0\n', true)                                // 5 bytes: 39, within maxWaiting
  sink.write('pass 5\n')                                    // 46: dropped
  sink.write('ev 1\n', true)                                // 44: in the reserve
  sink.write('pass 6\n', false)                             // dropped
  sink.write('ev 2\n', true)                                // 49
  sink.write('ev 3\n', true)                                // 54: past the reserve too
  sink.write('e4\n', true)                                  // 52: still past
  t.same(sink.lost, { behind: 3, behindEvidence: 2, failed: 0 })
  t.same(said, ['dropping past 40 (+10)'], 'one notice for the episode')
  open = true
  await flushed(sink)
  t.same(Buffer.concat(fake.out).toString().split('\n').filter(Boolean), [
    'first', 'pass 0', 'pass 1', 'pass 2', 'pass 3', 'ev 0', 'ev 1', 'ev 2', 'dropped 5 (2 evidence)',
  ], 'the lines kept, in the order written; the notice counts both')
  sink.write('pass 7\n')
  sink.write('ev 5\n', true)
  await flushed(sink)
  t.same(Buffer.concat(fake.out).toString().split('\n').filter(Boolean).slice(-2), ['pass 7', 'ev 5'], 'counting starts again')
  t.same(sink.lost, { behind: 3, behindEvidence: 2, failed: 0 }, 'the totals stay')
})

t.test('evidence given as bytes or written in place (stream mode): the same reserve; evidenceReserve sets it', async t => {
  const h = heldStream()
  const sink = new LineSink({
    fd: 99, mode: 'stream', stream: h.stream, maxWaiting: 20, evidenceReserve: 12, delayMs: 0,
    dropNotice: (n, evidence) => `dropped ${n}/${evidence}\n`,
  })
  t.teardown(() => sink.close())
  const inPlace = (line: string, evidence?: boolean): void => {
    const b = sink.lineBuffer(line.length)!
    sink.endLine(sink.lineStart + b.write(line, sink.lineStart), evidence)
  }
  sink.write('first\n')
  await tick()
  t.equal(h.held.length, 1, 'the first batch (6 bytes) is in the stream, and stays there')
  inPlace('aaaaaa\n')                                        // 13
  inPlace('bbbbbb\n')                                        // 20
  sink.writeBytes(Buffer.from('cc\n'))                       // 23: dropped
  inPlace('dd\n')                                            // dropped
  sink.writeBytes(Buffer.from('EE\n'), true)                 // 23: in the reserve
  inPlace('FFFFFF\n', true)                                  // 30
  inPlace('GG\n', true)                                      // 33: past 20 + 12
  sink.writeBytes(Buffer.from('H\n'), true)                  // 32
  inPlace('I\n', true)                                       // 34: past
  t.same(sink.lost, { behind: 2, behindEvidence: 2, failed: 0 })
  h.held.shift()!()
  await tick()
  h.held.shift()!()
  await flushed(sink)
  t.same(h.out.join('').split('\n').filter(Boolean), ['first', 'aaaaaa', 'bbbbbb', 'EE', 'FFFFFF', 'H', 'dropped 4/2'])
  const none = heldStream()
  const strict = new LineSink({ fd: 99, mode: 'stream', stream: none.stream, maxWaiting: 10, evidenceReserve: 0, delayMs: 0 })
  t.teardown(() => strict.close())
  strict.write('first\n')
  await tick()
  strict.write('ev\n', true)                                  // 9
  strict.write('ev\n', true)                                  // 12: no reserve
  t.same(strict.lost, { behind: 0, behindEvidence: 1, failed: 0 }, 'no reserve: dropped at maxWaiting, still counted as evidence')
})

t.test('the buffers of a batch are reused for the next: a batch over several takes no new ones', async t => {
  const seen: ArrayBufferLike[][] = [[]]
  const writeSync = ((_fd: number, buf: Buffer, _off: number, len: number) => {
    if (!seen[seen.length - 1]!.includes(buf.buffer)) seen[seen.length - 1]!.push(buf.buffer)
    return len
  }) as unknown as WriteSync
  const sink = new LineSink({ fd: 99, mode: 'sync', writeSync, delayMs: 0 })
  t.teardown(() => sink.close())
  const batch = async () => {
    for (let i = 0; i < 4000; i++) sink.write(`${'z'.repeat(40)} ${i}\n`)   // 176 kB: three buffers
    await flushed(sink)
  }
  await batch()
  t.equal(seen[0]!.length, 3, 'the first batch in three buffers')
  for (let round = 1; round <= 3; round++) {
    seen.push([])
    await batch()
    const fresh = seen[round]!.filter(b => !seen.slice(0, round).some(s => s.includes(b)))
    t.equal(seen[round]!.length, 3, `batch ${round + 1} in three buffers`)
    t.ok(fresh.length <= 1, `batch ${round + 1}: ${fresh.length} buffer(s) not seen before`)
  }
  t.equal(seen[3]!.filter(b => !seen.slice(0, 3).some(s => s.includes(b))).length, 0, 'by the fourth batch, none')
})

t.test('stream mode: a batch over several buffers goes out whole; a stream error is reported once', async t => {
  const h = heldStream()
  const errors: string[] = []
  const sink = new LineSink({ fd: 99, mode: 'stream', stream: h.stream, delayMs: 0, onError: e => errors.push(e.code!) })
  t.teardown(() => sink.close())
  const lines = Array.from({ length: 4000 }, (_, i) => `${'z'.repeat(40)} ${i}\n`)
  for (const l of lines) sink.write(l)
  await tick()
  while (h.held.length > 0) { h.held.shift()!(); await tick() }
  await flushed(sink)
  t.ok(h.out.length >= 3, `176 kB in ${h.out.length} buffers`)
  t.equal(h.out.join(''), lines.join(''))
  sink.write('x\n')
  await tick()
  h.held.shift()!(errno('EPIPE'))
  await sleep(10)
  sink.write('y\n')
  await tick()
  t.same(errors, ['EPIPE'], 'reported once')
  t.equal(h.held.length, 0, 'nothing written after the failure')
})

t.test('stdout as a pipe: a stream by default; every line arrives in order; what waits at exit is written', async t => {
  const code = `import { LineSink } from ${JSON.stringify(mod)}
import { sinkMode } from ${JSON.stringify(optionsMod)}
process.stderr.write(sinkMode(1))
const s = new LineSink({ fd: 1 })
let i = 0
const more = () => { for (let k = 0; k < 500; k++, i++) s.write('line ' + i + '\\n'); if (i < 5000) setTimeout(more, 1); else s.flush(() => { s.write('last\\n'); process.exit(0) }) }
more()`
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 20_000, maxBuffer: 1 << 24 })
  t.equal(r.stderr, 'stream')
  const want = [...Array.from({ length: 5000 }, (_, i) => `line ${i}`), 'last']
  t.same(r.stdout.split('\n').filter(Boolean), want, 'the last line was still waiting at exit')
})

t.test('stdout as a pipe nobody reads: the process goes on, drops past maxWaiting, and says so once the reader is back', async t => {
  const code = `import { LineSink } from ${JSON.stringify(mod)}
const s = new LineSink({ fd: 1, maxWaiting: 1 << 20, dropNotice: n => 'dropped ' + n + '\\n' })
let i = 0
const line = 'x'.repeat(1000) + '\\n'
const tick = () => { for (let k = 0; k < 200; k++, i++) s.write(line); process.stderr.write('.'); if (i < 20000) setTimeout(tick, 2) ; else process.stderr.write('done') }
tick()
process.stdin.on('data', () => { s.flush(() => process.exit(0)) })`
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['pipe', 'pipe', 'pipe'] })
  t.teardown(() => child.kill())
  child.stdout.pause()                                       // nobody reads: the pipe fills (64 KiB)
  let err = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "done" from the writer: ${err}`)), 20_000)
    child.stderr.on('data', d => { err += String(d); if (err.endsWith('done')) { clearTimeout(timer); resolve() } })
  })
  t.ok(err.length > 100, 'the writer kept running while its stdout was stuck')
  let out = ''
  child.stdout.on('data', d => { out += String(d) })
  child.stdout.resume()
  child.stdin.write('go\n')
  await new Promise(r => child.once('exit', r))
  const lines = out.split('\n').filter(Boolean)
  const notice = lines.filter(l => l.startsWith('dropped '))
  t.equal(notice.length, 1, 'one notice')
  const dropped = Number(notice[0]!.slice(8))
  t.ok(dropped > 10_000, `most lines dropped (${dropped})`)
  t.equal(lines.length - 1 + dropped, 20_000, 'every line is either written or counted')
  t.ok(lines.slice(0, -1).every(l => l.length === 1000), 'written lines are whole')
})

t.test('a full disk (ENOSPC) is not the end of the log: the batch is tried again, lines wait (bounded), and it goes on once there is room', async t => {
  let full = true
  const said: string[] = []
  const fake = fakeWrite((_c, len) => (full ? errno('ENOSPC') : len))
  const sink = new LineSink({
    fd: 99, mode: 'sync', writeSync: fake.writeSync, delayMs: 0, stuckMs: 20, maxWaiting: 30,
    dropNotice: n => `dropped ${n}\n`, onError: e => said.push(`error ${e.code}`),
    onStuck: e => said.push(`stuck ${e.code}`), onResumed: () => said.push('resumed'), onDropping: max => said.push(`dropping past ${max}`),
  })
  t.teardown(() => sink.close())
  sink.write('first\n')
  await tick()
  for (let i = 0; i < 6; i++) sink.write(`line ${i}\n`)     // 7 bytes each: 6 in flight + three fit in 30
  await sleep(60)
  t.same(said, ['stuck ENOSPC', 'dropping past 30'], 'said once each, not once per retry; never the end of the log')
  t.ok(fake.calls.length >= 2, `tried again (${fake.calls.length} writes)`)
  full = false
  await flushed(sink)
  t.same(Buffer.concat(fake.out).toString().split('\n').filter(Boolean), ['first', 'line 0', 'line 1', 'line 2', 'dropped 3'])
  t.same(said, ['stuck ENOSPC', 'dropping past 30', 'resumed'])
  t.same(sink.lost, { behind: 3, behindEvidence: 0, failed: 0 })
  sink.write('after\n')
  await flushed(sink)
  t.equal(Buffer.concat(fake.out).toString().split('\n').filter(Boolean).at(-1), 'after')
  sink.write('x'.repeat(40) + '\n')
  t.same(said.at(-1), 'dropping past 30', 'a new episode is said again')
})

t.test('after the log failed for good (EPIPE) every line given is counted as lost, however it is given', async t => {
  const fake = fakeWrite(() => errno('EPIPE'))
  const sink = new LineSink({ fd: 99, mode: 'sync', writeSync: fake.writeSync, delayMs: 0, onError: () => {} })
  t.teardown(() => sink.close())
  sink.write('w\nx\n')
  await flushed(sink)
  t.same(sink.lost, { behind: 0, behindEvidence: 0, failed: 2 }, 'the lines of the batch that failed')
  sink.write('y\n')
  sink.writeBytes(Buffer.from('z\n'))
  t.equal(sink.lineBuffer(10), undefined)
  t.same(sink.lost, { behind: 0, behindEvidence: 0, failed: 5 }, 'and each line after it')

  // a write that took part of a batch: the lines not wholly written, and those waiting behind it
  const part = fakeWrite(call => (call === 0 ? 3 : errno('EBADF')))
  const sink2 = new LineSink({ fd: 99, mode: 'sync', writeSync: part.writeSync, delayMs: 0, retryMs: 60_000, onError: () => {} })
  t.teardown(() => sink2.close())
  sink2.write('ab\ncd\n')
  sink2.write('ef\n')
  await flushed(sink2)
  t.equal(Buffer.concat(part.out).toString(), 'ab\n')
  t.same(sink2.lost, { behind: 0, behindEvidence: 0, failed: 2 })

  // at exit (flushSync)
  const exit = fakeWrite(call => (call === 0 ? 3 : errno('EPIPE')))
  const sink3 = new LineSink({ fd: 99, mode: 'sync', writeSync: exit.writeSync, delayMs: 200, onError: () => {} })
  sink3.write('ab\n')
  sink3.write('cd\n')
  sink3.write('ef\n')
  sink3.close()
  t.same(sink3.lost, { behind: 0, behindEvidence: 0, failed: 2 }, 'the lines flushSync could not write')

  // stream mode: the batch in the stream, and what waits behind it
  const h = heldStream()
  const sink4 = new LineSink({ fd: 99, mode: 'stream', stream: h.stream, delayMs: 0, onError: () => {} })
  t.teardown(() => sink4.close())
  sink4.write('a\nb\n')
  await tick()
  sink4.write('c\n')
  h.held.shift()!(errno('EPIPE'))
  await tick()
  t.same(sink4.lost, { behind: 0, behindEvidence: 0, failed: 3 })
})

t.test('notices: said at once when stderr is another file; one that throws is lost without a word, never thrown', async t => {
  const said: string[] = []
  const sink = new LineSink({ fd: 99, mode: 'sync', writeSync: fakeWrite((_c, len) => len).writeSync, notices: { write: s => said.push(s) } })
  t.teardown(() => sink.close())
  sink.notice('one\n')
  t.same(said, ['one\n'], 'at once, not with the next batch')
  let calls = 0
  const broken = new LineSink({ fd: 99, mode: 'sync', writeSync: fakeWrite((_c, len) => len).writeSync, notices: { write: () => { calls++; throw errno('ENOSPC') } } })
  t.teardown(() => broken.close())
  t.doesNotThrow(() => broken.notice('two\n'))
  t.equal(calls, 1, 'tried once: the failure is not said on stderr again')
  const none = new LineSink({ fd: 99, mode: 'sync', writeSync: fakeWrite((_c, len) => len).writeSync })
  t.teardown(() => none.close())
  t.doesNotThrow(() => none.notice('nowhere\n'))
})

t.test('notices on the same file (2>&1), sync mode: never inside a line a partial write cut; in order, between batches', async t => {
  let room = 10                                              // bytes the fd takes before it is full
  const fake = fakeWrite((_c, len) => {
    if (room === 0) return errno('ENOSPC')
    const n = Math.min(room, len)
    room -= n
    return n
  })
  const stderr: string[] = []
  const sink = new LineSink({
    fd: 99, mode: 'sync', writeSync: fake.writeSync, delayMs: 0, stuckMs: 20, noticesShareFd: true,
    notices: { write: s => stderr.push(s) },
  })
  t.teardown(() => sink.close())
  sink.notice('idle: written at once\n')
  t.equal(Buffer.concat(fake.out).toString(), 'idle: writ', 'through the sink: an idle sink writes it now')
  room = 1000
  await sleep(30)
  sink.write('{"a":1}\n{"b":2}\n')
  await tick()
  room = 3
  sink.write('{"c":3}\n')
  sink.write('{"d":4}\n')
  await tick()                                               // the batch: 3 bytes of {"c":3}, then ENOSPC
  sink.notice('notice 1\n')
  sink.write('{"e":5}\n')
  sink.notice('notice 2\n')
  await sleep(50)
  t.notOk(Buffer.concat(fake.out).toString().includes('notice'), 'held while the line is cut')
  room = 1000
  await flushed(sink)
  t.same(Buffer.concat(fake.out).toString().split('\n'), [
    'idle: written at once', '{"a":1}', '{"b":2}', '{"c":3}', '{"d":4}', 'notice 1', 'notice 2', '{"e":5}', '',
  ], 'right after the batch that was cut, before the lines that waited behind it')
  t.same(stderr, [], 'not written to stderr besides')
})

t.test('notices on the same file, stream mode: held while a batch is in the stream, then first in the next', async t => {
  const h = heldStream()
  const sink = new LineSink({ fd: 99, mode: 'stream', stream: h.stream, delayMs: 0, noticesShareFd: true, notices: { write: () => t.fail('not on stderr') } })
  t.teardown(() => sink.close())
  sink.write('{"a":1}\n')
  await tick()
  sink.notice('notice\n')
  sink.write('{"b":2}\n')
  await tick()
  t.equal(h.held.length, 1, 'one batch in the stream')
  h.held.shift()!()
  await tick()
  h.held.splice(0).forEach(f => f())
  await tick()
  h.held.splice(0).forEach(f => f())
  t.same(h.out.join('').split('\n'), ['{"a":1}', 'notice', '{"b":2}', ''])
  // a batch that fails with notices in it: only its log lines are counted as lost
  sink.write('{"c":3}\n')
  await tick()
  sink.notice('n1\nn2\n')
  sink.write('{"d":4}\n')
  h.held.shift()!()
  await tick()
  h.held.splice(0).forEach(f => f(errno('EPIPE')))
  await tick()
  t.same(sink.lost, { behind: 0, behindEvidence: 0, failed: 1 }, '{"d":4}, not the two notices before it')
})

t.test('notices on the same file at exit (flushSync): after the rest of the stalled batch, before the lines that wait', async t => {
  let full = true
  const fake = fakeWrite((c, len) => (c === 0 ? 2 : full ? errno('EAGAIN') : len))
  const sink = new LineSink({ fd: 99, mode: 'sync', writeSync: fake.writeSync, delayMs: 0, retryMs: 60_000, noticesShareFd: true })
  sink.write('{"a":1}\n')
  await tick()
  sink.notice('notice\n')
  sink.write('{"b":2}\n')
  full = false
  sink.close()
  t.same(Buffer.concat(fake.out).toString().split('\n'), ['{"a":1}', 'notice', '{"b":2}', ''])
})

t.test('finish: resolves once all is written; past its bound it gives up, counts what was not written, and lets the process go', async t => {
  const ok = new LineSink({ fd: 99, mode: 'sync', writeSync: fakeWrite((_c, len) => len).writeSync, delayMs: 0 })
  t.teardown(() => ok.close())
  ok.write('a\n')
  t.equal(await ok.finish(60_000), undefined, 'written: nothing left')

  // sync mode, a full disk: a line cut, the batch retried, lines waiting behind it
  const stderr: string[] = []
  const fake = fakeWrite(c => (c === 0 ? 3 : errno('ENOSPC')))
  const stuck = new LineSink({
    fd: 99, mode: 'sync', writeSync: fake.writeSync, delayMs: 0, stuckMs: 10, noticesShareFd: true,
    notices: { write: s => stderr.push(s) }, onError: () => t.fail('a give-up is not a write error'),
  })
  t.teardown(() => stuck.close())
  stuck.write('{"a":1}\n{"b":2}\n')
  await tick()
  stuck.notice('held\n')
  stuck.write('{"c":3}\n')
  const t0 = Date.now()
  const left = await stuck.finish(100)
  t.ok(Date.now() - t0 >= 90, 'waited for its bound')
  t.same(left, { lines: 3, bytes: 16 + 8 - 3 }, 'the lines not wholly written, and their bytes, the notice not among them')
  t.same(stuck.lost, { behind: 0, behindEvidence: 0, failed: 3 })
  t.same(stderr, ['\nheld\n'], 'the notice that waited is said, on a line of its own after the cut line')
  stuck.notice('after\n')
  t.same(stderr.at(-1), 'after\n', 'the newline once')
  const calls = fake.calls.length
  await sleep(50)
  t.equal(fake.calls.length, calls, 'not tried again')
  stuck.write('{"d":4}\n')
  t.same(stuck.lost, { behind: 0, behindEvidence: 0, failed: 4 }, 'a line given after it is lost, and counted')
  t.equal(await stuck.finish(10), undefined, 'finished already')

  // stream mode: the batch in the stream, whole; the stream is destroyed (its write would hold the process)
  const h = heldStream()
  const said: string[] = []
  const s = new LineSink({ fd: 99, mode: 'stream', stream: h.stream, delayMs: 0, noticesShareFd: true, notices: { write: x => said.push(x) } })
  t.teardown(() => s.close())
  s.write('{"a":1}\n')
  await tick()
  s.write('{"b":2}\n{"c":3}\n')
  t.same(await s.finish(20), { lines: 3, bytes: 24 })
  t.ok(h.stream.destroyed, 'the stream is destroyed')
  s.notice('stopped\n')
  t.same(said, ['\nstopped\n'], 'a line of the batch may be cut: the notice starts on a line of its own')

  // notices in the batch in the stream are neither lines nor bytes of the log
  const h3 = heldStream()
  const s3 = new LineSink({ fd: 99, mode: 'stream', stream: h3.stream, delayMs: 0, noticesShareFd: true })
  t.teardown(() => s3.close())
  s3.write('{"a":1}\n')
  await tick()
  s3.notice('notice\n')
  s3.write('{"b":2}\n')
  h3.held.shift()!()
  await tick()
  t.same(await s3.finish(20), { lines: 1, bytes: 8 }, '{"b":2} only')

  // a sync batch stopped at a line's end: no newline before the notice
  const clean = fakeWrite(c => (c === 0 ? 4 : errno('EAGAIN')))
  const said2: string[] = []
  const s2 = new LineSink({ fd: 99, mode: 'sync', writeSync: clean.writeSync, delayMs: 0, retryMs: 5, noticesShareFd: true, notices: { write: x => said2.push(x) } })
  t.teardown(() => s2.close())
  s2.write('{a}\n{b}\n')
  t.same(await s2.finish(30), { lines: 1, bytes: 4 })
  s2.notice('stopped\n')
  t.same(said2, ['stopped\n'])
})
