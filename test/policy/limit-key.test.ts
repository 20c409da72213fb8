import t from 'tap'
import { LimitKeys, isPrefix, keysFor, limitKey } from '../../src/policy/limit-key.js'

const DEFAULT = { ipv4Prefix: 32, ipv6Prefix: 64 }
const key = (ip: string, ipv6Prefix = 64, ipv4Prefix = 32): string => limitKey(ip, { ipv4Prefix, ipv6Prefix })

t.test('IPv6: the network of the prefix, RFC 5952, with its length', async t => {
  t.equal(key('2001:db8:1:2:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64')
  t.equal(key('2001:0db8:0001:0002:0000:0000:0000:0001'), '2001:db8:1:2::/64', 'written out in full')
  t.equal(key('2001:DB8:1:2::1'), '2001:db8:1:2::/64', 'upper case')
  t.equal(key('2001:db8:1:2::'), '2001:db8:1:2::/64', 'the network itself')
  t.equal(key('2001:db8:1:3::1'), '2001:db8:1:3::/64', 'the next /64 is another client')
  t.equal(key('::1'), '::/64')
  t.equal(key('2001:db8:1:2ff::1', 56), '2001:db8:1:200::/56', '/56: the low 8 bits of the fourth group go')
  t.equal(key('2001:db8:1:2ff::1', 56), key('2001:db8:1:200:ffff:ffff:ffff:ffff', 56), 'one /56, two ends of it')
  t.not(key('2001:db8:1:300::1', 56), key('2001:db8:1:2ff::1', 56))
  t.equal(key('2001:db8:abcd:1234::1', 48), '2001:db8:abcd::/48', 'on a group boundary')
  t.equal(key('2001:db8:ffff::1', 33), '2001:db8:8000::/33', 'one bit into a group')
  t.equal(key('2001:db8:ffff::1', 32), '2001:db8::/32', 'the shortest allowed')
  t.equal(key('2001:db8:1:2:aaaa:bbbb:cccc:dddd', 127), '2001:db8:1:2:aaaa:bbbb:cccc:dddc/127')
})

t.test('IPv6 at /128: each address its own key, in the canonical form and without a "/"', async t => {
  t.equal(key('2001:db8:1:2::1', 128), '2001:db8:1:2::1')
  t.equal(key('2001:0db8:0:0:1:0:0:1', 128), '2001:db8::1:0:0:1', 'RFC 5952: the first longest run of zeros as ::')
  t.equal(key('fe80::1%eth0', 128), 'fe80::1', 'a link-local address without its zone, as canonicalIp names it')
  t.notOk(isPrefix(key('2001:db8::1', 128)))
  t.ok(isPrefix(key('2001:db8::1', 64)))
})

t.test('IPv6 link-local (fe80::/10): each address by itself at any prefix; every host on a link shares fe80::/64', async t => {
  t.equal(key('fe80::a11:22ff:fe33:4455'), 'fe80::a11:22ff:fe33:4455')
  t.equal(key('fe80::b99:88ff:fe77:6655%eth0'), 'fe80::b99:88ff:fe77:6655', 'another host on the link: another key, no zone')
  t.equal(key('febf:ffff::1', 48), 'febf:ffff::1', 'the top of fe80::/10')
  t.equal(key('fec0::1'), 'fec0::/64', 'just above it (site-local): grouped as any other')
  t.equal(key('fe7f::1'), 'fe7f::/64', 'just below it')
})

t.test('link-local with a zone: the zone is not part of the key', async t => {
  t.equal(key('fe80::1%eth0'), 'fe80::1')
  t.equal(key('fe80::1%eth1'), key('fe80::1'), 'one address on two links: one key (the zone is not logged either)')
  t.not(key('fe80::2%eth1'), key('fe80::1'))
})

t.test('IPv4, and IPv4-mapped IPv6 as IPv4', async t => {
  t.equal(key('192.0.2.77'), '192.0.2.77', '/32 (the default): the address')
  t.notOk(isPrefix(key('192.0.2.77')))
  t.equal(key('192.0.2.77', 64, 24), '192.0.2.0/24')
  t.equal(key('192.0.2.77', 64, 16), '192.0.0.0/16')
  t.equal(key('255.255.255.255', 64, 8), '255.0.0.0/8')
  t.equal(key('10.255.255.255', 64, 31), '10.255.255.254/31')
  t.equal(key('::ffff:192.0.2.77'), '192.0.2.77', 'mapped: IPv4 at /32, not an IPv6 /64')
  t.equal(key('::ffff:192.0.2.77', 64, 24), '192.0.2.0/24', 'mapped: the IPv4 prefix')
  t.equal(key('::ffff:c000:24d', 64, 24), '192.0.2.0/24', 'mapped in hex')
  t.equal(key('::ffff:192.0.2.77', 128), '192.0.2.77', 'the IPv6 prefix does not apply to it')
})

t.test('text that is not an address is its own key', async t => {
  t.equal(key('nonsense'), 'nonsense')
  t.equal(key('1::2::3'), '1::2::3')
})

t.test('LimitKeys: an IPv4 address at /32 is returned as it is; others worked out once and remembered', async t => {
  const k = new LimitKeys(DEFAULT)
  const ip = ['192.0.2', '1'].join('.')                       // a string made at run time, not an interned literal
  t.equal(k.key(ip), ip)
  t.equal(k.key('2001:db8:1:2::a'), '2001:db8:1:2::/64')
  t.equal(k.key('2001:db8:1:2::b'), '2001:db8:1:2::/64')
  t.equal(k.key('2001:db8:1:2::a'), '2001:db8:1:2::/64', 'from the memo')
  t.equal(k.key('::ffff:192.0.2.1'), '192.0.2.1')
  const v4 = new LimitKeys({ ipv4Prefix: 24, ipv6Prefix: 128 })
  t.equal(v4.key('192.0.2.1'), '192.0.2.0/24')
  t.equal(v4.key('192.0.2.200'), '192.0.2.0/24')
  t.equal(v4.key('2001:db8::1'), '2001:db8::1')
  let wrong = 0
  for (let i = 0; i < 5000; i++) if (v4.key(`10.${i >> 8}.${i & 255}.1`) !== `10.${i >> 8}.${i & 255}.0/24`) wrong++
  t.equal(wrong, 0, 'more addresses than the memo keeps')
  t.equal(v4.key('192.0.2.3'), '192.0.2.0/24', 'right after the memo started again')
})

t.test('keysFor: the same LimitKeys while the prefixes are the same (a reload), new ones when they change', async t => {
  const a = keysFor(undefined, DEFAULT)
  t.equal(a.prefixes, DEFAULT)
  t.equal(keysFor(a, { ...DEFAULT }), a, 'equal prefixes from another config object')
  const b = keysFor(a, { ...DEFAULT, ipv6Prefix: 56 })
  t.not(b, a)
  t.equal(b.key('2001:db8:1:2::1'), '2001:db8:1::/56')
  t.not(keysFor(b, { ipv4Prefix: 24, ipv6Prefix: 56 }), b)
})
