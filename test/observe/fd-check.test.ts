import t from 'tap'
import { FD_NOTICE_MS, fdCode, fdExhausted, fdNotice, watchFds } from '../../src/observe/fd-check.js'
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
