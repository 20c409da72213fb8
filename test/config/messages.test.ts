import t from 'tap'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { loadConfig, parseConfigText, unreadable } from '../../src/config/load.js'
import { describeValue } from '../../src/config/errors.js'
import { detailsOf } from '../fixtures/config-errors.js'

const ROOT = new URL('../..', import.meta.url).pathname

t.test('a list file that does not exist: the config file, its line and the list named once', async t => {
  const dir = t.testdir({ 'ok.txt': 'a.com\n' })
  const cfg = join(dir, 'c.yaml')
  writeFileSync(cfg, 'lists:\n  mine:\n    files:\n      - ok.txt\n      - nosuch.txt\n')
  const d = detailsOf(() => loadConfig(cfg))
  t.equal(d.length, 1)
  t.equal(d[0], `${cfg}:5: lists.mine.files[1]: cannot read list file ${join(dir, 'nosuch.txt')}: no such file (relative paths are from the config file's directory)`)
  writeFileSync(cfg, `lists:\n  mine: { files: ["${join(dir, 'ok.txt')}", "/nonexistent/abs.txt"] }\n`)
  t.match(detailsOf(() => loadConfig(cfg)), [/c\.yaml:2: lists\.mine\.files\[1\]: cannot read list file \/nonexistent\/abs\.txt: no such file/])
})

t.test('a directory, or a path through a file, is not a list file', async t => {
  const dir = t.testdir({ 'f.txt': 'x\n' })
  mkdirSync(join(dir, 'sub'))
  t.equal(unreadable(join(dir, 'sub')), 'a directory, not a file')
  t.match(unreadable(join(dir, 'f.txt', 'x')), /ENOTDIR/)
  t.equal(unreadable(join(dir, 'f.txt')), undefined)
})

t.test('schema passes: every semantic error together, sorted by line', async t => {
  const dir = t.testdir({})
  const text = [
    'groups:',
    '  - { name: g, clients: [10.0.0.0/8], actions: { nope: block } }', // 2
    'lists:',
    '  a: { files: [missing-a.txt] }',                                  // 4
    '  b: { files: [missing-b.txt], action: alert }',                   // 5
    'dns:',
    '  cache: { minTtl: 2d, maxTtl: 1d }',                               // 7
  ].join('\n')
  const d = detailsOf(() => parseConfigText(text, join(dir, 'c.yaml')))
  t.equal(d.length, 4, d.join('\n'))
  t.match(d[0], /c\.yaml:2: groups\[0\]\.actions\.nope: no list named "nope"/)
  t.match(d[1], /c\.yaml:4: lists\.a\.files\[0\]: cannot read list file .*missing-a\.txt/)
  t.match(d[2], /c\.yaml:5: lists\.b\.files\[0\]: cannot read list file .*missing-b\.txt/)
  t.match(d[3], /c\.yaml:7: dns\.cache\.minTtl: minTtl is larger than maxTtl/)
})

t.test('range, enum and type errors say what would be valid and what was given', async t => {
  const text = [
    'dns:',
    '  listen: "127.0.0.1:53"',          // 2
    '  maxInFlight: 1.5',                // 3
    '  cache: { maxEntries: -1 }',       // 4
    '  upstreams: []',                   // 5
    '  rateLimit: { qps: "fast" }',      // 6
    'proxy: { connectPorts: [443, 70000, 0], maxHeaderBytes: 5 }',   // 7
    'admin: { listen: 9153 }',           // 8
    'lists:',
    '  ngrok: { files: [a.txt], action: blok }',  // 10
    'reload: { watch: 3 }',              // 11
    'groups:',
    '  - { name: g }',                   // 13
    '  - [1]',                           // 14
    '  - { name: h, clients: [3] }',     // 15
    'alerts: { syslog: { url: "udp://h:514", appName: "' + 'x'.repeat(49) + '" } }',  // 16
    'clients: { leases: [""], ptr: null }',   // 17
    'sinkhole: 3',                       // 18
    'state: { dir: [] }',                // 19
  ].join('\n')
  const d = detailsOf(() => parseConfigText(text, 'm.yaml')).join('\n')
  const want = [
    'm.yaml:2: dns.listen: expected a list of HOST:PORT entries, got a string ("127.0.0.1:53")',
    'm.yaml:3: dns.maxInFlight: expected a whole number, got a number (1.5)',
    'm.yaml:4: dns.cache.maxEntries: -1 is out of range; must be at least 0',
    'm.yaml:5: dns.upstreams: at least 1 needed in this list, got 0',
    'm.yaml:6: dns.rateLimit.qps: expected a number, got a string ("fast")',
    'm.yaml:7: proxy.connectPorts[1]: 70000 is not a port (1-65535)',
    'm.yaml:7: proxy.connectPorts[2]: 0 is not a port (1-65535)',
    'm.yaml:7: proxy.maxHeaderBytes: 5 is out of range; must be at least 1024',
    'm.yaml:8: admin.listen: expected HOST:PORT, got a number (9153)',
    'm.yaml:10: lists.ngrok.action: "blok" is not one of block, sinkhole, alert',
    `m.yaml:10: lists.ngrok.files[0]: cannot read list file ${resolve('a.txt')}: no such file (relative paths are from the config file's directory)`,
    'm.yaml:11: reload.watch: expected true or false, got a number (3)',
    'm.yaml:13: groups[0].clients: required: a list of CIDR entries',
    'm.yaml:14: groups[1]: expected a mapping (key: value), got a list',
    'm.yaml:15: groups[2].clients[0]: expected CIDR, got a number (3)',
    `m.yaml:16: alerts.syslog.appName: "${'x'.repeat(49)}" is too long; at most 48 characters`,
    'm.yaml:17: clients.leases[0]: "" is too short; at least 1 character',
    'm.yaml:17: clients.ptr: expected true or false, got null',
    'm.yaml:18: sinkhole: expected a mapping (key: value), got a number (3)',
    'm.yaml:19: state.dir: expected a string, got a list',
  ]
  t.equal(d, want.join('\n'), 'exactly these, in line order')
  t.match(detailsOf(() => parseConfigText('lists: 3\n', 'r.yaml'))[0], 'r.yaml:1: lists: expected a mapping (key: value), got a number (3)')
  t.match(detailsOf(() => parseConfigText('proxy: { connectPorts: 443 }\n', 'p.yaml'))[0], 'p.yaml:1: proxy.connectPorts: expected a list, got a number (443)')
})

t.test('a duration of the wrong type says what a duration is, not "Invalid input"', async t => {
  const text = [
    'dns: { timeout: true, cache: { minTtl: [1] } }',   // 1
    'proxy: { headerTimeout: {} }',                       // 2
    'sinkhole: { ttl: null }',                            // 3
    'lists: { l: { urls: ["https://x.example/l"], refresh: false } }',   // 4
  ].join('\n')
  const d = detailsOf(() => parseConfigText(text, 'd.yaml'))
  t.same(d, [
    'd.yaml:1: dns.timeout: expected a duration (500ms, 2s, 5m, 1h, 1d), got true',
    'd.yaml:1: dns.cache.minTtl: expected a duration (500ms, 2s, 5m, 1h, 1d), got a list',
    'd.yaml:2: proxy.headerTimeout: expected a duration (500ms, 2s, 5m, 1h, 1d), got a mapping',
    'd.yaml:3: sinkhole.ttl: expected a duration (500ms, 2s, 5m, 1h, 1d), got null',
    'd.yaml:4: lists.l.refresh: expected a duration (500ms, 2s, 5m, 1h, 1d), got false',
  ])
  t.notMatch(d.join('\n'), /Invalid input/)
})

t.test('describeValue names every kind of YAML value', async t => {
  t.equal(describeValue(undefined), 'nothing')
  t.equal(describeValue(true), 'true')
  t.equal(describeValue({}), 'a mapping')
})

t.test('null where the README says null: proxy.allowClients (dns.allowClients) and admin (off)', async t => {
  const c = parseConfigText('proxy: { allowClients: null }\nadmin: null\n', 'n.yaml')
  t.equal(c.proxy.allowClients, undefined, 'null is the default: dns.allowClients')
  t.equal(c.admin.listen, null, 'admin: null turns the admin listener off')
  t.same(parseConfigText('proxy: { allowClients: [10.0.0.0/8] }\n', 'n.yaml').proxy.allowClients, ['10.0.0.0/8'])
  t.equal(parseConfigText('admin: {}\n', 'n.yaml').admin.listen, '127.0.0.1:9153')
  t.match(detailsOf(() => parseConfigText('admin: { port: 1 }\n', 'n.yaml'))[0], 'n.yaml:1: admin.port: unknown key "port"; valid keys here: listen, maxConnections, allowHosts')
})

t.test("README's configuration sample validates", async t => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('## Configuration'))
  const yaml = /```yaml\n([^]*?)```/.exec(section)![1]!
  t.match(yaml, /allowClients: null/, 'the sample this test is about')
  t.match(yaml, /^admin: /m)
  // as if the sample were a file at the repository root (its list paths are relative to that)
  const c = parseConfigText(yaml, join(ROOT, 'README.md'))
  t.equal(c.proxy.allowClients, undefined)
  t.same(Object.keys(c.lists), ['ngrok', 'tunnels', 'remote'])
  t.equal(c.admin.listen, '127.0.0.1:9153')
  const off = parseConfigText(yaml.replace(/^admin: .*$/m, 'admin: null'), join(ROOT, 'README.md'))
  t.equal(off.admin.listen, null, 'and with admin: null, as the comment beside it says')
})

t.test('dns.forwardZones: zone names in lower case without a final dot; a bad or repeated zone is named with its line', async t => {
  const c = parseConfigText('dns:\n  forwardZones:\n    Corp.Example.: ["udp://10.0.0.10"]\n    10.in-addr.arpa: ["udp://10.0.0.10", "tcp://[fd00::53]:53"]\n    _msdcs.corp.example: ["udp://10.0.0.11"]\n', 'z.yaml')
  t.same(c.dns.forwardZones, { 'corp.example': ['udp://10.0.0.10'], '10.in-addr.arpa': ['udp://10.0.0.10', 'tcp://[fd00::53]:53'], '_msdcs.corp.example': ['udp://10.0.0.11'] })
  t.same(parseConfigText('dns: {}\n', 'z.yaml').dns.forwardZones, {}, 'none by default')
  t.same(detailsOf(() => parseConfigText('dns:\n  forwardZones: ["corp.example"]\n', 'z.yaml')),
    ['z.yaml:2: dns.forwardZones: expected a mapping (key: value), got a list'], 'not a mapping: that alone is said')
  const text = [
    'dns:',
    '  forwardZones:',
    '    ".": ["udp://10.0.0.10"]',             // 3
    '    "bad zone": ["udp://10.0.0.10"]',      // 4
    '    corp.example: ["udp://10.0.0.10"]',    // 5
    '    CORP.example.: ["udp://10.0.0.11"]',   // 6
    '    lab.example: []',                      // 7
    '    x.example: ["dns.example"]',           // 8
    '    y.example: "udp://10.0.0.10"',         // 9
    `    ${'a'.repeat(64)}.example: ["udp://10.0.0.10"]`,  // 10
  ].join('\n')
  const d = detailsOf(() => parseConfigText(text, 'z.yaml'))
  t.same(d, [
    'z.yaml:3: dns.forwardZones["."]: the root zone is dns.upstreams; forwardZones lists the zones that go elsewhere',
    'z.yaml:4: dns.forwardZones["bad zone"]: "bad zone" is not a zone name; write e.g. corp.example or 10.in-addr.arpa',
    'z.yaml:6: dns.forwardZones["CORP.example."]: "CORP.example." is the zone "corp.example" again (names are compared without case and final dot); list it once',
    'z.yaml:7: dns.forwardZones["lab.example"]: a zone needs at least one upstream; write e.g. ["udp://10.0.0.10"]',
    'z.yaml:8: dns.forwardZones["x.example"][0]: not an upstream URL; write udp://IP[:PORT], tcp://IP[:PORT] or tls://IP[:PORT][#SERVERNAME] (IPv6 in brackets)',
    'z.yaml:9: dns.forwardZones["y.example"]: expected a list of udp://IP[:PORT], tcp://IP[:PORT] or tls://IP[:PORT][#SERVERNAME] entries, got a string ("udp://10.0.0.10")',
    `z.yaml:10: dns.forwardZones["${'a'.repeat(64)}.example"]: "${'a'.repeat(64)}.example" is not a zone name; write e.g. corp.example or 10.in-addr.arpa`,
  ])
})
