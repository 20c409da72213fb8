import t from 'tap'
import { parseConfigText } from '../../src/config/load.js'
import { detailsOf } from '../fixtures/config-errors.js'

t.test('limits: IPv6 clients counted by their /64, IPv4 by their address, unless set', async t => {
  t.same(parseConfigText('{}\n', 'd.yaml').limits, { ipv4Prefix: 32, ipv6Prefix: 64 })
  t.same(parseConfigText('limits: { ipv6Prefix: 56 }\n', 'd.yaml').limits, { ipv4Prefix: 32, ipv6Prefix: 56 })
  t.same(parseConfigText('limits: { ipv4Prefix: 24, ipv6Prefix: 128 }\n', 'd.yaml').limits, { ipv4Prefix: 24, ipv6Prefix: 128 })
  t.same(parseConfigText('limits: { ipv4Prefix: 8, ipv6Prefix: 32 }\n', 'd.yaml').limits, { ipv4Prefix: 8, ipv6Prefix: 32 }, 'the shortest allowed')
})

t.test('limits: a length out of range, not whole, or not a number: file, line, path and what to write', async t => {
  const text = [
    'dns: { rateLimit: { qps: 10 } }',
    'limits:',
    '  ipv6Prefix: 129',                // 3
    '  ipv4Prefix: 7',                  // 4
  ].join('\n')
  t.same(detailsOf(() => parseConfigText(text, 'l.yaml')), [
    'l.yaml:3: limits.ipv6Prefix: 129 is not an IPv6 prefix length for the limits; write 32-128 (128: each address counted alone)',
    'l.yaml:4: limits.ipv4Prefix: 7 is not an IPv4 prefix length for the limits; write 8-32 (32: each address counted alone)',
  ])
  t.same(detailsOf(() => parseConfigText('limits: { ipv4Prefix: 33, ipv6Prefix: 31 }\n', 'l.yaml')), [
    'l.yaml:1: limits.ipv4Prefix: 33 is not an IPv4 prefix length for the limits; write 8-32 (32: each address counted alone)',
    'l.yaml:1: limits.ipv6Prefix: 31 is not an IPv6 prefix length for the limits; write 32-128 (128: each address counted alone)',
  ])
  t.same(detailsOf(() => parseConfigText('limits: { ipv6Prefix: 56.5 }\n', 'l.yaml')), [
    'l.yaml:1: limits.ipv6Prefix: expected a whole number, got a number (56.5)',
  ])
  t.same(detailsOf(() => parseConfigText('limits: { ipv6Prefix: "/64" }\n', 'l.yaml')), [
    'l.yaml:1: limits.ipv6Prefix: expected a number, got a string ("/64")',
  ])
  t.match(detailsOf(() => parseConfigText('limits: { ipv6: 64 }\n', 'l.yaml'))[0], 'l.yaml:1: limits.ipv6: unknown key "ipv6"; valid keys here: ipv4Prefix, ipv6Prefix')
})
