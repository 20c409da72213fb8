import t from 'tap'
import { CidrSet, canonicalIp, canonicalIps, cidrContains, formatV6, parseAddr, parseCidr } from '../../src/policy/cidr.js'

t.test('addresses: IPv4, IPv6 forms, IPv4-mapped IPv6 as IPv4', async t => {
  t.same(parseAddr('1.2.3.4'), { family: 4, words: [0x01020304] })
  t.same(parseAddr('::1'), { family: 6, words: [0, 0, 0, 1] })
  t.same(parseAddr('::'), { family: 6, words: [0, 0, 0, 0] })
  t.same(parseAddr('1::'), { family: 6, words: [0x10000, 0, 0, 0] })
  t.same(parseAddr('1:2:3:4:5:6:7:8'), { family: 6, words: [0x10002, 0x30004, 0x50006, 0x70008] })
  t.same(parseAddr('::ffff:10.1.2.3'), { family: 4, words: [0x0a010203] }, 'mapped → IPv4')
  t.same(parseAddr('::ffff:a01:203'), { family: 4, words: [0x0a010203] }, 'mapped in hex → IPv4')
  t.same(parseAddr('64:ff9b::1.2.3.4'), { family: 6, words: [0x0064ff9b, 0, 0, 0x01020304] })
  t.same(parseAddr('fe80::1%eth0'), { family: 6, words: [0xfe800000, 0, 0, 1] }, 'zone id dropped')
  for (const bad of ['', 'x', '1.2.3', '1.2.3.256', '01.2.3.4x', ':::', '1:2:3:4:5:6:7:8:9', 'g::1', '1::2::3']) {
    t.equal(parseAddr(bad), undefined, `${bad} rejected`)
  }
})

t.test('CIDRs and containment', async t => {
  t.equal(parseCidr('10.0.0.0/8')!.prefix, 8)
  t.equal(parseCidr('10.1.2.3')!.prefix, 32, 'bare address is a /32')
  t.equal(parseCidr('::1')!.prefix, 128)
  t.equal(parseCidr('::ffff:10.0.0.0/104')!.prefix, 8, 'a mapped CIDR becomes its IPv4 form')
  t.equal(parseCidr('::ffff:10.0.0.0/95'), undefined, 'a mapped prefix shorter than 96 is not IPv4')
  for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/x', '10.0.0.0/', 'nope/8']) t.equal(parseCidr(bad), undefined, `${bad} rejected`)
  const c = parseCidr('172.16.0.0/12')!
  t.ok(cidrContains(c, parseAddr('172.31.255.255')!))
  t.notOk(cidrContains(c, parseAddr('172.32.0.0')!))
  t.notOk(cidrContains(c, parseAddr('::1')!), 'families never mix')
  t.ok(cidrContains(parseCidr('0.0.0.0/0')!, parseAddr('8.8.8.8')!))
  t.ok(cidrContains(parseCidr('fc00::/7')!, parseAddr('fd12:3456::1')!))
  t.notOk(cidrContains(parseCidr('fc00::/7')!, parseAddr('fe00::1')!))
  t.ok(cidrContains(parseCidr('2001:db8::/64')!, parseAddr('2001:db8::ffff:1')!))
  t.notOk(cidrContains(parseCidr('2001:db8::/64')!, parseAddr('2001:db8:0:1::1')!))
})

t.test('CidrSet', async t => {
  const s = new CidrSet(['10.0.0.0/8', 'fc00::/7', '::1/128'])
  t.ok(s.has('10.9.9.9'))
  t.ok(s.has('::ffff:10.2.3.4'), 'IPv4-mapped client matches an IPv4 CIDR')
  t.ok(s.has('::1'))
  t.ok(s.has('fd00::5'))
  t.notOk(s.has('11.0.0.1'))
  t.notOk(s.has('::2'))
  t.notOk(s.has('garbage'))
  t.throws(() => new CidrSet(['10.0.0.0/99']), /not a CIDR/)
})

t.test('canonicalIp: one text per address, as the evidence names clients', async t => {
  const cases: [string, string][] = [
    ['192.0.2.1', '192.0.2.1'],
    ['::ffff:192.0.2.1', '192.0.2.1'],
    ['::FFFF:C000:0201', '192.0.2.1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['::1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['fe80::1%eth0', 'fe80::1'],
    ['not:an address', 'not:an address'],
    ['localhost', 'localhost'],
  ]
  for (const [input, want] of cases) t.equal(canonicalIp(input), want, input)
  t.equal(formatV6([0x2001, 0xdb8, 0, 0, 1, 0, 0, 0]), '2001:db8:0:0:1::', 'the longest zero run, not the first')
})

t.test('canonicalIps: a DNS client\'s address as the evidence names it, remembered per address and bounded', async t => {
  const ip = canonicalIps()
  t.equal(ip('192.0.2.1'), '192.0.2.1')
  t.equal(ip('fe80::1%lo'), 'fe80::1', 'a link-local client without its zone, as the proxy names it')
  t.equal(ip('fe80::1%lo'), 'fe80::1', 'again, from the memo')
  t.equal(ip('2001:DB8::0:1'), '2001:db8::1')
  // more addresses than the memo keeps: it starts again, and every answer is still right
  const wrong: string[] = []
  for (let i = 1; i <= 5000; i++) if (ip(`fe80::${i.toString(16)}%eth0`) !== `fe80::${i.toString(16)}`) wrong.push(i.toString(16))
  t.same(wrong, [], '5000 addresses, each named right')
  t.equal(ip('fe80::1%lo'), 'fe80::1')
})
