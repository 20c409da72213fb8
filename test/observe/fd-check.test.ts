import t from 'tap'
import { FD_NOTICE_MS, FD_RECOUNT_MS, FdBudget, countOpenFds, fdCapsWarning, fdCode, fdExhausted, fdNotice, fdReserve, softFdLimit, watchFds } from '../../src/observe/fd-check.js'
import type { FdWhere } from '../../src/observe/types.js'

const err = (code: string) => Object.assign(new Error(code), { code })
const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))

t.test('fdExhausted: EMFILE (the process) and ENFILE (the system), nothing else', async t => {
  t.ok(fdExhausted(err('EMFILE')))
  t.ok(fdExhausted(err('ENFILE')))
  t.notOk(fdExhausted(err('ENOENT')))
  t.notOk(fdExhausted(new Error('x')))
  t.notOk(fdExhausted(undefined))
})

t.test('watchFds: a check that cannot open a descriptor is counted; another failure is not; a stop ends it', async t => {
  const seen: FdWhere[] = []
  let next: string | undefined = 'EMFILE'
  const stop = watchFds({ fdExhausted: w => seen.push(w) }, 5, () => {
    const code = next
    if (code !== undefined) throw err(code)
    return 0                                         // stdin: closed by the check, as /dev/null would be
  })
  t.teardown(stop)
  while (seen.length === 0) await sleep(5)
  t.same(seen, ['check'])
  next = 'ENOENT'                                    // no /dev/null in a strange container: not this
  await sleep(30)
  t.same(seen, ['check'])
  stop()
  next = 'EMFILE'
  await sleep(30)
  t.same(seen, ['check'], 'stopped')
})

t.test('watchFds: the real check opens /dev/null and closes it', async t => {
  const seen: FdWhere[] = []
  const stop = watchFds({ fdExhausted: w => seen.push(w) }, 5)
  await sleep(30)
  stop()
  t.same(seen, [], 'descriptors are free here')
})

t.test('fdNotice: the first at once, then at most once per window, with the count since the last line', async t => {
  const said: Record<string, unknown>[] = []
  let now = 0
  const note = fdNotice((msg, f) => said.push({ msg, ...f }), () => now)
  note('check', 'EMFILE')
  note('listener', 'EMFILE')
  now = FD_NOTICE_MS - 1
  note('dns-upstream', 'ENFILE')
  t.equal(said.length, 1)
  t.match(said[0], { msg: /no file descriptor free \(EMFILE\)/, 'error.code': 'EMFILE', where: 'check', count: 1, fix: /LimitNOFILE/ })
  now = FD_NOTICE_MS
  note('listener', 'ENFILE')
  t.equal(said.length, 2)
  t.match(said[1], { msg: /no file descriptor free \(ENFILE: the whole host is out of them\)/, 'error.code': 'ENFILE', where: 'listener', count: 3, fix: /fs\.file-max/ })
  t.notMatch(said[1]!.fix, /LimitNOFILE/, 'a process limit is not the fix for the host\'s')
})

t.test('fdCode: the host\'s limit (ENFILE) or this process\'s (EMFILE)', async t => {
  t.equal(fdCode(err('ENFILE')), 'ENFILE')
  t.equal(fdCode(err('EMFILE')), 'EMFILE')
})

t.test('watchFds counts the check with the code it failed with', async t => {
  const seen: string[] = []
  const stop = watchFds({ fdExhausted: (w, c) => { seen.push(`${w}:${c}`) } }, 5, () => { throw err('ENFILE') })
  for (let i = 0; i < 100 && seen.length === 0; i++) await new Promise(r => setTimeout(r, 5))
  stop()
  t.equal(seen[0], 'check:ENFILE')
})

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            256                  4096                 files
Max locked memory         8388608              8388608              bytes
`

t.test('softFdLimit: the soft "Max open files" of /proc/self/limits; none where it cannot be read or is unlimited', async t => {
  t.equal(softFdLimit(() => LIMITS), 256, 'the soft limit, not the hard one')
  t.equal(softFdLimit(() => LIMITS.replace(/256 {2}/, 'unlimited')), undefined, 'unlimited')
  t.equal(softFdLimit(() => { throw Object.assign(new Error('no such file'), { code: 'ENOENT' }) }), undefined, 'not Linux')
  if (process.platform === 'linux') {
    const real = softFdLimit()
    t.ok(real !== undefined && real > 0, `this process's (${real})`)
    const n = countOpenFds()
    t.ok(n >= 3 && n < real!, `open descriptors counted (${n})`)
  }
})

t.test('fdReserve: an eighth of the limit, within 64 and 1024', async t => {
  t.equal(fdReserve(256), 64)
  t.equal(fdReserve(2048), 256)
  t.equal(fdReserve(1 << 20), 1024)
})

t.test('FdBudget: low within the reserve of the limit; counted again at most once per FD_RECOUNT_MS, client connections added in between', async t => {
  let now = 0
  let open = 100
  let limit: number | undefined = 256               // reserve 64: low from 192 open
  let counts = 0
  const b = new FdBudget(() => now, () => limit, () => { counts++; return open })
  t.notOk(b.low())
  t.equal(b.limit, 256)
  t.equal(b.reserve, 64)
  for (let i = 0; i < 91; i++) b.opened()           // a burst: 191 open
  t.notOk(b.low(), 'at the reserve\'s edge')
  b.opened()
  t.ok(b.low(), 'one more: within the reserve')
  t.equal(counts, 1, 'without counting again')
  b.closed()
  t.notOk(b.low(), 'one closed: room again')
  open = 250
  now += FD_RECOUNT_MS - 1
  t.notOk(b.low(), 'not counted again yet')
  now += 1
  t.ok(b.low(), 'counted again: descriptors opened elsewhere (upstream sockets) are seen')
  t.equal(counts, 2)
  open = 100
  limit = undefined
  now += FD_RECOUNT_MS
  t.notOk(b.low(), 'the limit file unreadable (no descriptor for it): the limit read before is kept')
  t.equal(b.limit, 256)
  now += FD_RECOUNT_MS
  const failing = new FdBudget(() => now, () => 256, () => { throw Object.assign(new Error('too many open files'), { code: 'EMFILE' }) })
  t.ok(failing.low(), 'no descriptor to count them with: low, and no throw (it is asked in an accept)')
  let never = 0
  const unknown = new FdBudget(() => now, () => undefined, () => { never++; return 1 << 20 })
  t.notOk(unknown.low(), 'no limit known: never low')
  t.equal(never, 0, 'and nothing counted')
  t.equal(unknown.limit, undefined)
  t.equal(unknown.reserve, 64)
  const real = new FdBudget()
  t.equal(real.low(), false, 'this process is far from its limit')
})

t.test('fdCapsWarning: said when the caps at their fullest and the reserve need more than the limit, naming both and the fix', async t => {
  const caps = { dnsTcp: 1000, dnsListeners: 2, proxy: 4096, admin: 64 }
  t.equal(fdCapsWarning(caps, undefined), undefined, 'no limit known: nothing said')
  t.equal(fdCapsWarning(caps, 1 << 20), undefined, 'within the limit')
  t.equal(fdCapsWarning(caps, 2000 + 8192 + 64 + 1024), undefined, 'exactly at it')
  const w = fdCapsWarning(caps, 1024)!
  t.match(w.msg, /need up to 10384 file descriptors, more than the open-files limit of 1024: past 896 open/)
  t.same(w.fields, {
    fdLimit: 1024, fdNeeded: 10384, fdReserve: 128,
    fix: 'raise the open-files limit to 10384 or more (systemd LimitNOFILE=, docker run --ulimit nofile=, ulimit -n) or lower dns.tcp.maxConnections (1000 on each of 2 listeners), proxy.maxConnections (4096, counted twice: client and origin) and admin.maxConnections (64)',
  })
})
