import t from 'tap'
import { isWatched } from '../src/reload.js'

t.test('a change event counts when it names a watched file, or names none', async t => {
  const names = new Set(['ngrok.txt', 'config.yaml'])
  t.equal(isWatched(names, 'ngrok.txt'), true)
  t.equal(isWatched(names, Buffer.from('config.yaml')), true, 'a Buffer file name')
  t.equal(isWatched(names, 'ngrok.txt.swp'), false, 'an editor\'s swap file is not ours')
  t.equal(isWatched(names, null), true, 'no name given: could be ours')
})

t.test('a reload that fails with an unexpected error logs it and keeps the old snapshot', async t => {
  const { createReloader } = await import('../src/reload.js')
  const { memoryEvidence } = await import('./fixtures/evidence.js')
  const ev = memoryEvidence()
  const results: boolean[] = []
  const rl = createReloader({ overrides: {}, resolvConf: '/nonexistent', evidence: ev, current: () => { throw new TypeError('no snapshot') }, swap: () => { t.fail('no swap') }, onResult: ok => results.push(ok), debounceMs: 10 })
  t.equal(rl.reload('test'), false)
  t.same(results, [false])
  t.match(ev.messages, [{ level: 'error', msg: 'reload rejected; keeping the previous config and lists', fields: { reason: 'test', errors: ['TypeError: no snapshot'] } }])
})
