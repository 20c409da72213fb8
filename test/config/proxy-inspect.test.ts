import t from 'tap'
import { parseConfigText } from '../../src/config/load.js'
import { detailsOf } from '../fixtures/config-errors.js'

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
