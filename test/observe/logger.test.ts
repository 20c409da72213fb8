import t from 'tap'
import { Writable } from 'node:stream'
import { createLogger, ECS_VERSION } from '../../src/observe/logger.js'

function sink(): { stream: Writable; lines: () => Record<string, unknown>[]; text: () => string } {
  const chunks: string[] = []
  const stream = new Writable({ write(c, _e, cb) { chunks.push(String(c)); cb() } })
  return { stream, lines: () => chunks.join('').split('\n').filter(Boolean).map(l => JSON.parse(l) as Record<string, unknown>), text: () => chunks.join('') }
}

t.test('ECS fields from pino options, no pid or hostname', async t => {
  const s = sink()
  const log = createLogger({ level: 'info', destination: s.stream, clock: () => Date.UTC(2026, 10, 21, 10, 0, 1, 5) })
  log.info({ client: { ip: '10.0.0.5' } }, 'started')
  log.debug('hidden')
  log.warn('careful')
  const [a, b, c] = s.lines()
  t.same(a, {
    'log.level': 'info', '@timestamp': '2026-11-21T10:00:01.005Z', 'ecs.version': ECS_VERSION,
    client: { ip: '10.0.0.5' }, message: 'started',
  })
  t.equal(b!['log.level'], 'warn')
  t.equal(b!.message, 'careful')
  t.equal(c, undefined, 'debug is below the level')
  t.notOk('pid' in a! || 'hostname' in a! || 'time' in a! || 'level' in a!)
})

t.test('a message field in the object is the message', async t => {
  const s = sink()
  const log = createLogger({ level: 'warn', destination: s.stream })
  const before = Date.now()
  log.warn({ message: 'dns.query', event: { action: 'block' } })
  const [line] = s.lines()
  t.equal(line!.message, 'dns.query')
  t.ok(Date.parse(line!['@timestamp'] as string) >= before - 1000, 'the default clock is the wall clock')
})

t.test('stdout by default', async t => {
  const log = createLogger({ level: 'silent' })
  t.equal(log.level, 'silent')
  t.notOk(log.isLevelEnabled('error'))
})

t.test('recordWriter and bodyWriter: the same line as the logger method, for createLogger and any pino logger', async t => {
  const { pino } = await import('pino')
  const { bodyWriter, recordWriter } = await import('../../src/observe/logger.js')
  const s = sink()
  const log = createLogger({ level: 'info', destination: s.stream, clock: () => Date.UTC(2026, 10, 21, 10, 0, 1, 5) })
  const rec = { message: 'dns.query', event: { action: 'block' }, dns: { question: { name: 'a"b\\c.ngrok.io' } } }
  log.warn(rec)
  recordWriter(log)('warn', rec)
  bodyWriter(log)('warn', JSON.stringify(rec).slice(1))
  const [a, b, c] = s.lines()
  t.same(b, a, 'fast line equals pino\'s line')
  t.same(c, a, 'the line from JSON text equals pino\'s line')
  const chunks: string[] = []
  const plain = pino({ base: null, timestamp: false }, { write: (c: string) => { chunks.push(c) } })
  recordWriter(plain)('info', { message: 'x' })
  bodyWriter(plain)('info', '"message":"x","n":1}')
  t.match(JSON.parse(chunks[0]!), { level: 30, message: 'x' }, 'another logger: its own method')
  t.match(JSON.parse(chunks[1]!), { level: 30, message: 'x', n: 1 }, 'another logger: parsed, then its own method')
})

t.test('messageWriter: the line pino writes for logger[level](fields, msg), level checked', async t => {
  const { pino } = await import('pino')
  const { messageWriter } = await import('../../src/observe/logger.js')
  const { ecsFields } = await import('../../src/observe/ecs-fields.js')
  const s = sink()
  const log = createLogger({ level: 'info', destination: s.stream, clock: () => Date.UTC(2026, 10, 29, 23, 0, 0, 7) })
  const say = messageWriter(log)
  const cases: [string, Record<string, unknown> | undefined][] = [
    ['proxy.sni_mismatch', { 'client.ip': '10.0.0.5', 'destination.port': 443, 'tls.client.server_name': 'a"b\\c\u2028.ngrok.io' }],
    ['proxy.listening', { addresses: [{ address: '127.0.0.1', port: 3128 }], gone: undefined }],
    ['no fields', undefined],
    ['empty fields', {}],
    ['its own kind', { 'event.kind': 'state', n: 1 }],
  ]
  for (const [msg, fields] of cases) {
    // ECS event.kind on every operational line: event, first, unless the fields give one
    const kind = fields?.['event.kind'] === undefined ? { 'event.kind': 'event' } : {}
    log.warn({ ...kind, ...(fields === undefined ? {} : ecsFields(fields)) }, msg)
    say('warn', msg, fields)
  }
  const lines = s.lines()
  t.equal(lines.length, 10)
  for (let i = 0; i < 10; i += 2) t.same(lines[i + 1], lines[i], `fast line equals pino's line: ${cases[i / 2]![0]}`)
  t.same(lines.map(l => l['event.kind']), [...Array(8).fill('event'), 'state', 'state'], 'event.kind: event, or the one given')
  t.ok(s.text().split('\n').slice(0, 8).every(l => l.includes(',"ecs.version":"8.11.0","event.kind":"event",')), 'written first')
  t.notOk('tunnelguard.gone' in lines[3]!, 'undefined fields are left out, as pino does')
  t.match(lines[3], { 'tunnelguard.addresses': [{ address: '127.0.0.1', port: 3128 }] }, 'custom fields under tunnelguard.')
  // what JSON.stringify cannot take goes through pino's own stringify
  const cyclic: Record<string, unknown> = { a: 1 }
  cyclic.self = cyclic
  say('error', 'big', { n: 10n })
  say('error', 'cycle', cyclic)
  const [big, cycle] = s.lines().slice(10)
  t.match(big, { 'log.level': 'error', 'event.kind': 'event', message: 'big', 'tunnelguard.n': 10 }, 'a BigInt: written by pino')
  t.match(cycle, { 'log.level': 'error', 'event.kind': 'event', message: 'cycle', 'tunnelguard.a': 1, 'tunnelguard.self': { a: 1 } }, 'a cycle: written by pino')
  say('error', 'big state', { n: 11n, 'event.kind': 'state' })
  t.match(s.lines().at(-1), { 'event.kind': 'state', message: 'big state', 'tunnelguard.n': 11 }, 'through pino too, the event.kind given is kept')
  say('debug' as 'info', 'hidden')
  const quiet = createLogger({ level: 'error', destination: s.stream })
  messageWriter(quiet)('warn', 'below the level', { a: 1 })
  t.equal(s.lines().length, 13, 'nothing below the level')
  const chunks: string[] = []
  const plain = pino({ base: null, timestamp: false }, { write: (c: string) => { chunks.push(c) } })
  messageWriter(plain)('info', 'x', { n: 1 })
  messageWriter(plain)('info', 'y')
  t.match(JSON.parse(chunks[0]!), { level: 30, msg: 'x', 'event.kind': 'event', 'tunnelguard.n': 1 }, 'another logger: its own method')
  t.match(JSON.parse(chunks[1]!), { level: 30, msg: 'y', 'event.kind': 'event' }, 'another logger, no fields')
})

t.test('a failed stdout is reported once on stderr', async t => {
  const { stdoutFailed } = await import('../../src/observe/logger.js')
  const said: string[] = []
  stdoutFailed(Object.assign(new Error('broken pipe'), { code: 'EPIPE' }), { write: s => said.push(s) })
  stdoutFailed(new Error('no code'), { write: s => said.push(s) })
  t.match(said[0], /cannot be written to stdout \(EPIPE\); lines are dropped from now on, and counted in tunnelguard_log_lines_dropped_total\{reason="failed"\}/)
  t.match(said[1], /\(no code\)/)
})

t.test('a full disk, its end, and lines dropped behind a slow stdout are each said on stderr', async t => {
  const { stdoutBehind, stdoutResumed, stdoutStuck } = await import('../../src/observe/logger.js')
  const said: string[] = []
  const stderr = { write: (s: string) => said.push(s) }
  stdoutStuck(Object.assign(new Error('no space'), { code: 'ENOSPC' }), stderr)
  stdoutResumed(stderr)
  stdoutBehind(64 << 20, 16 << 20, stderr)
  stdoutBehind(1 << 20, 1 << 18, stderr)
  t.equal(said[0], 'tunnelguard: the log cannot be written to stdout (ENOSPC); it is tried again every second, and lines wait meanwhile (past 64 MiB they are dropped and counted; block, sinkhole and alert decisions past 80 MiB)\n')
  t.equal(said[1], 'tunnelguard: the log is written to stdout again\n')
  t.equal(said[2], 'tunnelguard: stdout is not taking the log (64 MiB of lines wait); lines are dropped (block, sinkhole and alert decisions past 16 MiB more), and counted in tunnelguard_log_lines_dropped_total{reason="behind"} (those decisions: {reason="behind_evidence"}) and in a line once it moves\n')
  t.match(said[3], /\(1 MiB of lines wait\); lines are dropped \(block, sinkhole and alert decisions past 0\.25 MiB more\)/, 'a reserve under 1 MiB')
})

t.test('lostLines: what the stdout sink lost; another logger loses none it knows of', async t => {
  const { lostLines } = await import('../../src/observe/logger.js')
  const own = createLogger({ level: 'info' })              // a LineSink on fd 1; nothing is written
  t.same(lostLines(own)(), { behind: 0, behindEvidence: 0, failed: 0 })
  const other = createLogger({ level: 'info', destination: new Writable({ write(_c, _e, cb) { cb() } }) })
  t.same(lostLines(other)(), { behind: 0, behindEvidence: 0, failed: 0 })
})

t.test('the dropped-lines notice is one ECS line with the count, and how many of them were evidence', async t => {
  const { droppedLine } = await import('../../src/observe/logger.js')
  const line = droppedLine(() => ',"@timestamp":"2026-11-29T10:00:00.000Z"')(42, 5)
  t.ok(line.endsWith('\n'))
  t.same(JSON.parse(line), {
    'log.level': 'error', '@timestamp': '2026-11-29T10:00:00.000Z', 'ecs.version': ECS_VERSION, 'event.kind': 'event',
    message: 'log lines dropped: stdout did not keep up', tunnelguard: { dropped_lines: 42, dropped_evidence_lines: 5 },
  })
})

t.test('evidence lines (recordWriter, bodyWriter, lineTarget) are kept past maxWaiting up to the reserve; others are not', async t => {
  const { LineSink } = await import('../../src/observe/line-sink.js')
  const { bodyWriter, droppedLine, lineTarget, logSink, recordWriter } = await import('../../src/observe/logger.js')
  const { JsonBytes } = await import('../../src/observe/json-bytes.js')
  let open = false
  const out: string[] = []
  const said: string[] = []
  const writeSync = ((_fd: number, b: Buffer, off: number, len: number) => {
    if (!open) throw Object.assign(new Error('EAGAIN'), { code: 'EAGAIN' })
    out.push(b.toString('utf8', off, off + len)); return len
  }) as never
  // logSink: stdout's sink as createLogger makes it, its dropping said on notices
  const ls = logSink({
    fd: 99, mode: 'sync', delayMs: 0, retryMs: 5, maxWaiting: 1600, evidenceReserve: 600, writeSync,
    notices: { write: s => said.push(s) }, dropNotice: droppedLine(() => ''),
  })
  t.teardown(() => ls.close())
  t.ok(ls instanceof LineSink)
  const log = createLogger({ level: 'info', destination: ls, clock: () => 0 })
  const head = `{"log.level":"info","@timestamp":"1970-01-01T00:00:00.000Z","ecs.version":"${ECS_VERSION}",`.length
  const pad = 'x'.repeat(200 - head - 17)                     // lines of 200 bytes (n of two digits)
  log.info('first')                                           // 123 bytes
  await new Promise(r => setImmediate(r))                     // stalled on EAGAIN
  const target = lineTarget(log)!
  const w = new JsonBytes()
  const writers = [
    (n: number, evidence?: boolean): void => { t.ok(target.begin('info', w)); w.json(`"n":${n},"pad":"${pad}"}`); target.end(w, evidence) },
    (n: number, evidence?: boolean): void => recordWriter(log)('info', { n, pad }, evidence),
    (n: number, evidence?: boolean): void => bodyWriter(log)('info', `"n":${n},"pad":"${pad}"}`, evidence),
  ]
  for (let n = 10; n <= 16; n++) writers[n % 3]!(n)           // 1523 bytes: within maxWaiting
  for (let n = 17; n <= 19; n++) writers[n % 3]!(n, false)    // past it: dropped
  writers[2]!(20, true)                                       // 1723: evidence, within maxWaiting and the reserve
  writers[0]!(21)                                             // dropped
  writers[1]!(22, true)
  writers[0]!(23, true)                                       // 2123
  writers[2]!(24, true)                                       // past 2200: dropped
  writers[1]!(25, true)
  t.same(ls.lost, { behind: 4, behindEvidence: 2, failed: 0 })
  t.equal(said.length, 1, 'the dropping said once')
  t.match(said[0], /lines are dropped \(block, sinkhole and alert decisions past 0 MiB more\)/)
  open = true
  await new Promise<void>(r => ls.flush(() => r()))
  const lines = out.join('').split('\n').filter(Boolean).map(l => JSON.parse(l) as Record<string, any>)
  t.same(lines.map(l => l.n ?? l.message), ['first', 10, 11, 12, 13, 14, 15, 16, 20, 22, 23, 'log lines dropped: stdout did not keep up'])
  t.same(lines.at(-1)!.tunnelguard, { dropped_lines: 6, dropped_evidence_lines: 2 })
})

t.test('lineTarget: only for a logger on a LineSink; its head is the start of the line pino writes, at the current millisecond', async t => {
  const { LineSink } = await import('../../src/observe/line-sink.js')
  const { lineTarget } = await import('../../src/observe/logger.js')
  const { JsonBytes } = await import('../../src/observe/json-bytes.js')
  t.equal(lineTarget(createLogger({ level: 'info', destination: sink().stream })), undefined, 'another destination: none')
  const out: string[] = []
  const ls = new LineSink({ fd: 99, mode: 'sync', delayMs: 0, writeSync: ((_fd: number, b: Buffer, off: number, len: number) => { out.push(b.toString('utf8', off, off + len)); return len }) as never })
  t.teardown(() => ls.close())
  let now = Date.UTC(2026, 10, 30, 4, 0, 0, 1)
  const log = createLogger({ level: 'info', destination: ls, clock: () => now })
  const target = lineTarget(log)!
  const w = new JsonBytes()
  const line = (level: 'info' | 'warn', body: string): void => {
    t.ok(target.begin(level, w))
    w.json(body)
    target.end(w)
  }
  log.warn({ n: 1 }, 'm')
  line('warn', '"n":1,"message":"m"}')
  now += 1
  line('warn', '"n":2}')
  line('info', '"n":3}')
  log.info({ n: 3 })
  ls.flushSync()
  const lines = out.join('').split('\n').filter(Boolean)
  t.equal(lines[1], lines[0], 'the same bytes as pino\'s line')
  t.same(JSON.parse(lines[2]!), { 'log.level': 'warn', '@timestamp': '2026-11-30T04:00:00.002Z', 'ecs.version': ECS_VERSION, n: 2 }, 'a new millisecond: a new head')
  t.equal(lines[3], lines[4], 'each level its own head')
})

t.test('lineTarget: a line longer than the room it was given, a full sink and a failed one', async t => {
  const { LineSink } = await import('../../src/observe/line-sink.js')
  const { lineTarget } = await import('../../src/observe/logger.js')
  const { JsonBytes } = await import('../../src/observe/json-bytes.js')
  const run = (opts: { maxWaiting?: number; fail?: boolean }, bodies: string[]): { lines: string[]; begun: boolean[] } => {
    const out: string[] = []
    const ls = new LineSink({ fd: 99, mode: 'sync', delayMs: 0, maxWaiting: opts.maxWaiting, onError: () => {},
      writeSync: ((_fd: number, b: Buffer, off: number, len: number) => {
        if (opts.fail) throw Object.assign(new Error('EBADF'), { code: 'EBADF' })
        out.push(b.toString('utf8', off, off + len)); return len
      }) as never })
    t.teardown(() => ls.close())
    const target = lineTarget(createLogger({ level: 'info', destination: ls, clock: () => 0 }))!
    const w = new JsonBytes()
    const begun: boolean[] = []
    for (const body of bodies) {
      const ok = target.begin('info', w)
      begun.push(ok)
      if (ok) { w.json(body); target.end(w) }
      ls.flushSync()
    }
    return { lines: out.join('').split('\n').filter(Boolean).map(l => l.slice(l.indexOf('"ecs.version"'))), begun }
  }
  const long = `"s":"${'x'.repeat(100_000)}"}`   // more than the sink's buffer holds
  const grown = run({}, ['"n":1}', long, '"n":2}'])
  t.same(grown.lines, [`"ecs.version":"${ECS_VERSION}","n":1}`, `"ecs.version":"${ECS_VERSION}",${long}`, `"ecs.version":"${ECS_VERSION}","n":2}`], 'a 100 kB line is whole, in its place')
  const capped = run({ maxWaiting: 120 }, ['"n":1}', long, '"n":2}'])
  t.same(capped.lines.length, 2, 'a line past maxWaiting is dropped, the next one is not')
  t.same(run({ maxWaiting: 120 }, ['"n":1}', `"s":"${'y'.repeat(100)}"}`, '"n":2}']).lines.length, 2, 'also one written in place')
  const failed = run({ fail: true }, ['"n":1}', '"n":2}'])
  t.same(failed.begun, [true, false], 'once the log failed, no line is begun')
})

t.test('logSink: the sink\'s troubles said through its notices (on stderr, or between batches when stderr is the same file)', async t => {
  const { logSink } = await import('../../src/observe/logger.js')
  const said: string[] = []
  let answer: (len: number) => number | NodeJS.ErrnoException = len => len
  const writeSync = ((_fd: number, _b: Buffer, _o: number, len: number) => {
    const a = answer(len)
    if (typeof a !== 'number') throw a
    return a
  }) as unknown as typeof import('node:fs').writeSync
  const code = (c: string): NodeJS.ErrnoException => Object.assign(new Error(c), { code: c })
  const sink = logSink({ fd: 99, mode: 'sync', writeSync, delayMs: 0, stuckMs: 10, maxWaiting: 20, notices: { write: s => said.push(s) } })
  t.teardown(() => sink.close())
  answer = () => code('ENOSPC')
  sink.write('{"a":1}\n')
  await new Promise(r => setTimeout(r, 5))
  sink.write('x'.repeat(30) + '\n')
  answer = len => len
  await new Promise<void>(r => sink.flush(() => r()))
  answer = () => code('EPIPE')
  sink.write('{"b":2}\n')
  await new Promise<void>(r => sink.flush(() => r()))
  t.match(said, [/\(ENOSPC\); it is tried again/, /stdout is not taking the log/, /written to stdout again/, /\(EPIPE\); lines are dropped from now on/])
})

t.test('stderrNotices writes on fd 2; sameFile compares device and inode', async t => {
  const { sameFile, stderrNotices } = await import('../../src/observe/logger.js')
  const { closeSync, openSync } = await import('node:fs')
  t.doesNotThrow(() => stderrNotices.write(''), 'write(2) of nothing on fd 2')
  const a = openSync('/dev/null', 'r')
  const b = openSync('/dev/null', 'r')
  const c = openSync(new URL(import.meta.url), 'r')
  t.teardown(() => { closeSync(a); closeSync(b); closeSync(c) })
  t.ok(sameFile(a, b), 'two opens of one file')
  t.notOk(sameFile(a, c), 'two files')
  t.notOk(sameFile(a, 1 << 20), 'an fd that is not open')
  t.notOk(sameFile(0, 1, fd => ({ dev: 1, ino: fd })), 'same device, another inode')
})

t.test('finishLog: bounded for a logger on its own LineSink, with one notice of what was lost; pino\'s flush for another', async t => {
  const { finishLog, FINAL_FLUSH_MS } = await import('../../src/observe/logger.js')
  const { LineSink } = await import('../../src/observe/line-sink.js')
  t.equal(FINAL_FLUSH_MS, 5000)
  const said: string[] = []
  const written: string[] = []
  let take = true
  const writeSync = ((_fd: number, b: Buffer, o: number, len: number) => {
    if (!take) throw Object.assign(new Error('full'), { code: 'ENOSPC' })
    written.push(b.subarray(o, o + len).toString())
    return len
  }) as unknown as typeof import('node:fs').writeSync
  const dest = new LineSink({ fd: 99, mode: 'sync', writeSync, delayMs: 0, stuckMs: 10, notices: { write: s => said.push(s) } })
  t.teardown(() => dest.close())
  const log = createLogger({ level: 'info', destination: dest })
  log.info('one')
  await finishLog(log, 60_000)
  t.match(written.join(''), /"message":"one"/, 'written: no notice')
  t.same(said, [])
  take = false
  log.info('two')
  log.info('three')
  await finishLog(log, 50)
  t.equal(said.length, 1)
  t.match(said[0], /^tunnelguard: stopping: 2 log lines \(\d+ bytes\) not written to stdout within 0\.05 s of the stop; they are lost\n$/)
  const one = new LineSink({ fd: 99, mode: 'sync', writeSync, delayMs: 0, stuckMs: 10, notices: { write: s => said.push(s) } })
  t.teardown(() => one.close())
  const log1 = createLogger({ level: 'info', destination: one })
  log1.info('alone')
  await finishLog(log1, 20)
  t.match(said[1], /stopping: 1 log line \(\d+ bytes\)/)
  let flushed = 0
  const other = createLogger({ level: 'info', destination: Object.assign(new Writable({ write(_c, _e, cb) { cb() } }), { flush: () => { flushed++ } }) })
  await finishLog(other)
  t.equal(flushed, 1, 'another destination: flushed as pino does')
})
