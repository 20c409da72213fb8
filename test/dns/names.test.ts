import t from 'tap'
import { rcodeName, typeName } from '../../src/dns/names.js'

t.test('type and rcode names', async t => {
  t.equal(typeName(1), 'A')
  t.equal(typeName(65), 'HTTPS')
  t.equal(typeName(999), 'TYPE999')
  t.equal(rcodeName(3), 'NXDOMAIN')
  t.equal(rcodeName(23), 'RCODE23')
})
