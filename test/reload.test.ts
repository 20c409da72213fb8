import t from 'tap'
import { isWatched } from '../src/reload.js'

t.test('a change event counts when it names a watched file, or names none', async t => {
  const names = new Set(['ngrok.txt', 'config.yaml'])
  t.equal(isWatched(names, 'ngrok.txt'), true)
  t.equal(isWatched(names, Buffer.from('config.yaml')), true, 'a Buffer file name')
  t.equal(isWatched(names, 'ngrok.txt.swp'), false, 'an editor\'s swap file is not ours')
  t.equal(isWatched(names, null), true, 'no name given: could be ours')
})
