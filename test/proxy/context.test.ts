import t from 'tap'
import { CidrSet } from '../../src/policy/cidr.js'
import { effectiveClient, forwardedIp } from '../../src/proxy/context.js'

t.test('X-Forwarded-For from a trusted peer: the client address in its one text form', async t => {
  const trust = new CidrSet(['10.0.0.0/8'])
  const peer = { ip: '10.0.0.5', port: 40000 }
  t.same(effectiveClient(peer, { 'x-forwarded-for': '2001:DB8:0:0:0:0:0:7' }, trust), { client: { ip: '2001:db8::7', port: 0 } })
  t.same(effectiveClient(peer, { 'x-forwarded-for': '::ffff:198.51.100.4, 10.0.0.9' }, trust), { client: { ip: '198.51.100.4', port: 0 } })
  t.same(effectiveClient({ ip: '192.0.2.1', port: 1 }, { 'x-forwarded-for': '2001:DB8::7' }, trust), { client: { ip: '192.0.2.1', port: 1 } }, 'untrusted peer: ignored')
  t.equal(effectiveClient(peer, {}, trust).client, peer)
})

t.test('X-Forwarded-For entries with a port (RFC 7239 nodes, load balancers) name the client; an unreadable one is said', async t => {
  const trust = new CidrSet(['10.0.0.0/8'])
  const peer = { ip: '10.0.0.5', port: 40000 }
  for (const [xff, ip] of [
    ['192.0.2.3:5555', '192.0.2.3'],
    ['[2001:db8::1]:5', '2001:db8::1'],
    ['[2001:DB8::1]', '2001:db8::1'],
    ['fe80::1%eth0', 'fe80::1'],
    ['[fe80::1%25eth0]:80', 'fe80::1'],
    ['192.0.2.4, 10.1.2.3:5555', '192.0.2.4'],
  ]) t.same(effectiveClient(peer, { 'x-forwarded-for': xff }, trust), { client: { ip, port: 0 } }, xff)
  for (const [xff, unreadable, ip] of [
    ['unknown', 'unknown', peer.ip],
    ['999.1.1.1', '999.1.1.1', peer.ip],
    ['[192.0.2.1]:80', '[192.0.2.1]:80', peer.ip],
    ['2001:db8::1:80', undefined, '2001:db8::1:80'],   // a bare IPv6 address: its last group is no port
    ['2001:db8::1]:80', '2001:db8::1]:80', peer.ip],
    ['192.0.2.1:99999', undefined, '192.0.2.1'],         // the address is read; the port is not used
    ['_hidden, 10.0.0.9', '_hidden', '10.0.0.9'],      // the last hop read stays the client
    [`${'x'.repeat(100)}`, 'x'.repeat(64), peer.ip],
  ] as const) {
    const r = effectiveClient(peer, { 'x-forwarded-for': xff }, trust)
    t.equal(r.client.ip, ip, xff)
    t.equal(r.unreadable, unreadable, xff)
  }
  t.equal(effectiveClient(peer, { 'x-forwarded-for': 'unknown' }, trust).client, peer, 'the peer itself, its port kept')
  t.equal(forwardedIp('[::ffff:192.0.2.1]:1'), '192.0.2.1')
})
