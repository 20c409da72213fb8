import t, { type Test } from 'tap'
import { appendFileSync, existsSync, mkdirSync, rmSync, readFileSync, renameSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { FileWatch, isWatched, signature } from '../src/file-watch.js'

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

/** A FileWatch over `files` whose changes are recorded (with what the first file held then). */
function follow(t: Test, files: string[], o: { debounceMs?: number; pollMs?: number; onChange?: (w: FileWatch) => void } = {}) {
  const changes: { why: string; text: string }[] = []
  const warned: string[] = []
  const w = new FileWatch({
    files: () => files, debounceMs: () => o.debounceMs ?? 30, pollMs: o.pollMs ?? 40,
    onChange: why => { changes.push({ why, text: existsSync(files[0]!) ? readFileSync(files[0]!, 'utf8') : '(gone)' }); o.onChange?.(w) },
    warn: msg => warned.push(msg),
  })
  w.start()
  t.teardown(() => w.stop())
  const until = async (n: number, ms = 3000) => {
    const end = Date.now() + ms
    while (changes.length < n && Date.now() < end) await sleep(10)
    return changes
  }
  return { w, changes, warned, until }
}

/** follow() over one file, l.txt holding `text`, in a test dir of its own. */
function followOne(t: Test, text: string, o: Parameters<typeof follow>[2] = {}) {
  const file = join(t.testdir({ 'l.txt': text }), 'l.txt')
  return { file, f: follow(t, [file], o) }
}

t.test('a change event counts when it names a watched file, or names none', async t => {
  const names = new Set(['ngrok.txt', 'config.yaml'])
  t.equal(isWatched(names, 'ngrok.txt'), true)
  t.equal(isWatched(names, Buffer.from('config.yaml')), true, 'a Buffer file name')
  t.equal(isWatched(names, 'ngrok.txt.swp'), false, 'an editor\'s swap file is not ours')
  t.equal(isWatched(names, null), true, 'no name given: could be ours')
})

t.test('signature: a new one for a write, a rename over the file, a missing file', async t => {
  const dir = t.testdir({ 'a.txt': 'one\n', 'b.txt': 'other\n' })
  const a = join(dir, 'a.txt')
  const first = signature(a)
  appendFileSync(a, 'two\n')
  t.not(signature(a), first, 'written')
  const second = signature(a)
  renameSync(join(dir, 'b.txt'), a)
  t.not(signature(a), second, 'replaced by a rename')
  t.equal(signature(join(dir, 'none.txt')), 'error:ENOENT')
})

t.test('the edit of a symlink\'s target in another directory is seen (no watch reports it): the poll', async t => {
  const dir = t.testdir({ a: {}, b: { 'real.txt': 'one.test\n' } })
  symlinkSync(join(dir, 'b', 'real.txt'), join(dir, 'a', 'list.txt'))
  const f = follow(t, [join(dir, 'a', 'list.txt')])
  await sleep(60)
  writeFileSync(join(dir, 'b', 'real.txt'), 'one.test\ntwo.test\n')
  const c = await f.until(1)
  t.equal(c.length, 1)
  t.match(c[0], { why: `file changed: ${join(dir, 'a', 'list.txt')}`, text: 'one.test\ntwo.test\n' })
})

t.test('a directory swapped in by a rename: its file is read, and later edits of it too', async t => {
  const dir = t.testdir({ lists: { 'l.txt': 'v1\n' } })
  const file = join(dir, 'lists', 'l.txt')
  const f = follow(t, [file])
  await sleep(60)
  mkdirSync(join(dir, 'new'))
  writeFileSync(join(dir, 'new', 'l.txt'), 'v2\n')
  renameSync(join(dir, 'lists'), join(dir, 'old'))
  renameSync(join(dir, 'new'), join(dir, 'lists'))
  t.equal((await f.until(1))[0]!.text, 'v2\n')
  await sleep(100)
  writeFileSync(file, 'v3\n')
  const c = await f.until(2)
  t.equal(c.at(-1)!.text, 'v3\n', 'the new directory\'s file is followed')
})

t.test('a file written slowly is read once it is still, not half-way', async t => {
  const { file, f } = followOne(t, 'start\n', { debounceMs: 120, pollMs: 10_000 })
  await sleep(50)
  writeFileSync(file, 'part1\n')
  for (let i = 2; i <= 5; i++) {                              // a line every 60 ms: each pause shorter than the debounce
    await sleep(60)
    appendFileSync(file, `part${i}\n`)
  }
  const c = await f.until(1)
  await sleep(300)
  t.equal(c.length, 1, 'read once')
  t.equal(c[0]!.text, 'part1\npart2\npart3\npart4\npart5\n', 'all of it')
})

t.test('a file that never settles is still read, within ten debounces', async t => {
  const { file, f } = followOne(t, 'x\n', { debounceMs: 30, pollMs: 10_000 })
  await sleep(50)
  let writing = true
  void (async () => { while (writing) { appendFileSync(file, 'y\n'); await sleep(5) } })()
  const start = Date.now()
  const c = await f.until(1, 3000)
  writing = false
  t.equal(c.length, 1, 'read while still being written')
  t.ok(Date.now() - start < 2000, `after ${Date.now() - start} ms`)
})

t.test('a file changed while it was being read is read again', async t => {
  const dir = t.testdir({ 'l.txt': 'v1\n' })
  const file = join(dir, 'l.txt')
  let writes = 0
  // the "reader" is slow: the file is written again while it reads (as a second save during a reload)
  const f = follow(t, [file], {
    pollMs: 10_000,
    onChange: () => {
      if (writes++ > 0) return
      writeFileSync(file, 'v3, the end of the save\n')
      const past = new Date(Date.now() - 1000)
      utimesSync(file, past, past)                            // still: read again without waiting
    },
  })
  await sleep(50)
  writeFileSync(file, 'v2\n')
  const c = await f.until(2)
  t.equal(c.length, 2)
  t.match(c[1], { why: `file changed while it was read: ${file}`, text: 'v3, the end of the save\n' })
})

t.test('a directory that cannot be watched is said once; stop() ends the watching and the poll', async t => {
  const dir = t.testdir({ 'l.txt': 'a\n' })
  const file = join(dir, 'l.txt')
  const f = follow(t, ['/nonexistent-dir/x.txt', file])
  t.same(f.warned, ['cannot watch directory; its files are compared every few seconds, and SIGHUP reloads'])
  f.w.refresh()
  t.equal(f.warned.length, 2, 'and again when it is named again (it may have been made)')
  f.w.stop()
  f.w.refresh()
  writeFileSync(file, 'b\n')
  await sleep(200)
  t.same(f.changes, [], 'nothing after stop')
})

t.test('the files followed change with the config: a directory no longer named is let go, a new file is followed as it is', async t => {
  const dir = t.testdir({ a: { 'x.txt': 'x1\n' }, b: { 'y.txt': 'y\n' }, c: { 'z.txt': 'z\n' } })
  const files = [join(dir, 'a', 'x.txt'), join(dir, 'b', 'y.txt')]
  const f = follow(t, files, { pollMs: 40, onChange: () => { files.splice(1, 1, join(dir, 'c', 'z.txt')) } })
  await sleep(60)
  writeFileSync(files[0]!, 'x2\n')
  await f.until(1)
  await sleep(150)
  t.equal(f.changes.length, 1, 'z.txt, named by the new config, is taken as read')
  writeFileSync(join(dir, 'b', 'y.txt'), 'y2\n')
  await sleep(200)
  t.equal(f.changes.length, 1, 'b/ is no longer followed')
  writeFileSync(join(dir, 'c', 'z.txt'), 'z2\n')
  t.equal((await f.until(2)).length, 2, 'c/ is')
})

t.test('a file named by a config that a reload read after onChange returned (it runs in slices) is no change of its own', async t => {
  // a reload that adds a list: the list is named once the new snapshot is in place, after onChange
  // returned; the poll saw it then as a file changed, and a second reload followed, blamed on it
  const dir = t.testdir({ a: { 'x.txt': 'x1\n' }, b: { 'new.txt': 'n\n', 'later.txt': 'l\n' } })
  const files = [join(dir, 'a', 'x.txt')]
  const f = follow(t, files, { pollMs: 20 })
  await sleep(60)
  writeFileSync(files[0]!, 'x2\n')
  await f.until(1)
  files.push(join(dir, 'b', 'new.txt'))                      // the reload's snapshot in place; no refresh yet
  await sleep(120)                                            // several polls
  t.same(f.changes.map(c => c.why), [`file changed: ${files[0]}`], 'a new file met by the poll: taken as read')
  files.push(join(dir, 'b', 'later.txt'))
  f.w.refresh()                                               // the reload's end
  await sleep(120)
  t.equal(f.changes.length, 1, 'a new file met by refresh: taken as read')
  writeFileSync(files[1]!, 'n2\n')
  t.match((await f.until(2)).map(c => c.why), [/x\.txt$/, /new\.txt$/], 'an edit of the new file is a change')
  await sleep(120)
  writeFileSync(files[2]!, 'l2\n')
  t.match((await f.until(3)).map(c => c.why), [/x\.txt$/, /new\.txt$/, /later\.txt$/], 'and of the one refresh took')
})

t.test('a file deleted is a change (the reload says it cannot be read); a read that turns the watching off ends it', async t => {
  const { file, f } = followOne(t, 'a\n', { onChange: w => w.stop() })
  await sleep(60)
  rmSync(file)
  t.match((await f.until(1))[0], { text: '(gone)' })
  writeFileSync(file, 'b\n')
  await sleep(200)
  t.equal(f.changes.length, 1, 'stopped by its own read: nothing more')
})

t.test('the poll runs every POLL_MS by default', async t => {
  const w = new FileWatch({ files: () => [], onChange: () => t.fail('no files'), debounceMs: () => 10, warn: () => t.fail('nothing to warn') })
  w.start()
  w.stop()
  t.pass('started and stopped')
})

t.test('a file dated in the future (a clock ahead) is read after the debounce, not when its date comes', async t => {
  const { file, f } = followOne(t, 'a\n', { debounceMs: 40, pollMs: 10_000 })
  await sleep(50)
  writeFileSync(file, 'b\n')
  const ahead = new Date(Date.now() + 3_600_000)
  utimesSync(file, ahead, ahead)
  t.equal((await f.until(1, 1500)).length, 1, 'read')
  writeFileSync(file, 'c\n')
  utimesSync(file, ahead, ahead)
  const c = await f.until(2, 1500)
  t.equal(c.at(-1)!.text, 'c\n', 'and the next change too')
})
