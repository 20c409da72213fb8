import t from 'tap'
import { join } from 'node:path'
import { builtinConfig, loadConfig, parseConfigText } from '../../src/config/load.js'
import { sinkholeCaptureProblem } from '../../src/config/warnings.js'
import { applyOverrides } from '../../src/overrides.js'

const NULLS = { ipv4: '0.0.0.0', ipv6: '::' }

t.test('a capture listener on the sinkhole address, or on a wildcard with a real sinkhole address, receives: no warning', async t => {
  t.equal(sinkholeCaptureProblem({ ...NULLS, listen: [] }), undefined, 'no capture configured')
  t.equal(sinkholeCaptureProblem({ ipv4: '192.0.2.7', ipv6: '::', listen: ['192.0.2.7:443', '192.0.2.7:80'] }), undefined)
  t.equal(sinkholeCaptureProblem({ ipv4: '0.0.0.0', ipv6: '2001:db8::7', listen: ['[2001:db8:0:0::7]:443'] }), undefined, 'IPv6 compared in one form')
  t.equal(sinkholeCaptureProblem({ ipv4: '0.0.0.0', ipv6: '2001:db8::7', listen: ['127.0.0.1:443', '[2001:db8::7]:443'] }), undefined, 'one listener that receives is enough')
  t.equal(sinkholeCaptureProblem({ ipv4: '192.0.2.7', ipv6: '::', listen: ['0.0.0.0:443'] }), undefined, '0.0.0.0 takes a real IPv4 sinkhole')
  t.equal(sinkholeCaptureProblem({ ipv4: '192.0.2.7', ipv6: '::', listen: ['[::]:443'] }), undefined, ':: takes IPv4 too (dual-stack)')
  t.equal(sinkholeCaptureProblem({ ipv4: '0.0.0.0', ipv6: '2001:db8::7', listen: ['[::]:443'] }), undefined)
  t.equal(sinkholeCaptureProblem({ ...NULLS, listen: ['sinkhole.lan:443'] }), undefined, 'a host name cannot be compared: no warning')
})

t.test('a capture nothing reaches: the warning names the listeners, the answers and what to set', async t => {
  // the user test: answers lead nowhere, the listener is on an address of its own
  t.equal(sinkholeCaptureProblem({ ...NULLS, listen: ['127.0.0.250:443', '127.0.0.250:80'] }),
    'nothing will reach the capture listeners on 127.0.0.250:443, 127.0.0.250:80: DNS answers sinkholed names with 0.0.0.0 (sinkhole.ipv4) '
    + 'and :: (sinkhole.ipv6), so clients connect there (0.0.0.0 and :: lead nowhere); set sinkhole.ipv4: 127.0.0.250, the listener\'s own address (one clients can reach)')
  // a wildcard listener with the null sinkhole addresses is useless for capture too
  t.equal(sinkholeCaptureProblem({ ...NULLS, listen: ['0.0.0.0:443'] }),
    'nothing will reach the capture listener on 0.0.0.0:443: DNS answers sinkholed names with 0.0.0.0 (sinkhole.ipv4) and :: (sinkhole.ipv6), '
    + 'so clients connect there (0.0.0.0 and :: lead nowhere); set sinkhole.ipv4 to an address of this host that clients can reach (a listener on 0.0.0.0 takes it)')
  t.match(sinkholeCaptureProblem({ ...NULLS, listen: ['[::]:443'] }), /; set sinkhole\.ipv4 \(or sinkhole\.ipv6\) to an address of this host that clients can reach \(a listener on :: takes it\)$/)
  t.match(sinkholeCaptureProblem({ ipv4: '0.0.0.0', ipv6: '2001:db8::7', listen: ['0.0.0.0:443'] }), /with 0\.0\.0\.0 \(sinkhole\.ipv4\) and 2001:db8::7 \(sinkhole\.ipv6\), so clients connect there \(0\.0\.0\.0 leads nowhere\); set sinkhole\.ipv4 to/,
    'an IPv4 wildcard does not take an IPv6 sinkhole')
  t.match(sinkholeCaptureProblem({ ipv4: '192.0.2.1', ipv6: '2001:db8::1', listen: ['192.0.2.2:443', '[2001:db8:0::2]:443'] }),
    /sinkhole\.ipv6\), so clients connect there; set sinkhole\.ipv4: 192\.0\.2\.2 or sinkhole\.ipv6: "2001:db8::2", the listener's own address/, 'real addresses elsewhere: no "nowhere"')
})

t.test('the loader attaches the warning with file and line; the built-in config has none', async t => {
  const c = parseConfigText('dns: { upstreams: ["udp://127.0.0.1:53"] }\nsinkhole:\n  ipv4: 0.0.0.0\n  listen: ["127.0.0.250:443"]\n', 's.yaml')
  t.equal(c.warnings.length, 1)
  t.equal(c.warnings[0]!.source, 's.yaml:4', 'the line of sinkhole.listen')
  t.match(c.warnings[0]!.message, /^sinkhole\.listen: nothing will reach the capture listener on 127\.0\.0\.250:443: .*set sinkhole\.ipv4: 127\.0\.0\.250/)
  t.ok(Object.isFrozen(c.warnings))
  t.same(parseConfigText('sinkhole: { ipv4: 127.0.0.250, listen: ["127.0.0.250:443"] }\n', 'ok.yaml').warnings, [])
  t.same(builtinConfig({ resolvConf: '/nonexistent' }).warnings, [])
  t.same(loadConfig(join(t.testdir({ 'e.yaml': '' }), 'e.yaml')).warnings, [])
})

t.test('a log level above info loses the evidence; a config that listens on nothing', async t => {
  const w = (text: string) => parseConfigText(text, 'w.yaml').warnings.map(x => `${x.source} ${x.message}`)
  t.same(w('dns: { upstreams: ["udp://127.0.0.1:53"] }\nlog:\n  level: warn\n'), [
    'w.yaml:3 log.level: at warn, only the lists\' decisions are written (block, sinkhole, alert: at warn); the lines of allows, of passes (log.queries: all) and of the proxy\'s own refusals (a port, an internal address: at info) are not: which machine asked for what is not recorded; set log.level: info (the default)',
  ])
  for (const level of ['error', 'fatal', 'silent']) {
    t.same(w(`log: { level: ${level} }\n`), [
      `w.yaml:1 log.level: at ${level}, no decision line is written, not even an alert's: which machine asked for what is not recorded; set log.level: info (the default)`,
    ], level)
  }
  for (const level of ['info', 'debug', 'trace']) t.same(w(`log: { level: ${level} }\n`), [], level)
  t.same(w('dns:\n  listen: []\nproxy: { listen: [] }\n'), [
    'w.yaml:2 dns.listen: dns.listen, proxy.listen and sinkhole.listen are all empty: serve would answer no query and proxy nothing; give dns.listen or proxy.listen an address',
  ])
  t.same(w('dns: { listen: [] }\nproxy: { listen: [] }\nsinkhole: { ipv4: 127.0.0.250, listen: ["127.0.0.250:443"] }\n'), [], 'a capture listener alone is something')
  t.same(w('dns: { listen: [] }\n'), [], 'the proxy listens')
})

t.test('listeners given on the command line (--dns, --proxy) drop the "listens on nothing" warning, and only it', async t => {
  const c = parseConfigText('dns: { listen: [] }\nproxy: { listen: [] }\nlog: { level: warn }\n', 'o.yaml')
  t.equal(c.warnings.length, 2)
  t.same(applyOverrides(c, { dns: ['127.0.0.1:0'] }).warnings.map(w => w.source), ['o.yaml:3'], '--dns: the log.level warning stays')
  t.same(applyOverrides(c, { proxy: ['127.0.0.1:0'] }).warnings.map(w => w.source), ['o.yaml:3'])
  t.equal(applyOverrides(c, { upstreams: ['udp://127.0.0.1:53'] }).warnings.length, 2, 'an --upstream gives no listener')
  t.equal(applyOverrides(c, { dns: [] }).warnings.length, 2)
})

t.test('a DNS listener on [::] takes IPv6 clients only: warned, unless an IPv4 listener shares its port', async t => {
  const w = (text: string) => parseConfigText(text, 'v6.yaml').warnings.map(x => `${x.source} ${x.message}`)
  t.same(w('dns:\n  listen:\n    - "0.0.0.0:5353"\n    - "[::]:53"\n'), [
    'v6.yaml:4 dns.listen[1]: [::]:53 takes IPv6 clients only (a DNS listener on an IPv6 address is IPv6-only, as unbound\'s and BIND\'s are, unlike proxy.listen); '
    + 'IPv4 clients get no answer and move on to their next resolver: add "0.0.0.0:53" (or an IPv4 address of this host) to dns.listen',
  ], 'an IPv4 listener on another port does not take them')
  t.equal(w('dns: { listen: ["[0:0::0]:5353"] }\n').length, 1, 'written out in full')
  t.same(w('dns: { listen: ["[::]:53", "0.0.0.0:53"] }\n'), [])
  t.equal(w('dns: { listen: ["127.0.0.1:53", "[::]:53"] }\n').length, 1, 'IPv4 loopback takes only this host')
  t.same(w('dns: { listen: ["[::]:53", "192.0.2.1:53"] }\n'), [], 'an address of this host takes its IPv4 clients')
  t.same(w('dns: { listen: ["[::]:53", "[::ffff:10.0.0.1]:53"] }\n'), [], 'an IPv4-mapped address listens on its IPv4 address')
  t.same(w('dns: { listen: ["[::]:53", "[::ffff:0.0.0.0]:53"] }\n'), [], 'the IPv4 wildcard, mapped')
  t.equal(w('dns: { listen: ["[::]:53", "[::ffff:127.0.0.1]:53"] }\n').length, 1, 'IPv4 loopback, mapped, takes only this host')
  t.same(w('dns: { listen: ["[::1]:53"] }\n'), [], 'a single IPv6 address is meant to be IPv6')
  const c = parseConfigText('dns: { listen: ["[::]:53"] }\n', 'o.yaml')
  t.equal(c.warnings.length, 1)
  t.same(applyOverrides(c, { dns: ['0.0.0.0:53'] }).warnings, [], '--dns replaces the listener warned about')
  t.equal(applyOverrides(c, { proxy: ['127.0.0.1:0'] }).warnings.length, 1, '--proxy does not')
})

t.test('lists: {} names no list: warned', async t => {
  const w = (text: string) => parseConfigText(text, 'w.yaml').warnings.map(x => `${x.source} ${x.message}`)
  t.same(w('proxy: { listen: [] }\nlists: {}\n'), [
    'w.yaml:2 lists: lists: {} names no list: nothing is blocked, sinkholed or alerted on; leave lists: out for the shipped lists, or name one (ngrok: { files: [blocklists/ngrok.txt], action: sinkhole })',
  ])
  t.same(w('lists:\n  mine: { urls: ["https://example.org/l.txt"] }\n'), [], 'a remote list')
  t.same(w('dns: { upstreams: ["udp://127.0.0.1:53"] }\n'), [], 'lists: left out: the shipped lists, no warning')
})
