import t from 'tap'
import { flushNotices, throttled } from '../../src/observe/throttle.js'
import { WindowedNotice } from '../../src/dns/rate-limit.js'

const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))

t.test('the first occurrence at once; those held back are said when the window ends, without a later occurrence', async t => {
  const said: [string, number][] = []
  const f = throttled((a: string, n) => said.push([a, n]), () => performance.now(), 500)   // a window wide of a loaded box's stalls
  for (let i = 0; i < 20; i++) f(`e${i}`)
  t.same(said, [['e0', 1]], 'one line at once')
  for (let i = 0; i < 200 && said.length < 2; i++) await sleep(10)
  t.same(said, [['e0', 1], ['e19', 19]], 'the other 19 at the window\'s end, with the last one\'s argument')
  f('late')
  t.equal(said.length, 2, 'said less than a window ago (at the window\'s end): held back')
  for (let i = 0; i < 200 && said.length < 3; i++) await sleep(10)
  t.same(said.at(-1), ['late', 1])
  await sleep(600)
  t.equal(said.length, 3, 'nothing held back: no line')
  f('quiet')
  t.same(said.at(-1), ['quiet', 1], 'after a quiet window: at once')
  t.equal(said.reduce((a, [, n]) => a + n, 0), 22, 'every occurrence in exactly one line')
})

t.test('an occurrence after the window, before the timer: said at once with those held back, once', async t => {
  let now = 0
  const said: [string, number][] = []
  const f = throttled((a: string, n) => said.push([a, n]), () => now, 10_000)
  f('a')
  now = 5_000
  f('b')
  now = 10_000
  f('c')
  t.same(said, [['a', 1], ['c', 2]])
  now = 3_000                                          // a clock that went back: the timer stays within the window
  f('d')
  t.same(said.length, 2)
})

t.test('flushNotices (a stop): what every notice holds back is said now, once; nothing held, nothing said', async t => {
  const said: [string, number][] = []
  const f = throttled((a: string, n) => said.push([a, n]), () => performance.now(), 60_000)
  const told: [string, number][] = []
  const w = new WindowedNotice(60_000, (c, n) => told.push([c, n]), () => {})
  f('a'); f('b'); f('c')
  w.note('10.0.0.1', 0, '10.0.0.1'); w.note('10.0.0.1', 1, '10.0.0.1')
  t.same(said, [['a', 1]])
  t.same(told, [['10.0.0.1', 1]])
  flushNotices()
  t.same(said, [['a', 1], ['c', 2]], 'the two held back, before their window (a minute) ends')
  t.same(told, [['10.0.0.1', 1], ['10.0.0.1', 1]])
  flushNotices()
  t.equal(said.length + told.length, 4, 'said once')
  w.flush()
})
