import t, { type Test } from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../src/config/load.js'
import { createReloader } from '../src/reload.js'
import { buildSnapshot } from '../src/snapshot.js'
import { memoryEvidence } from './fixtures/evidence.js'

const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))

t.test('a reload that fails with an unexpected error logs it and keeps the old snapshot', async t => {
  const { createReloader } = await import('../src/reload.js')
  const { memoryEvidence } = await import('./fixtures/evidence.js')
  const ev = memoryEvidence()
  const results: boolean[] = []
  const rl = createReloader({ overrides: {}, resolvConf: '/nonexistent', evidence: ev, current: () => { throw new TypeError('no snapshot') }, swap: () => { t.fail('no swap') }, onResult: ok => results.push(ok), debounceMs: 10 })
  t.equal(await rl.reload('test'), false)
  t.same(results, [false])
  t.match(ev.messages, [{ level: 'info', msg: 'reload started', fields: { reason: 'test' } },
    { level: 'error', msg: 'reload rejected; keeping the previous config and lists', fields: { reason: 'test', reload_errors: ['TypeError: no snapshot'] } }])
})

t.test('a reload logs each warning it brings, as the start does, and not again the ones logged before', async t => {
  const { appendFileSync, writeFileSync } = await import('node:fs')
  const { join } = await import('node:path')
  const { createReloader } = await import('../src/reload.js')
  const { MAX_LOGGED_WARNINGS } = await import('../src/log-warnings.js')
  const { loadConfig } = await import('../src/config/load.js')
  const { buildSnapshot } = await import('../src/snapshot.js')
  const { memoryEvidence } = await import('./fixtures/evidence.js')
  const dir = t.testdir({ 'local.txt': '# source: local\nexfil.test\nhttp://c2.exfil.test/\n', 'tg.yaml': 'lists: { local: { files: [local.txt], action: block } }\n' })
  const cfg = join(dir, 'tg.yaml')
  const ev = memoryEvidence()
  let current = buildSnapshot(loadConfig(cfg, { resolvConf: '/nonexistent' }))
  const rl = createReloader({ configPath: cfg, overrides: {}, resolvConf: '/nonexistent', evidence: ev, current: () => current, swap: s => { current = s }, debounceMs: 10 })
  const warned = () => ev.messages.splice(0).filter(m => m.level === 'warn')
  appendFileSync(join(dir, 'local.txt'), 'relay_bad..example\n')
  t.equal(await rl.reload('file changed'), true)
  t.match(warned(), [{ msg: 'list warning', fields: { source: `${join(dir, 'local.txt')}:4`, warning: /^list local: invalid entry "relay_bad\.\.example": empty label; valid: / } }],
    'the new bad line, by file and line; the one logged at start is not repeated')
  t.equal(current.warnings.length, 2)
  t.equal(await rl.reload('SIGHUP'), true)
  t.same(warned(), [], 'nothing new: no warning lines')
  // a config warning the reload brings is logged too
  writeFileSync(cfg, 'lists: { local: { files: [local.txt], action: block } }\nsinkhole: { listen: ["127.0.0.250:443"] }\n')
  t.equal(await rl.reload('SIGHUP'), true)
  const w = warned().filter(m => / warning$/.test(m.msg))
  t.match(w, [{ msg: 'config warning', fields: { source: `${cfg}:2`, warning: /^sinkhole\.listen: nothing will reach/ } }])
  t.equal(w.length, 1, 'the list warnings logged before are not repeated')
  // many new bad lines: MAX_LOGGED_WARNINGS lines, then one line with the count of the rest
  appendFileSync(join(dir, 'local.txt'), Array.from({ length: MAX_LOGGED_WARNINGS + 5 }, (_, i) => `bad_${i}..example\n`).join(''))
  t.equal(await rl.reload('file changed'), true)
  const many = warned()
  t.equal(many.length, MAX_LOGGED_WARNINGS + 1)
  t.ok(many.slice(0, MAX_LOGGED_WARNINGS).every(m => m.msg === 'list warning'))
  t.same(many[MAX_LOGGED_WARNINGS], { level: 'warn', msg: 'more warnings not logged', fields: { count: 5, see: `tunnelguard lists --config ${cfg}` } })
  const done = ev.messages.length
  t.equal(await rl.reload('SIGHUP'), true)
  t.match(ev.messages.slice(done), [{ level: 'info', msg: 'reload started' }, { level: 'info', msg: 'reloaded', fields: { warnings: 1 + 2 + MAX_LOGGED_WARNINGS + 5, newWarnings: 0 } }], 'the reloaded line counts them all and the new ones')
})

t.test('the start logs at most MAX_LOGGED_WARNINGS warnings too; with the built-in config, lists is named without --config', async t => {
  const { logWarnings, MAX_LOGGED_WARNINGS } = await import('../src/log-warnings.js')
  const { makeSnapshot } = await import('./fixtures/snapshot.js')
  const { memoryEvidence } = await import('./fixtures/evidence.js')
  const made = makeSnapshot({})
  const base = { ...made, config: { ...made.config, source: 'built-in' } }
  const warnings = Array.from({ length: MAX_LOGGED_WARNINGS + 1 }, (_, i) => ({ source: `l.txt:${i + 1}`, message: 'list l: bad' }))
  const s = { ...base, config: { ...base.config, warnings: [{ source: 'c.yaml:3', message: 'sinkhole.listen: x' }] }, warnings }
  const ev = memoryEvidence()
  t.equal(logWarnings(ev, s), MAX_LOGGED_WARNINGS + 2)
  t.equal(ev.messages.length, MAX_LOGGED_WARNINGS + 1)
  t.same(ev.messages[0], { level: 'warn', msg: 'config warning', fields: { source: 'c.yaml:3', warning: 'sinkhole.listen: x' } }, 'config warnings first')
  t.same(ev.messages.at(-1), { level: 'warn', msg: 'more warnings not logged', fields: { count: 2, see: 'tunnelguard lists' } })
})

/** A reloader over a config of one list `l` (file l.txt, `text`) in a test dir, and its state. */
function overList(t: Test, text: string, o: { debounceMs: number | (() => number); pollMs?: number }) {
  const dir = t.testdir({ 'l.txt': text, 'tg.yaml': 'lists: { l: { files: [l.txt], action: block } }\n' })
  const cfg = join(dir, 'tg.yaml')
  const ev = memoryEvidence()
  let snap = buildSnapshot(loadConfig(cfg, { resolvConf: '/nonexistent' }))
  const rl = createReloader({ configPath: cfg, overrides: {}, resolvConf: '/nonexistent', evidence: ev, current: () => snap, swap: s => { snap = s }, ...o })
  t.teardown(() => rl.close())
  return { dir, cfg, ev, rl, current: () => snap }
}

t.test('reload requests (SIGHUP) coalesce: a burst costs one reload per debounce', async t => {
  const { dir, ev, rl, current } = overList(t, 'a.test\n', { debounceMs: 150 })
  const reloads = () => ev.messages.filter(m => m.msg === 'reloaded').length
  rl.request('SIGHUP')
  for (let i = 0; i < 100 && reloads() === 0; i++) await sleep(5)
  t.equal(reloads(), 1, 'the first: at once')
  writeFileSync(join(dir, 'l.txt'), 'a.test\nb.test\n')
  for (let i = 0; i < 200; i++) rl.request('SIGHUP')
  t.equal(reloads(), 1, 'the rest wait')
  await new Promise(r => setTimeout(r, 300))
  t.equal(reloads(), 2, 'then one reload for all of them')
  t.equal(current().lists[0]!.entries, 2, 'reading the files as they are then')
  rl.request('SIGHUP')
  await new Promise(r => setTimeout(r, 200))
  t.equal(reloads(), 3, 'a debounce later, a request is done at once again')
})

t.test('at a reload: an empty config file is refused (a save caught half-way); a list that lost half its entries is said', async t => {
  const names = Array.from({ length: 10 }, (_, i) => `n${i}.test`)
  const { dir, cfg, ev, rl, current } = overList(t, names.join('\n') + '\n', { debounceMs: 10 })
  writeFileSync(cfg, '')
  t.equal(await rl.reload('file changed'), false)
  t.match(ev.messages.at(-1), { level: 'error', msg: 'reload rejected; keeping the previous config and lists', fields: { reload_errors: [/tg\.yaml: the config file has no setting in it/, /empty at a reload/] } })
  t.same(Object.keys(current().config.lists), ['l'], 'the running config kept (not the built-in one)')
  writeFileSync(cfg, 'lists: { l: { files: [l.txt], action: block } }\n')
  writeFileSync(join(dir, 'l.txt'), names.slice(0, 6).join('\n') + '\n')
  t.ok(await rl.reload('x'))
  t.notOk(ev.messages.some(m => m.msg === 'list shrank at reload'), '10 → 6: no word')
  writeFileSync(join(dir, 'l.txt'), names.slice(0, 3).join('\n') + '\n')
  t.ok(await rl.reload('x'))
  t.match(ev.messages.filter(m => m.msg === 'list shrank at reload'), [{ level: 'warn', fields: { list: 'l', was: 6, entries: 3 } }], '6 → 3: said')
  writeFileSync(join(dir, 'l.txt'), '# emptied\n')
  t.ok(await rl.reload('x'))
  t.match(ev.messages.filter(m => m.msg === 'list shrank at reload').at(-1), { fields: { list: 'l', was: 3, entries: 0 } })
  writeFileSync(join(dir, 'l.txt'), 'a.test\n')
  t.ok(await rl.reload('x'))
  t.equal(ev.messages.filter(m => m.msg === 'list shrank at reload').length, 2, 'from 0: nothing to say')
})

t.test('watch and unwatch follow reload.watch; a file change reloads once the file is still', async t => {
  const { dir, rl, current } = overList(t, 'a.test\n', { debounceMs: () => 20, pollMs: 50 })
  t.equal(rl.watching, false)
  rl.watch()
  rl.watch()
  t.equal(rl.watching, true)
  writeFileSync(join(dir, 'l.txt'), 'a.test\nb.test\n')
  for (let i = 0; i < 100 && current().lists[0]!.entries !== 2; i++) await new Promise(r => setTimeout(r, 20))
  t.equal(current().lists[0]!.entries, 2)
  rl.unwatch()
  t.equal(rl.watching, false)
  writeFileSync(join(dir, 'l.txt'), 'a.test\nb.test\nc.test\n')
  await new Promise(r => setTimeout(r, 300))
  t.equal(current().lists[0]!.entries, 2, 'not followed any more')
})

t.test('dns.tlsCaFile is watched too: a new CA file reloads; one that cannot serve is a rejected reload', async t => {
  const { dir, cfg, ev, rl, current } = overList(t, 'a.test\n', { debounceMs: () => 20, pollMs: 50 })
  const cert = (body: string) => `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`
  // a real certificate is not needed to see the file followed: a rejected reload says it was read
  writeFileSync(join(dir, 'ca.pem'), cert('bm90IGEgY2VydA=='))
  writeFileSync(cfg, 'dns: { tlsCaFile: ca.pem }\nlists: { l: { files: [l.txt], action: block } }\n')
  t.equal(await rl.reload('x'), false, 'a CA file with no certificate that parses')
  t.match(ev.messages.at(-1), { level: 'error', fields: { reload_errors: [/tg\.yaml: 1 error$/, /tg\.yaml:1: dns\.tlsCaFile: TLS CA file .*ca\.pem:1: not a certificate that can be read/] } })
  const pem = (await import('node:tls')).rootCertificates[0]!
  writeFileSync(join(dir, 'ca.pem'), pem)
  t.ok(await rl.reload('x'))
  t.equal(current().config.dns.tlsCa?.trim(), pem.trim())
  rl.watch()
  t.teardown(() => rl.unwatch())
  const other = (await import('node:tls')).rootCertificates[1]!
  writeFileSync(join(dir, 'ca.pem'), other)
  for (let i = 0; i < 100 && current().config.dns.tlsCa?.trim() !== other.trim(); i++) await sleep(20)
  t.equal(current().config.dns.tlsCa?.trim(), other.trim(), 'the new file read by a reload of its own')
})

t.test('a reload that failed for want of a file descriptor (EMFILE) is tried again, a bounded number of times; another failure is not', async t => {
  const { FD_RETRIES } = await import('../src/reload.js')
  const dir = t.testdir({ 'tg.yaml': 'log: { level: info }\n' })
  const cfg = join(dir, 'tg.yaml')
  const ev = memoryEvidence()
  let current = buildSnapshot(loadConfig(cfg, { resolvConf: '/nonexistent' }))
  let fail: string | undefined = "Error: EMFILE: too many open files, open '/etc/lists/x.txt'"
  const results: boolean[] = []
  const rl = createReloader({
    configPath: cfg, overrides: {}, resolvConf: '/nonexistent', evidence: ev, current: () => current, swap: s => { current = s },
    debounceMs: 10, fdRetryMs: 5, onResult: ok => results.push(ok),
    extraTexts: () => { if (fail !== undefined) throw new Error(fail); return {} },
  })
  t.teardown(() => rl.close())
  t.equal(await rl.reload('file changed: x.txt'), false)
  t.match(ev.messages.at(-1), { level: 'error', msg: 'reload rejected; keeping the previous config and lists', fields: { reason: 'file changed: x.txt', retry_in_ms: 5 } })
  while (results.length < 3) await sleep(5)
  fail = undefined
  while (results.at(-1) !== true) await sleep(5)
  t.match(ev.messages.at(-1), { level: 'info', msg: 'reloaded', fields: { reason: 'file changed: x.txt' } }, 'tried again until descriptors were free')
  const n = results.length
  await sleep(30)
  t.equal(results.length, n, 'and no more')

  fail = 'Error: ENOENT: no such file'
  t.equal(await rl.reload('SIGHUP'), false)
  t.notOk('retry_in_ms' in (ev.messages.at(-1)!.fields ?? {}), 'another error: not tried again')
  await sleep(30)
  t.equal(results.length, n + 1)

  // bounded: FD_RETRIES in a row, then it waits for the next change or SIGHUP
  fail = 'Error: EMFILE: too many open files'
  void rl.reload('SIGHUP')
  while (results.length < n + 2 + FD_RETRIES) await sleep(5)
  await sleep(30)
  t.equal(results.length, n + 2 + FD_RETRIES)
  t.notOk('retry_in_ms' in (ev.messages.at(-1)!.fields ?? {}), 'the last one says no retry')
})

t.test('close() stops a retry that is due', async t => {
  const ev = memoryEvidence()
  const dir = t.testdir({ 'tg.yaml': 'log: { level: info }\n' })
  const cfg = join(dir, 'tg.yaml')
  const current = buildSnapshot(loadConfig(cfg, { resolvConf: '/nonexistent' }))
  const results: boolean[] = []
  const rl = createReloader({
    configPath: cfg, overrides: {}, resolvConf: '/nonexistent', evidence: ev, current: () => current, swap: () => {},
    debounceMs: 10, fdRetryMs: 20, onResult: ok => results.push(ok), extraTexts: () => { throw new Error('ENFILE: file table overflow') },
  })
  void rl.reload('SIGHUP')
  rl.close()
  await sleep(60)
  t.same(results, [false])
})

t.test('one reload at a time: those asked for while one runs share one more after it, which reads the files as they are then', async t => {
  const big = Array.from({ length: 30_000 }, (_, i) => `h${i}.example`).join('\n') + '\n'
  const { dir, ev, rl, current } = overList(t, big, { debounceMs: 10 })
  const runs = () => ev.messages.filter(m => m.msg === 'reload started').length
  const first = rl.reload('one')
  t.equal(runs(), 1, 'started at once, said first')
  writeFileSync(join(dir, 'l.txt'), big + 'more.example\n')
  const second = rl.reload('two')
  const third = rl.reload('three')
  t.equal(runs(), 1, 'the others wait for it')
  t.equal(second, third, 'and share one reload')
  t.same(await Promise.all([first, second, third]), [true, true, true])
  t.equal(runs(), 2, 'two reloads for three calls')
  t.equal(current().lists[0]!.entries, 30_001, 'the second read the file as it was after the first began')
  const lines = ev.messages.filter(m => m.msg === 'reload started' || m.msg === 'reloaded')
  t.match(lines, [
    { level: 'info', msg: 'reload started', fields: { reason: 'one' } }, { msg: 'reloaded', fields: { reason: 'one', took_ms: Number } },
    { msg: 'reload started', fields: { reason: 'two' } }, { msg: 'reloaded', fields: { reason: 'two' } },
  ])
  t.equal(lines.length, 4)
})

t.test('close() while a reload reads its lists: nothing is swapped in, the reload says it was dropped; later calls do nothing', async t => {
  const big = Array.from({ length: 50_000 }, (_, i) => `h${i}.example`).join('\n') + '\n'
  const { dir, ev, rl, current } = overList(t, 'a.test\n', { debounceMs: 10 })
  writeFileSync(join(dir, 'l.txt'), big)
  const before = current()
  const results: boolean[] = []
  const p = rl.reload('SIGHUP').then(ok => { results.push(ok); return ok })
  await new Promise(r => setImmediate(r))
  rl.close()
  t.equal(await p, false)
  t.equal(current(), before, 'the old snapshot stays')
  t.match(ev.messages.at(-1), { level: 'info', msg: 'reload dropped: stopping', fields: { reason: 'SIGHUP' } })
  t.notOk(ev.messages.some(m => m.msg === 'reloaded' || m.level === 'error'))
  const n = ev.messages.length
  t.equal(await rl.reload('after'), false)
  t.equal(ev.messages.length, n, 'a reload after close: no work, no line')
})
