import t from 'tap'
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LineSink, type LineSinkOptions } from '../../src/observe/line-sink.js'

const tick = (): Promise<void> => new Promise(r => setImmediate(r))
const flushed = (s: LineSink): Promise<void> => new Promise(r => s.flush(() => r()))

function file(t: { teardown: (f: () => void) => void }): { fd: number; text: () => string } {
  const dir = mkdtempSync(join(tmpdir(), 'tg-sink-'))
  const path = join(dir, 'log')
  const fd = openSync(path, 'w')
  t.teardown(() => closeSync(fd))
  return { fd, text: () => readFileSync(path, 'utf8') }
}

type Fs = NonNullable<LineSinkOptions['fs']>
type WriteCb = (err: NodeJS.ErrnoException | null, n: number) => void

/** A write(2) stand-in: each call is recorded and answered by `answer`. */
function fakeFs(answer: (call: number, len: number) => number | NodeJS.ErrnoException): { fs: Fs; out: Buffer[]; calls: number[] } {
  const out: Buffer[] = []
  const calls: number[] = []
  const run = (buf: Buffer, off: number, len: number): number | NodeJS.ErrnoException => {
    const a = answer(calls.length, len)
    calls.push(len)
    if (typeof a === 'number') out.push(Buffer.from(buf.subarray(off, off + a)))
    return a
  }
  const fs = {
    write: ((_fd: number, buf: Buffer, off: number, len: number, _pos: null, cb: WriteCb) => {
      const a = run(buf, off, len)
      setImmediate(() => (typeof a === 'number' ? cb(null, a) : cb(a, 0)))
    }) as unknown as Fs['write'],
    writeSync: ((_fd: number, buf: Buffer, off: number, len: number) => {
      const a = run(buf, off, len)
      if (typeof a !== 'number') throw a
      return a
    }) as unknown as Fs['writeSync'],
  }
  return { fs, out, calls }
}

const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code })

t.test('with delayMs 0, the lines of one turn go out in one write, in order', async t => {
  const f = file(t)
  const fake = fakeFs((_c, len) => len)
  const sink = new LineSink({ fd: f.fd, fs: fake.fs, delayMs: 0 })
  t.teardown(() => sink.close())
  for (let i = 0; i < 100; i++) sink.write(`{"n":${i}}\n`)
  await flushed(sink)
  t.same(fake.calls.length, 1, 'one write for the whole turn')
  const lines = Buffer.concat(fake.out).toString().trim().split('\n')
  t.equal(lines.length, 100)
  t.same(lines.map(l => (JSON.parse(l) as { n: number }).n), [...Array(100).keys()])
})

t.test('lines of several turns within delayMs go out in one write', async t => {
  const fake = fakeFs((_c, len) => len)
  const sink = new LineSink({ fd: 99, fs: fake.fs, delayMs: 1000 })   // long enough that five ticks fit in it on a loaded CI box
  t.teardown(() => sink.close())
  const t0 = Date.now()
  for (let i = 0; i < 5; i++) { sink.write(`${i}\n`); await tick() }
  t.equal(fake.calls.length, 0, 'nothing written yet: the delay has not passed')
  await flushed(sink)
  t.ok(Date.now() - t0 >= 990, 'the write waited for the delay')
  t.same(fake.calls, [10], 'five turns, one write')
  t.equal(Buffer.concat(fake.out).toString(), '0\n1\n2\n3\n4\n')
})

t.test('a real file receives every line; lines queued during a write follow it', async t => {
  const f = file(t)
  const sink = new LineSink({ fd: f.fd, delayMs: 0 })
  t.teardown(() => sink.close())
  sink.write('a\n')
  await tick()
  sink.write('b\n')        // the first write is in flight now
  sink.write('c\n')
  await flushed(sink)
  t.equal(f.text(), 'a\nb\nc\n')
  await flushed(sink)
  t.equal(f.text(), 'a\nb\nc\n', 'a flush with nothing queued calls back and writes nothing')
  sink.write('d\n')
  sink.flushSync()
  t.equal(f.text(), 'a\nb\nc\nd\n', 'flushSync writes what waits at once')
})

t.test('a partial write continues where it stopped; EAGAIN is retried', async t => {
  const fake = fakeFs((call, len) => (call === 0 ? 3 : call === 1 ? errno('EAGAIN') : len))
  const sink = new LineSink({ fd: 99, fs: fake.fs, retryMs: 1 })
  t.teardown(() => sink.close())
  sink.write('hello\n')
  sink.write('world\n')
  await flushed(sink)
  t.equal(Buffer.concat(fake.out).toString(), 'hello\nworld\n')
  t.same(fake.calls, [12, 9, 9], 'the rest after 3 bytes, again after EAGAIN')
})

t.test('a write error is reported once; later lines are dropped, not queued', async t => {
  const errors: string[] = []
  const fake = fakeFs(() => errno('EPIPE'))
  const sink = new LineSink({ fd: 99, fs: fake.fs, onError: e => errors.push(e.code!) })
  t.teardown(() => sink.close())
  sink.write('x\n')
  await flushed(sink)
  sink.write('y\n')
  sink.flushSync()
  await flushed(sink)
  t.same(errors, ['EPIPE'])
  t.equal(fake.calls.length, 1, 'nothing written after the failure')
})

t.test('flushSync writes what waits, retrying EAGAIN, and reports a hard error', async t => {
  const fake = fakeFs((call, len) => (call === 0 ? errno('EAGAIN') : call === 1 ? 2 : len))
  const sink = new LineSink({ fd: 99, fs: fake.fs })   // the default 10 ms pause after EAGAIN
  sink.write('abcdef\n')
  sink.flushSync()
  t.equal(Buffer.concat(fake.out).toString(), 'abcdef\n')
  sink.flushSync()
  t.equal(fake.calls.length, 3, 'nothing left to write')
  sink.close()

  const errors: string[] = []
  const bad = fakeFs(() => errno('EBADF'))
  const sink2 = new LineSink({ fd: 99, fs: bad.fs, onError: e => errors.push(e.code!) })
  sink2.write('z\n')
  sink2.flushSync()
  t.same(errors, ['EBADF'])
  sink2.close()
})

t.test('what is still queued at exit is written synchronously', async t => {
  const { spawnSync } = await import('node:child_process')
  const mod = new URL('../../dist/observe/line-sink.js', import.meta.url).pathname   // npm test builds dist first
  const code = `import { LineSink } from ${JSON.stringify(mod)}
const s = new LineSink({ fd: 1 })
for (let i = 0; i < 3; i++) s.write('line ' + i + '\\n')
process.exit(0)`
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 20_000 })
  t.equal(r.stdout, 'line 0\nline 1\nline 2\n', r.stderr)
})

t.test('a stalled reader: lines past maxWaiting are dropped and counted, then one notice', async t => {
  const held: (() => void)[] = []
  const out: string[] = []
  const fs = {
    write: ((_fd: number, buf: Buffer, off: number, len: number, _pos: null, cb: WriteCb) => {
      held.push(() => { out.push(buf.subarray(off, off + len).toString()); cb(null, len) })
    }) as unknown as Fs['write'],
    writeSync: (() => 0) as unknown as Fs['writeSync'],
  }
  const sink = new LineSink({ fd: 99, fs, maxWaiting: 20, dropNotice: n => `dropped ${n}\n`, delayMs: 0 })
  t.teardown(() => sink.close())
  sink.write('first\n')
  await tick()                                   // the first write is in flight, and stalls
  for (let i = 0; i < 10; i++) sink.write(`line ${i}\n`)   // 7 chars each: two fit in 20
  t.equal(held.length, 1)
  held.shift()!()
  await tick()
  held.shift()!()
  await flushed(sink)
  t.same(out.join('').split('\n').filter(Boolean), ['first', 'line 0', 'line 1', 'dropped 8'])
  sink.write('after\n')
  await tick()
  held.shift()!()
  await flushed(sink)
  t.equal(out.join('').split('\n').filter(Boolean).at(-1), 'after', 'counting starts again')
})
