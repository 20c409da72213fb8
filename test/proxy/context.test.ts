import t from 'tap'
import { CidrSet } from '../../src/policy/cidr.js'
import { effectiveClient } from '../../src/proxy/context.js'

t.test('X-Forwarded-For from a trusted peer: the client address in its one text form', async t => {
  const trust = new CidrSet(['10.0.0.0/8'])
  const peer = { ip: '10.0.0.5', port: 40000 }
  t.same(effectiveClient(peer, { 'x-forwarded-for': '2001:DB8:0:0:0:0:0:7' }, trust), { ip: '2001:db8::7', port: 0 })
  t.same(effectiveClient(peer, { 'x-forwarded-for': '::ffff:198.51.100.4, 10.0.0.9' }, trust), { ip: '198.51.100.4', port: 0 })
  t.same(effectiveClient({ ip: '192.0.2.1', port: 1 }, { 'x-forwarded-for': '2001:DB8::7' }, trust), { ip: '192.0.2.1', port: 1 }, 'untrusted peer: ignored')
})
