import t from 'tap'
import { DestinationGuard, addressLiteral, authorityProblem, closeDestination, decisionDestination, destinationFields, destinationOfName, parseAuthority, parseIpv4Loose } from '../../src/proxy/address.js'
import { CidrSet } from '../../src/policy/cidr.js'

t.test('strict host:port', async t => {
  t.same(parseAuthority('example.com:443'), { host: 'example.com', port: 443 })
  t.same(parseAuthority('Example.COM.:443'), { host: 'Example.COM', port: 443 }, 'trailing dot dropped; case left to the policy')
  t.same(parseAuthority('[::1]:443'), { host: '::1', port: 443, ip: '::1' })
  t.same(parseAuthority('[::ffff:127.0.0.1]:443'), { host: '::ffff:127.0.0.1', port: 443, ip: '127.0.0.1' }, 'IPv4-mapped → IPv4')
  t.same(parseAuthority('example.com', 80), { host: 'example.com', port: 80 })
  for (const bad of ['example.com', 'example.com:', 'example.com:91337', 'example.com:-1', 'example.com:007', 'example.com:0',
    '[[example.net]]:443', '[example.net]:443', '[1.2.3.4]:443', 'user@example.com:443', 'example.com:443/x', ':443', '1.2.3.4.5:443', '0x1g.1:443', '08.1.1.1:443']) {
    t.equal(parseAuthority(bad), undefined, bad)
  }
  // a label over 63 octets, a name over 253: no host name (400, as a bad character is)
  t.equal(parseAuthority(`${'a'.repeat(64)}.ngrok.io:443`), undefined, 'a label of 64')
  t.same(parseAuthority(`${'a'.repeat(63)}.ngrok.io:443`), { host: `${'a'.repeat(63)}.ngrok.io`, port: 443 }, 'a label of 63')
  const n253 = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`
  t.equal(n253.length, 253)
  t.same(parseAuthority(`${n253}.:443`), { host: n253, port: 443 }, '253 characters (a trailing dot besides)')
  t.equal(parseAuthority(`${n253}x:443`), undefined, '254 characters')
})

t.test('authorityProblem: what is wrong with a target parseAuthority refused, in words', async t => {
  const cases: [string, number | undefined, string][] = [
    ['example.com', undefined, 'no port: write host:port'],
    ['[::1]', undefined, 'no port: write host:port'],
    ['example.com:', undefined, 'no port after ":"'],
    ['example.com:https', undefined, 'port "https" is not a number'],
    ['example.com:-1', undefined, 'port "-1" is not a number'],
    ['example.com:007', undefined, 'port 007 has a leading zero'],
    ['example.com:0', undefined, 'port 0 is out of range (1-65535)'],
    ['example.com:91337', undefined, 'port 91337 is out of range (1-65535)'],
    ['example.com:123456', 80, 'port 123456 is out of range (1-65535)'],
    ['[::1]:99999', undefined, 'port 99999 is out of range (1-65535)'],
    ['bad_name!.ngrok.io:443', undefined, 'host "bad_name!.ngrok.io" is no valid name (character "!")'],
    ['bad_name!.ngrok.io', 80, 'host "bad_name!.ngrok.io" is no valid name (character "!")'],
    [`${'a'.repeat(64)}.ngrok.io:443`, undefined, `host "${'a'.repeat(40)}…" is no valid name (a label of 64 characters; at most 63)`],
    [`${'a.'.repeat(127)}io.:443`, undefined, `host "${'a.'.repeat(20)}…" is no valid name (256 characters; at most 253)`],
    ['1.2.3.4.5:443', undefined, 'host "1.2.3.4.5" is no valid name or IPv4 address'],
    ['08.1.1.1:443', undefined, 'host "08.1.1.1" is no valid name or IPv4 address'],
    [':443', undefined, 'no host'],
    ['', 80, 'no host'],
    ['[example.net]:443', undefined, 'host [example.net] is no IPv6 address'],
    ['[1.2.3.4]:443', undefined, 'host [1.2.3.4] is no IPv6 address'],
    ['[[example.net]]:443', undefined, '"]:443" after [[example.net]: write [IPv6]:port'],
    ['[::1', undefined, '"[" is not closed: write [IPv6]:port'],
    ['::1:443', undefined, 'an IPv6 address goes in brackets: write [IPv6]:port'],
    ['::1', 80, 'an IPv6 address goes in brackets: write [IPv6]:port'],
    ['a:b:c', undefined, 'more than one ":": write host:port'],
    ['user@example.com:443', undefined, 'userinfo ("user@") is no part of a target: write host:port'],
    ['example.com:443/x', undefined, 'a path, query or space is no part of a target: write host:port'],
  ]
  for (const [s, port, why] of cases) {
    t.equal(parseAuthority(s, port), undefined, `${s}: refused`)
    t.equal(authorityProblem(s, port), why, s)
  }
})

t.test('IPv4 in every form a URL parser accepts becomes dotted', async t => {
  t.equal(parseAuthority('2130706433:443')!.ip, '127.0.0.1')
  t.equal(parseAuthority('0177.0.0.1:443')!.ip, '127.0.0.1')
  t.equal(parseAuthority('0x7f.1:443')!.ip, '127.0.0.1')
  t.equal(parseAuthority('127.1:443')!.ip, '127.0.0.1')
  t.equal(parseAuthority('127.0.0.1.:443')!.ip, '127.0.0.1')
  t.equal(parseIpv4Loose('0x'), '0.0.0.0')
  t.equal(parseIpv4Loose('169.254.43518'), '169.254.169.254')
  t.equal(parseIpv4Loose('4294967296'), undefined)
  t.equal(parseIpv4Loose('256.1.1.1'), undefined)
  t.equal(parseIpv4Loose('1.2.3.256'), undefined)
  t.equal(parseIpv4Loose('1.2.3.4.5'), undefined)
})

t.test('addressLiteral: the canonical address a host seen on a line names, or undefined for a name', async t => {
  for (const [host, ip] of [['192.0.2.1', '192.0.2.1'], ['[2001:DB8:0::1]', '2001:db8::1'], ['2001:db8:0:0:0:0:0:1', '2001:db8::1'],
    ['::ffff:192.0.2.1', '192.0.2.1'], ['[::ffff:192.0.2.1]', '192.0.2.1'], ['0x7f000001', '127.0.0.1'], ['2130706433', '127.0.0.1'], ['127.1', '127.0.0.1']] as const) {
    t.equal(addressLiteral(host), ip, host)
  }
  for (const name of ['example.com', 'x.0x.example', '1.2.3.4.5', '4294967296', '[example.com]', '[1.2.3.4]x', 'a.0x1g', '']) t.equal(addressLiteral(name), undefined, name)
})

t.test('destination guard', async t => {
  const none = new CidrSet([])
  const g = new DestinationGuard([{ address: '127.0.0.1', port: 3128 }, { address: '0.0.0.0', port: 3129 }, { address: '::', port: 3130 }], ['192.0.2.10', 'bogus'])
  const forbidden = ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '100.100.100.200', '100.64.0.1', '0.0.0.0',
    '255.255.255.255', '224.0.0.1', '::1', '::', 'fc00::1', 'fd12::1', 'fe80::1', 'ff02::2', '::ffff:127.0.0.1', '64:ff9b::a00:1', '2002:a00:1::1', '2001:0:4136:e378::1', '::127.0.0.1']
  for (const ip of forbidden) t.match(g.check(ip, 443, none), /is .*\(/, ip)
  t.equal(g.check('203.0.113.9', 443, none), undefined)
  t.equal(g.check('2606:4700::1', 443, none), undefined)
  t.equal(g.check('127.0.0.1', 443, new CidrSet(['127.0.0.0/8'])), undefined, 'allowDestinations exempts')
  const lo = new CidrSet(['127.0.0.0/8', '192.0.2.0/24', '::1/128'])
  t.match(g.check('127.0.0.1', 3128, lo), /own listener/, 'self is never allowed')
  t.equal(g.check('127.0.0.2', 3128, lo), undefined, 'another loopback address is not the listener')
  t.match(g.check('127.0.0.5', 3129, lo), /own listener/, 'wildcard listener: any loopback')
  t.match(g.check('192.0.2.10', 3129, lo), /own listener/, 'wildcard listener: a local interface address')
  t.match(g.check('::1', 3130, lo), /own listener/)
  t.equal(g.check('192.0.2.11', 3129, lo), undefined)
  t.match(g.check('nope', 1, none), /not an address/)
})

t.test('IPv4-translated (::ffff:0:0:0/96) is decided as the IPv4 it embeds; site-local fec0::/10 is refused', async t => {
  const none = new CidrSet([])
  const g = new DestinationGuard([{ address: '0.0.0.0', port: 3128 }], [])
  t.match(g.check('::ffff:0:7f00:1', 443, none), /::ffff:0:7f00:1 is loopback \(127\.0\.0\.0\/8\)/, '127.0.0.1 translated')
  t.match(g.check('::ffff:0:a9fe:a9fe', 80, none), /link-local/, '169.254.169.254 translated')
  t.match(g.check('0:0:0:0:ffff:0:a00:1', 80, none), /private/, '10.0.0.1 translated, written out')
  t.match(g.check('::ffff:0:7f00:1', 3128, none), /own listener/, 'a wildcard listener through its translated loopback form')
  t.equal(g.check('::ffff:0:7f00:1', 443, new CidrSet(['127.0.0.0/8'])), undefined, 'allowDestinations as IPv4 exempts it')
  t.equal(g.check('::ffff:0:808:808', 443, none), undefined, 'a public IPv4 translated passes')
  for (const ip of ['fec0::1', 'feff:ffff::1', 'fec0:0:0:ffff::1']) t.match(g.check(ip, 443, none), /site-local \(deprecated\) \(fec0::\/10\)/, ip)
  // near misses of ::ffff:0:0:0/96 stay IPv6 and are decided as such
  t.equal(g.check('1::ffff:0:7f00:1', 443, none), undefined, 'first word not 0')
  t.equal(g.check('0:0:1:0:0:ffff:7f00:1', 443, none), undefined, 'second word not 0')
  t.equal(g.check('::fffe:0:7f00:1', 443, none), undefined, 'third word not ffff:0')
  t.equal(g.check('::ffff:1:7f00:1', 443, none), undefined, 'third word ffff:1')
  t.equal(g.check('ff0::1', 443, none), undefined, 'ff0::/16 is not multicast')
})

t.test('NAT64 (64:ff9b::/96) is decided as the IPv4 address it embeds: IPv4-only sites pass, internal ones do not', async t => {
  const none = new CidrSet([])
  const g = new DestinationGuard([{ address: '0.0.0.0', port: 3128 }], [])
  t.equal(g.check('64:ff9b::5db8:d822', 443, none), undefined, '93.184.216.34 through the gateway (it was refused as NAT64, every IPv4-only site with it)')
  t.equal(g.check('64:ff9b::8.8.8.8', 443, none), undefined)
  t.match(g.check('64:ff9b::7f00:1', 443, none), /^64:ff9b::7f00:1 \(NAT64 of 127\.0\.0\.1\) is loopback \(127\.0\.0\.0\/8\)/)
  t.match(g.check('64:ff9b::a9fe:a9fe', 443, none), /NAT64 of 169\.254\.169\.254\) is link-local \(cloud metadata\)/)
  t.match(g.check('64:ff9b::10.1.2.3', 443, none, 'n.test'), /^n\.test resolves to 64:ff9b::10\.1\.2\.3 \(NAT64 of 10\.1\.2\.3\), which is private \(10\.0\.0\.0\/8\); list 10\.1\.2\.3 in proxy\.allowDestinations to allow$/, 'the fix names what to list: the IPv4 address')
  t.match(g.check('10.1.2.3', 443, none), /; list it in proxy\.allowDestinations to allow$/)
  // allowing the prefix no longer allows what it embeds; IPv4 CIDRs in allowDestinations apply
  t.match(g.check('64:ff9b::7f00:1', 443, new CidrSet(['64:ff9b::/96'])), /loopback/)
  t.equal(g.check('64:ff9b::a00:1', 443, new CidrSet(['10.0.0.0/8'])), undefined)
  t.match(g.check('64:ff9b:1::a00:1', 443, none), /NAT64 \(local use\) \(64:ff9b:1::\/48\)/, 'the local-use prefix (any embedding) stays refused')
  t.equal(g.check('64:ff9b::1:0:a00:1', 443, none), undefined, 'outside the /96: an ordinary IPv6 address')
  t.match(g.check('2001:2::1', 443, none), /benchmarking \(2001:2::\/48\)/, 'as 198.18.0.0/15 is')
  t.match(g.check('2001:20::1', 443, none), /ORCHIDv2/)
})

t.test('destination guard: the other listeners of this process, read at each check', async t => {
  const lo = new CidrSet(['127.0.0.0/8', '::1/128'])
  const others: { address: string; port: number }[] = [{ address: '127.0.0.1', port: 9153 }]
  let list = others
  const g = new DestinationGuard([{ address: '127.0.0.1', port: 3128 }], ['192.0.2.10'], () => list)
  t.match(g.check('127.0.0.1', 9153, lo), /127\.0\.0\.1:9153 is one of tunnelguard's own listeners/, 'admin')
  t.equal(g.check('127.0.0.1', 1053, lo), undefined)
  others.push({ address: '::', port: 1053 })
  t.match(g.check('127.0.0.1', 1053, lo), /own listeners/, 'a listener added later (wildcard): loopback')
  t.match(g.check('::ffff:192.0.2.10', 1053, lo), /own listeners/, 'a listener added later (wildcard): a local address')
  list = [{ address: '127.0.0.2', port: 1053 }, { address: '127.0.0.2', port: 8443 }]
  t.equal(g.check('127.0.0.1', 1053, lo), undefined, 'another list: read again')
  list = [{ address: '127.0.0.2', port: 1053 }, { address: '127.0.0.3', port: 8443 }]
  t.match(g.check('127.0.0.3', 8443, lo), /own listeners/, 'another list of the same length: read again')
  t.match(g.check('127.0.0.1', 3128, lo), /own listeners/, 'the proxy\'s own still')
  t.equal(new DestinationGuard([], []).check('127.0.0.1', 9153, lo), undefined, 'no others by default')
})

t.test('an address a client names is destination.ip, canonical, with no destination.domain; a name is destination.domain', async t => {
  t.same(parseAuthority('[2001:DB8:0:0::1]:443'), { host: '2001:DB8:0:0::1', port: 443, ip: '2001:db8::1' }, 'the address canonical, the host as written')
  const v6 = parseAuthority('[2001:DB8::1]:443')!
  const v4 = parseAuthority('0x7f000001:443')!
  const name = parseAuthority('Example.COM:443')!
  t.same(decisionDestination(v6, '2001:db8::1'), { ip: '2001:db8::1', port: 443 })
  t.same(decisionDestination(v4), { ip: '127.0.0.1', port: 443 })
  t.same(decisionDestination(name, '192.0.2.1'), { domain: 'Example.COM', ip: '192.0.2.1', port: 443 })
  t.same(destinationFields(v6, '2001:db8::1'), { 'destination.ip': '2001:db8::1' })
  t.same(destinationFields(name, 'example.com'), { 'destination.domain': 'example.com' })
  t.same(destinationOfName('2001:DB8::0:1'), { ip: '2001:db8::1' })
  t.same(destinationOfName('192.0.2.1'), { ip: '192.0.2.1' })
  t.same(destinationOfName('a.ngrok.io'), { domain: 'a.ngrok.io' })
  // a close line's fields: a later request on the connection replaces the earlier one's destination; a name lowercased, as the decision line has it
  const close: Record<string, unknown> = {}
  closeDestination(close, name)
  close['destination.ip'] = '192.0.2.1'
  t.same(close, { 'destination.domain': 'example.com', 'destination.ip': '192.0.2.1', 'destination.port': 443 })
  closeDestination(close, v4)
  t.same(JSON.parse(JSON.stringify(close)), { 'destination.ip': '127.0.0.1', 'destination.port': 443 })
  closeDestination(close, name)
  t.same(JSON.parse(JSON.stringify(close)), { 'destination.domain': 'example.com', 'destination.port': 443 }, 'the last address dialled is not this request\'s')
})
