import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { loadLists, loadListsAsync, SLICE_MS } from '../../src/match/load-lists.js'
import { parseLinesInSteps } from '../../src/match/formats/lines.js'
import { SuffixTrie } from '../../src/match/suffix-trie.js'
import type { ListConfig } from '../../src/snapshot-types.js'
import type { Action } from '../../src/policy/types.js'

const SIGMA = fileURLToPath(new URL('../../../shared/fixtures/sigma/', import.meta.url))
const LISTS = fileURLToPath(new URL('../../../shared/fixtures/lists/', import.meta.url))
const list = (files: string[], action: Action = 'block'): ListConfig => ({ files, urls: [], refresh: 86_400_000, maxBytes: 1 << 20, action })
const names = (n: number, at = 0) => Array.from({ length: n }, (_, i) => `h${i + at}.d${(i + at) % 97}.example`)

t.test('loadListsAsync loads what loadLists loads: entries, sources by line, infos, warnings', async t => {
  const big = names(20_000)
  const dir = t.testdir({
    // a BOM, every line format, bad lines before and after the step boundaries, a duplicate
    'big.txt': '\uFEFF# big\n' + big.map((n, i) => i % 5000 === 7 ? `bad..${n}` : i % 3 === 0 ? `0.0.0.0 ${n}` : i % 3 === 1 ? `||${n}^` : n).join('\n') + '\nh1.d1.example\n',
    'allow.txt': '@@||h5.d5.example^\n*.wild.example\n',
  })
  const lists = {
    big: list([join(dir, 'big.txt'), join(dir, 'allow.txt')], 'sinkhole'),
    sigma: list([join(SIGMA, 'net_connection_lnx_ngrok_tunnel.yml')], 'alert'),
    csv: list([join(LISTS, 'lottunnels/domains.csv')], 'alert'),
  }
  const extraTexts = { big: [{ source: 'https://l.example/x.txt', text: 'remote.example\n' }], gone: [{ source: 'https://l.example/y', text: 'y.example\n' }] }
  const sync = loadLists(lists, { extraTexts })
  const slices: number[] = []
  let turns = 0
  const ticker = () => { turns++; if (!done) setImmediate(ticker) }
  let done = false
  setImmediate(ticker)
  const before = turns
  const async = await loadListsAsync(lists, { extraTexts, sliceMs: 0 })
  done = true
  slices.push(turns - before)
  t.same(async.infos, sync.infos)
  t.same(async.warnings, sync.warnings)
  t.equal(async.matcher.size, sync.matcher.size)
  t.equal(sync.infos[0]!.entries, 20_000 - 4 + 3, 'four bad lines, the duplicate once, the allow, the wildcard and the remote name')
  const here = sync.warnings.filter(w => w.source.startsWith(join(dir, 'big.txt')))
  t.same(here.map(w => w.source.split(':').at(-1)), ['9', '5009', '10009', '15009'], 'each bad line by its number, across the steps')
  t.match(here[0]!.message, /invalid entry "bad\.\.h7\.d7\.example"/)
  t.match(sync.warnings.at(-1), { source: 'gone', message: /not configured/ })
  for (const n of [big[0]!, big[1]!, big[2]!, big[19_999]!, 'a.wild.example', 'x.remote.example', 'tunnel.jp.ngrok.com', 'x.trycloudflare.com', 'h5.d5.example']) {
    const a = async.matcher.lookup(n).map(e => [e.list, e.pattern, e.source, e.allow])
    t.same(a, sync.matcher.lookup(n).map(e => [e.list, e.pattern, e.source, e.allow]), n)
    t.ok(a.length > 0, `${n} matched`)
  }
  t.same(async.matcher.lookup(big[15_000]!)[0]!.source, `${join(dir, 'big.txt')}:15002`, 'line numbers run on across the steps')
  t.ok(slices[0]! >= 10, `the event loop had turns while it loaded (${slices[0]})`)
})

t.test('the event loop is given a turn only once a slice is used up', async t => {
  const text = names(50_000).join('\n')
  const lists = { l: list(['/virtual/l.txt']) }
  const readFile = async () => text
  const count = async (sliceMs: number) => {
    let turns = 0
    let done = false
    const ticker = () => { if (!done) { turns++; setImmediate(ticker) } }
    setImmediate(ticker)
    const { infos } = await loadListsAsync(lists, { readFile, sliceMs })
    done = true
    t.equal(infos[0]!.entries, 50_000)
    return turns
  }
  t.equal(await count(60_000), 0, 'a slice longer than the load: no turn')
  t.ok(await count(0) >= 10, 'a slice of 0: a turn at every step')
  t.equal(SLICE_MS, 2)
})

t.test('loadListsAsync: unreadable files are the same LIST_LOAD error; an injected reader; an abort', async t => {
  const dir = t.testdir({ 'ok.txt': 'a.example\n' })
  const lists = { a: list([join(dir, 'missing.txt'), join(dir, 'ok.txt'), join(dir, 'missing.txt')]) }
  let sync: unknown
  try { loadLists(lists) } catch (e) { sync = e }
  await t.rejects(loadListsAsync(lists), { code: 'LIST_LOAD', message: (sync as Error).message, details: (sync as { details: string[] }).details })
  // a device (it never ends) is refused before a byte is read, in the words of the sync loader
  const zero = { z: list(['/dev/zero']) }
  let syncZero: unknown
  try { loadLists(zero) } catch (e) { syncZero = e }
  t.match(syncZero, { code: 'LIST_LOAD', message: /^list z: cannot read \/dev\/zero \(not a regular file \(a FIFO, socket or device/ })
  await t.rejects(loadListsAsync(zero), { code: 'LIST_LOAD', message: (syncZero as Error).message })
  const read: string[] = []
  const { matcher } = await loadListsAsync({ a: list(['/virtual/a.txt', '/virtual/a.txt']) }, { readFile: async p => { read.push(p); return 'a.example\n' } })
  t.same(read, ['/virtual/a.txt'], 'a file named twice is read once')
  t.equal(matcher.lookup('a.example').length, 1)
  // a reader that rejects with something that is not an Error still names the file
  await t.rejects(loadListsAsync({ a: list(['/virtual/x.txt']) }, { readFile: () => Promise.reject('no such thing') }),
    { code: 'LIST_LOAD', message: /cannot read \/virtual\/x\.txt \(no such thing\)/ })
  // aborted while reading, or while parsing: rejects with the reason, at its next turn
  const stop = new AbortController()
  stop.abort(new Error('stopping'))
  await t.rejects(loadListsAsync({ a: list([join(dir, 'ok.txt')]) }, { signal: stop.signal }), { message: 'stopping' })
  const later = new AbortController()
  const text = names(50_000).join('\n')
  let parsed = false
  const p = loadListsAsync({ l: list(['/virtual/l.txt']) }, { sliceMs: 0, signal: later.signal, readFile: async () => { parsed = true; return text } })
  setImmediate(() => later.abort(new Error('stopped midway')))   // runs at the parse's first turn
  await t.rejects(p, { message: 'stopped midway' })
  t.ok(parsed)
})

t.test('parseLinesInSteps: stops at line ends past each step, counts the lines, reads a sample', async t => {
  const text = 'a.example\nb.example\n# c\nd.example\n\ne.example'
  const got: [string, number][] = []
  const sink = { entry: (name: string, _k: unknown, _a: boolean, _p: string, line: number) => { got.push([name, line]) }, warn: () => {} }
  const steps = parseLinesInSteps(text, sink, 12)
  const seen: number[] = []
  let r = steps.next()
  while (!r.done) { seen.push(got.length); r = steps.next() }
  t.equal(r.value, 6, 'six lines')
  t.same(got, [['a.example', 1], ['b.example', 2], ['d.example', 4], ['e.example', 6]])
  t.same(seen, [2, 3], 'a stop after the line that ends at or past 12 characters on from each stop (none after the last line)')
  const sampled: number[] = []
  const every = parseLinesInSteps(text, { entry: (_n, _k, _a, _p, line) => { sampled.push(line) }, warn: () => {} }, Infinity, 2)
  let s = every.next()
  while (!s.done) s = every.next()
  t.same(sampled, [2, 4, 6], 'every second line')
  t.equal(s.value, 6)
  const empty = parseLinesInSteps('', sink, 4).next()
  t.same(empty, { value: 1, done: true }, 'an empty text is one empty line')
})

t.test('the loaders size the tables ahead: a big list moves no table while it loads', async t => {
  const proto = SuffixTrie.prototype as unknown as { grow(tbl: unknown): void }
  const grow = proto.grow
  let grown = 0
  proto.grow = function (tbl: unknown) { grown++; grow.call(this, tbl) }
  t.teardown(() => { proto.grow = grow })
  const dir = t.testdir({ 'l.txt': names(200_000).join('\n') + '\n', 'x.txt': 'a.example\n' })
  const { infos } = loadLists({ l: list([join(dir, 'l.txt')]) })
  t.equal(infos[0]!.entries, 200_000)
  t.equal(grown, 0, 'no table grew')
  // the sample is a guess: a count short of it grows the table as before
  const trie = new SuffixTrie(16)
  trie.reserve(3, 1)
  trie.reserve(3, 1000)            // a table made already is left as it is
  trie.reserve(0, 10)
  trie.reserve(65, 10)
  trie.reserve(4, 0)
  for (let i = 0; i < 100; i++) trie.insert('l', `n${String(i).padStart(8, '0')}`.slice(0, 9) + 'xyz', 'domain', false, 'p', 'f', i)
  t.ok(grown > 0, 'a table reserved too small grows')
  t.equal(trie.size, 100)
  t.equal(trie.lookup('n00000042xyz').length, 1)
})
