import t from 'tap'
import { AppError } from '../../src/errors.js'
import { parseConfigText } from '../../src/config/load.js'

function detailsOf(fn: () => unknown): string[] {
  try { fn() } catch (e) { if (e instanceof AppError) return [...e.details]; throw e }
  throw new Error('expected an AppError')
}

t.test('proxy.ech: log (the default) or block; anything else names the choices', async t => {
  t.equal(parseConfigText('{}\n', 'd.yaml').proxy.ech, 'log')
  t.equal(parseConfigText('proxy: { ech: block }\n', 'b.yaml').proxy.ech, 'block')
  t.same(detailsOf(() => parseConfigText('proxy: { ech: drop }\n', 'x.yaml')), ['x.yaml:1: proxy.ech: "drop" is not one of log, block'])
})

t.test('proxy.nonTls: decide (the default) or block', async t => {
  t.equal(parseConfigText('{}\n', 'd.yaml').proxy.nonTls, 'decide')
  t.equal(parseConfigText('proxy: { nonTls: block }\n', 'b.yaml').proxy.nonTls, 'block')
  t.same(detailsOf(() => parseConfigText('proxy: { nonTls: pass }\n', 'x.yaml')), ['x.yaml:1: proxy.nonTls: "pass" is not one of decide, block'])
})
