import t from 'tap'
import { RateLimiter, WindowedNotice } from '../../src/dns/rate-limit.js'
import { LimitKeys } from '../../src/policy/limit-key.js'

const perAddress = new LimitKeys({ ipv4Prefix: 32, ipv6Prefix: 128 })

t.test('off when qps is 0', async t => {
  const rl = new RateLimiter({ qps: 0, burst: 1 }, perAddress, () => t.fail('never limited'), () => t.fail('never limited'))
  for (let i = 0; i < 100; i++) t.ok(rl.allow('10.0.0.1', 0))
})

t.test('token bucket per client; logged once per window', async t => {
  const logs: [string, number][] = []
  const rl = new RateLimiter({ qps: 10, burst: 3 }, perAddress, (c, n) => logs.push([c, n]), () => t.fail('one client'))
  const results = Array.from({ length: 6 }, () => rl.allow('10.0.0.1', 1000))
  t.same(results, [true, true, true, false, false, false], 'burst, then dropped')
  t.ok(rl.allow('10.0.0.2', 1000), 'another client has its own bucket')
  t.same(logs, [['10.0.0.1', 1]], 'one log line for the window')
  t.ok(rl.allow('10.0.0.1', 1100), 'refilled at qps (one token per 100 ms)')
  t.notOk(rl.allow('10.0.0.1', 1100))
  t.same(logs.length, 1, 'still one line within the window')
  t.same([1, 2, 3, 4, 5].map(() => rl.allow('10.0.0.1', 11_050)), [true, true, true, false, false])
  t.same(logs, [['10.0.0.1', 1], ['10.0.0.1', 3]], 'the window\'s end: one line counting the drops held back')
})

t.test('rateLimit {qps: 20, burst: 20}, 60 queries in one second: the 20 drops are all said within the window, none held for a later drop', async t => {
  const logs: [string, number][] = []
  const rl = new RateLimiter({ qps: 20, burst: 20 }, perAddress, (c, n) => logs.push([c, n]), () => t.fail('one client'))
  let answered = 0
  for (let i = 0; i < 60; i++) if (rl.allow('10.0.0.1', 1000 + (i < 20 ? 0 : 1000))) answered++
  t.equal(answered, 40, 'the burst, then a second later its refill')
  t.same(logs, [['10.0.0.1', 1]], 'the first drop at once')
  ;(rl as unknown as { limited: WindowedNotice }).limited.flush()  // the window's end (its timer)
  t.same(logs, [['10.0.0.1', 1], ['10.0.0.1', 19]], 'the other 19 when the window ends, not minutes later at the next drop')
})

t.test('WindowedNotice: once per client per window, with the count since the last notice', async t => {
  const seen: [string, number][] = []
  const n = new WindowedNotice(10_000, (c, k) => seen.push([c, k]), () => t.fail('two clients'))
  n.note('a', 0)
  n.note('a', 1_000)
  n.note('b', 2_000)
  n.note('a', 9_999)
  t.same(seen, [['a', 1], ['b', 1]], 'the first of each client at once, the rest counted')
  n.note('a', 10_000)
  t.same(seen.at(-1), ['a', 2], 'the window\'s end: the two held back')
  n.note('a', 15_000)
  t.equal(seen.length, 3, 'told of at the window\'s end: held back again')
  n.flush()
  t.same(seen.at(-1), ['a', 2], 'at the end of the next')
  n.note('a', 40_000)
  t.same(seen.at(-1), ['a', 1], 'after a quiet window: at once')
})

t.test('WindowedNotice: what a window held back is told when it ends, without another event', async t => {
  const seen: [string, number, string][] = []
  const n = new WindowedNotice(50, (c, k, a) => seen.push([c, k, a]), () => t.fail('named'))
  const now = (): number => performance.now()
  n.note('p', now(), 'a1')
  n.note('p', now(), 'a2')
  n.note('p', now(), 'a3')
  t.same(seen, [['p', 1, 'a1']])
  for (let i = 0; i < 500 && seen.length < 2; i++) await new Promise(r => setTimeout(r, 10))
  t.same(seen, [['p', 1, 'a1'], ['p', 2, 'a3']], 'the address of the last event held back')
})

t.test('WindowedNotice: at most maxNamed clients named per window, the rest summed in one call at its end', async t => {
  const seen: [string, number][] = []
  const others: [number, number][] = []
  const n = new WindowedNotice(10_000, (c, k) => seen.push([c, k]), (c, k) => others.push([c, k]), 3)
  t.teardown(() => n.flush())
  for (let i = 0; i < 50; i++) n.note(`10.0.0.${i}`, 1000 + i)
  n.note('10.0.0.49', 1100)
  n.note('10.0.0.0', 1200)
  t.same(seen, [['10.0.0.0', 1], ['10.0.0.1', 1], ['10.0.0.2', 1]], 'the first three clients named')
  t.same(others, [], 'the rest not yet told: the window is still on')
  n.note('10.0.0.7', 12_000)                      // a new window: the last one's summary first
  t.same(others, [[48, 49]], '47 clients summed with their 48 events, and a named one held back past the three named: the window\'s sum')
  t.same(seen.at(-1), ['10.0.0.7', 1], 'a client summed is named in a later window, counting afresh')
  n.note('10.0.0.0', 12_001)
  t.same(seen.at(-1), ['10.0.0.0', 1], 'a named client whose events were summed: afresh')
  n.note('10.0.0.49', 12_002)
  t.same(seen.at(-1), ['10.0.0.49', 1])
  n.note('10.0.0.48', 12_003)
  t.same(seen.length, 6)
  n.flush()
  t.same(others, [[48, 49], [1, 1]], 'flush tells the sum at once')
  n.flush()
  t.same(others.length, 2, 'and nothing when there is nothing to tell')
  t.same(seen.map(s => s[1]).reduce((a, b) => a + b) + others.map(o => o[1]).reduce((a, b) => a + b), 56, 'each of the 56 events counted in exactly one call')
})

t.test('WindowedNotice: the sum of a window is told when it ends, without another event', async t => {
  const others: [number, number][] = []
  const n = new WindowedNotice(50, () => {}, (c, k) => others.push([c, k]), 1)
  const now = (): number => performance.now()
  n.note('a', now())
  n.note('b', now())
  n.note('c', now())
  for (let i = 0; i < 500 && others.length === 0; i++) await new Promise(r => setTimeout(r, 10))
  t.same(others, [[2, 2]])
})

t.test('RateLimiter: past 100 clients limited in a window, one line sums the rest', async t => {
  const named: string[] = []
  const others: [number, number][] = []
  const rl = new RateLimiter({ qps: 1, burst: 1 }, perAddress, c => named.push(c), (c, k) => others.push([c, k]))
  for (let i = 0; i < 300; i++) {
    const ip = `10.0.${i >> 8}.${i & 255}`
    t.ok(rl.allow(ip, 0))
    for (let j = 0; j < 3; j++) rl.allow(ip, 0)
  }
  t.equal(named.length, 100)
  t.ok(rl.allow('10.1.0.0', 10_000))
  t.notOk(rl.allow('10.1.0.0', 10_000))
  t.same(others, [[300, 800]], 'the window\'s end: the 200 past the hundred with their 600 drops, and the named hundred\'s 200 held back (the window named its hundred)')
  t.equal(named.length, 101)
})

t.test('RateLimiter: one bucket per prefix (limits.ipv6Prefix): rotating addresses in a /64 gets no fresh burst', async t => {
  const logs: [string, number, string][] = []
  const rl = new RateLimiter({ qps: 1, burst: 3 }, new LimitKeys({ ipv4Prefix: 24, ipv6Prefix: 64 }), (c, n, ip) => logs.push([c, n, ip]), () => t.fail('two clients'))
  const rotating = ['2001:db8:1:2::a', '2001:db8:1:2::b', '2001:db8:1:2:ffff::1', '2001:db8:1:2::c', '2001:db8:1:2::d']
  t.same(rotating.map(ip => rl.allow(ip, 1000)), [true, true, true, false, false], 'five addresses of one /64: one burst of 3')
  t.same(logs, [['2001:db8:1:2::/64', 1, '2001:db8:1:2::c']], 'the notice names the prefix and the address whose query was dropped')
  t.ok(rl.allow('2001:db8:1:3::a', 1000), 'the next /64 has its own bucket')
  t.same(['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4'].map(ip => rl.allow(ip, 1000)), [true, true, true, false], 'IPv4 by its /24')
  t.notOk(rl.allow('::ffff:192.0.2.5', 1000), 'an IPv4-mapped address is in the IPv4 /24')
  t.ok(rl.allow('192.0.3.1', 1000))
})

t.test('WindowedNotice: the address told is the one of the event that caused the notice', async t => {
  const seen: [string, number, string][] = []
  const n = new WindowedNotice(10_000, (c, k, a) => seen.push([c, k, a]), () => t.fail('one client'))
  n.note('p', 0, 'a1')
  n.note('p', 1, 'a2')
  n.note('p', 10_000, 'a3')
  n.note('q', 10_001)
  t.same(seen, [['p', 1, 'a1'], ['p', 1, 'a2'], ['q', 1, 'q']], 'without an address, the client itself')
  n.flush()
  t.same(seen.at(-1), ['p', 1, 'a3'])
})
