import t from 'tap'
import { className, rcodeName, typeName } from '../../src/dns/names.js'

t.test('type, class and rcode names', async t => {
  t.equal(typeName(1), 'A')
  t.equal(typeName(65), 'HTTPS')
  t.equal(typeName(999), 'TYPE999')
  t.equal(className(1), undefined, 'IN: left out of the line')
  t.equal(className(3), 'CH')
  t.equal(className(255), 'ANY')
  t.equal(className(9), 'CLASS9')
  t.equal(rcodeName(3), 'NXDOMAIN')
  t.equal(rcodeName(23), 'RCODE23')
})
