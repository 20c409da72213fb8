import t from 'tap'
import { writeFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { AppError } from '../../src/errors.js'
import { builtinConfig, loadConfig, parseConfigText } from '../../src/config/load.js'
import { parseDuration } from '../../src/config/duration.js'
import { keysAt, formatPath } from '../../src/config/errors.js'
import { isUpstreamUrl, splitHostPort } from '../../src/config/endpoints.js'
import { upstreamsFromResolvConf, SHIPPED_LISTS } from '../../src/config/resolve.js'

function errorsOf(fn: () => unknown): { e: AppError; details: string[] } {
  try { fn() } catch (e) { if (e instanceof AppError) return { e, details: [...e.details] } ; throw e }
  throw new Error('expected an AppError')
}

t.test('the built-in config: DESIGN defaults, resolv.conf upstreams, shipped lists', async t => {
  const dir = t.testdir({ 'resolv.conf': '# c\nnameserver 127.0.0.53\nnameserver ::1\nnameserver fe80::1%eth0\nsearch x\nnameserver bogus\n' })
  const c = builtinConfig({ resolvConf: join(dir, 'resolv.conf') })
  t.equal(c.source, 'built-in')
  t.same(c.dns.listen, ['127.0.0.1:1053'])
  t.same(c.proxy.listen, ['127.0.0.1:3128'])
  t.equal(c.admin.listen, '127.0.0.1:9153')
  t.same(c.dns.upstreams, ['udp://127.0.0.53:53', 'udp://[::1]:53', 'udp://[fe80::1]:53'])
  t.equal(c.dns.timeout, 2000)
  t.equal(c.proxy.keepAliveTimeout, 120_000, "a client's idle kept-alive connection: 2 min (squid's), not node's 5 s")
  t.equal(parseConfigText('proxy: { keepAliveTimeout: 90s }\n', 'k.yaml').proxy.keepAliveTimeout, 90_000)
  t.equal(c.dns.blockResponse, 'nxdomain')
  t.equal(c.lists.ngrok!.action, 'sinkhole', 'the built-in config sinkholes ngrok (DESIGN §4)')
  t.equal(c.lists.tunnels!.action, 'alert')
  t.same(c.lists.ngrok!.files, [join(SHIPPED_LISTS, 'ngrok.txt')])
  t.equal(c.sinkhole.ipv4, '0.0.0.0')
  t.equal(c.sinkhole.ipv6, '::')
  t.ok(Object.isFrozen(c.dns), 'frozen')
  t.same(builtinConfig({ resolvConf: join(dir, 'missing') }).dns.upstreams, [], 'no resolv.conf: no upstreams')
  t.same(upstreamsFromResolvConf('nameserver 10.0.0.1\n'), ['udp://10.0.0.1:53'])
})

t.test('a valid file: relative list paths resolve from the config file, durations in ms', async t => {
  const dir = t.testdir({
    lists: { 'a.txt': 'a.com\n' },
    'tg.yaml': `state: { dir: st }\ndns:\n  upstreams: ["udp://127.0.0.1:5399", "tcp://[::1]:53"]\n  timeout: 500ms\n  cache: { maxTtl: 1h }\nlists:\n  mine: { files: [lists/a.txt], action: alert }\ngroups:\n  - { name: devops, clients: [10.20.0.0/16], actions: { mine: off } }\n`,
  })
  const c = loadConfig(join(dir, 'tg.yaml'))
  t.equal(c.dns.timeout, 500)
  t.equal(c.dns.cache.maxTtl, 3_600_000)
  t.same(c.lists.mine!.files, [join(dir, 'lists/a.txt')])
  t.same(Object.keys(c.lists), ['mine'], 'a config that names lists replaces the shipped ones')
  t.equal(c.groups[0]!.actions.mine, 'off')
  t.same(c.dns.upstreams, ['udp://127.0.0.1:5399', 'tcp://[::1]:53'])
  t.equal(c.state.dir, join(dir, 'st'), 'state.dir resolves from the config file')
})

t.test('five different mistakes: all listed with path and line, nothing starts', async t => {
  const text = [
    'dns:',
    '  listen: ["127.0.0.1:1053", "nope"]',      // 2
    '  timeout: 2 seconds',                       // 3
    '  blockResponse: drop',                      // 4
    '  cache: { maxEntries: 100, bogus: 1 }',     // 5
    'groups:',
    '  - { name: devops, clients: [10.20.0.0/16, 10.300.0.0/16] }', // 7
    'lists:',
    '  ngrok: { files: [a.txt], action: deny }',  // 9
  ].join('\n')
  const { e, details } = errorsOf(() => parseConfigText(text, 'tg.yaml'))
  t.equal(e.code, 'CONFIG_INVALID')
  t.match(e.message, /7 errors/, 'six schema errors and the list file that cannot be read')
  const want: [RegExp, string][] = [
    [/^tg\.yaml:2: dns\.listen\[1\]: not HOST:PORT/, 'listen'],
    [/^tg\.yaml:3: dns\.timeout: "2 seconds" is not a duration; write e\.g\. 500ms/, 'duration'],
    [/^tg\.yaml:4: dns\.blockResponse: "drop" is not one of nxdomain, refused, nodata$/, 'enum'],
    [/^tg\.yaml:5: dns\.cache\.bogus: unknown key "bogus"; valid keys here: maxEntries, minTtl, maxTtl/, 'unknown key'],
    [/^tg\.yaml:7: groups\[0\]\.clients\[1\]: not a CIDR/, 'cidr'],
    [/^tg\.yaml:9: lists\.ngrok\.action: "deny" is not one of block, sinkhole, alert$/, 'action'],
    [/^tg\.yaml:9: lists\.ngrok\.files\[0\]: cannot read list file .*a\.txt: no such file/, 'list file beside the schema errors'],
  ]
  for (const [re, what] of want) t.ok(details.some(d => re.test(d)), `${what} reported`)
  const lines = details.map(d => Number(/^tg\.yaml:(\d+):/.exec(d)![1]))
  t.same(lines, [...lines].sort((a, b) => a - b), 'sorted by line')
})

t.test('cross-section mistakes are reported', async t => {
  const dir = t.testdir({ 'x.txt': 'x.com\n' })
  const text = 'lists:\n  a: { files: [x.txt] }\n  b: { action: alert }\ngroups:\n  - { name: g, clients: [10.0.0.0/8], actions: { c: off } }\n  - { name: g, clients: [::1] }\ndns:\n  cache: { minTtl: 2d, maxTtl: 1d }\n'
  const { details } = errorsOf(() => parseConfigText(text, join(dir, 'c.yaml')))
  t.ok(details.some(d => /c\.yaml:5: groups\[0\]\.actions\.c: no list named "c"; configured lists: a, b/.test(d)))
  t.ok(details.some(d => /c\.yaml:6: groups\[1\]\.name: duplicate group name "g"/.test(d)))
  t.ok(details.some(d => /c\.yaml:3: lists\.b: a list needs at least one entry in files or urls/.test(d)))
  t.ok(details.some(d => /dns\.cache\.minTtl: minTtl is larger than maxTtl/.test(d)))
  const missing = errorsOf(() => parseConfigText('groups:\n  - name: g\n', 'm.yaml'))
  t.match(missing.details[0], /^m\.yaml:2: groups\[0\]\.clients: /, 'a missing key is reported at its parent')
  const shipped = errorsOf(() => parseConfigText('groups:\n  - { name: g, clients: [::1], actions: { nope: off } }\n', 'd.yaml'))
  t.match(shipped.details[0], /configured lists: ngrok, tunnels/)
})

t.test('reference checks run beside schema errors, on every part that parsed', async t => {
  const dir = t.testdir({ 'ngrok.txt': 'ngrok.io\n' })
  // the user test's config: two schema errors, a misspelt list file, a group action naming no list
  const text = [
    'dns:',
    '  timeout: 2 s',                                                           // 2
    'lists:',
    '  ngrok: { files: [ngrok.txt], action: sinkhole }',
    '  local: { files: [local-tunels.txt], action: blok }',                     // 5
    'groups:',
    '  - { name: devs, clients: [10.0.0.0/33], actions: { vpn: alert } }',     // 7
    '  - { name: devs, clients: [::1], actions: { local: nope } }',             // 8
  ].join('\n')
  const { e, details } = errorsOf(() => parseConfigText(text, join(dir, 'c.yaml')))
  t.match(e.message, /7 errors/)
  const lines = details.map(d => d.slice(dir.length + 1))
  t.same(lines, [
    'c.yaml:2: dns.timeout: "2 s" is not a duration; write e.g. 500ms, 2s, 5m, 1h, 1d',
    'c.yaml:5: lists.local.action: "blok" is not one of block, sinkhole, alert',
    `c.yaml:5: lists.local.files[0]: cannot read list file ${join(dir, 'local-tunels.txt')}: no such file (relative paths are from the config file's directory)`,
    'c.yaml:7: groups[0].clients[0]: not a CIDR or address; write e.g. 10.0.0.0/8, 192.168.1.7 or fc00::/7',
    'c.yaml:7: groups[0].actions.vpn: no list named "vpn"; configured lists: ngrok, local',
    'c.yaml:8: groups[1].actions.local: "nope" is not one of block, sinkhole, alert, off',
    'c.yaml:8: groups[1].name: duplicate group name "devs"; group names must be unique',
  ], 'schema and reference errors in one run, by line')
  const ttl = errorsOf(() => parseConfigText('dns:\n  cache: { minTtl: 2d, maxTtl: 1d, maxEntries: -1 }\n', 'ttl.yaml'))
  t.match(ttl.details.join('\n'), /ttl\.yaml:2: dns\.cache\.maxEntries: -1 is out of range[^]*ttl\.yaml:2: dns\.cache\.minTtl: minTtl is larger than maxTtl/, 'TTLs compared beside a bad maxEntries')
})

t.test('a reference check is skipped only where the part it reads is itself invalid', async t => {
  const only = (text: string) => errorsOf(() => parseConfigText(text, 's.yaml')).details.map(d => d.replace(/^s\.yaml:\d+: /, ''))
  // lists: is not a mapping: its names are unknown, so a group's list names are not checked
  t.same(only('lists: [a]\ngroups:\n  - { name: g, clients: [::1], actions: { x: off } }\n'), ['lists: expected a mapping (key: value), got a list'])
  // groups that are not a list, a group that is not a mapping, a name that is not a string, actions that are not a mapping
  t.same(only('groups: 3\n'), ['groups: expected a list, got a number (3)'])
  t.same(only('groups: [3, { name: 4, clients: [::1], actions: [] }]\n'), [
    'groups[0]: expected a mapping (key: value), got a number (3)',
    'groups[1].name: expected a string, got a number (4)',
    'groups[1].actions: expected a mapping (key: value), got a list',
  ])
  // a list that is not a mapping, files or urls that are not lists, a file entry that is not a path
  t.same(only('lists:\n  a: 3\n  b: { files: x.txt }\n  c: { urls: 3 }\n  d: { files: [4, ""], urls: ["https://example.org/l.txt"] }\n'), [
    'lists.a: expected a mapping (key: value), got a number (3)',
    'lists.b.files: expected a list of file path entries, got a string ("x.txt")',
    'lists.c.urls: expected a list, got a number (3)',
    'lists.d.files[0]: expected file path, got a number (4)',
    'lists.d.files[1]: "" is too short; at least 1 character',
  ])
  // dns.cache that is not a mapping, or a TTL that is not a duration: nothing to compare
  t.same(only('dns: { cache: 3 }\n'), ['dns.cache: expected a mapping (key: value), got a number (3)'])
  t.same(only('dns: { cache: { minTtl: soon, maxTtl: 1s } }\n'), ['dns.cache.minTtl: "soon" is not a duration; write e.g. 500ms, 2s, 5m, 1h, 1d'])
  t.same(only('dns: 3\n'), ['dns: expected a mapping (key: value), got a number (3)'])
  // a bare number is not a duration (2000 meant as ms would be read as 2000 s); 0 is unambiguous
  t.same(only('dns: { timeout: 2000 }\n'), ['dns.timeout: 2000 has no unit; write 2000ms or 2000s (units: ms, s, m, h, d)'])
  t.same(only('proxy: { idleTimeout: 1.5 }\n'), ['proxy.idleTimeout: 1.5 has no unit; write 1.5ms or 1.5s (units: ms, s, m, h, d)'])
  t.equal(parseConfigText('dns: { cache: { minTtl: 0 } }\n', 'z.yaml').dns.cache.minTtl, 0)
  // ... but not for a timeout (everything would fail at once) or a refresh (fetched without pause)
  const zero = 'a timeout of 0 would end everything it times at once; write e.g. 500ms, 2s, 10s'
  t.same(only('dns: { timeout: 0, tcp: { idleTimeout: 0ms } }\n'), [`dns.timeout: ${zero}`, `dns.tcp.idleTimeout: ${zero}`])
  t.same(only('proxy: { headerTimeout: 0, helloTimeout: 0s, idleTimeout: 0, keepAliveTimeout: 0 }\n'),
    [`proxy.headerTimeout: ${zero}`, `proxy.helloTimeout: ${zero}`, `proxy.keepAliveTimeout: ${zero}`])
  t.equal(parseConfigText('proxy: { idleTimeout: 0 }\n', 'i.yaml').proxy.idleTimeout, 0, 'proxy.idleTimeout: 0 is no idle timeout, as it always was')
  t.same(only('alerts: { webhook: { url: "http://127.0.0.1:9/h", timeout: 0 } }\n'), [`alerts.webhook.timeout: ${zero}`])
  // alerts.syslog.url: the syslog output's own rule (parseSyslogUrl), so that what validates, serve takes
  const forms = 'write udp://HOST:PORT or tcp://HOST:PORT (port 1-65535, IPv6 in brackets), e.g. udp://127.0.0.1:514'
  t.same(only('alerts: { syslog: { url: "udp://127.0.0.1:99999" } }\n'), ['alerts.syslog.url: 99999 is not a port (1-65535); write e.g. udp://127.0.0.1:514'])
  t.same(only('alerts: { syslog: { url: "tcp://[::1]:0" } }\n'), ['alerts.syslog.url: 0 is not a port (1-65535); write e.g. tcp://[::1]:514'])
  for (const bad of ['udp://127.0.0.1', 'http://127.0.0.1:514', 'udp://a[b:514']) {
    t.same(only(`alerts: { syslog: { url: "${bad}" } }\n`), [`alerts.syslog.url: "${bad}" is not a syslog URL; ${forms}`], bad)
  }
  t.same(only('alerts: { syslog: { url: 514 } }\n'), ['alerts.syslog.url: expected udp://HOST:PORT or tcp://HOST:PORT, got a number (514)'])
  t.equal(parseConfigText('alerts: { syslog: { url: "tcp://[::1]:65535" } }\n', 'y.yaml').alerts.syslog!.url, 'tcp://[::1]:65535')
  // a webhook URL whose user or password does not percent-decode: serve could not build the Basic authorization
  for (const u of ['http://a%zz@127.0.0.1:9/h', 'http://a:%E0%A4@127.0.0.1:9/h']) {
    t.same(only(`alerts: { webhook: { url: "${u}" } }\n`), ['alerts.webhook.url: the user name or password in the URL is not valid percent-encoding (UTF-8 as %XX); write a literal % as %25'], u)
  }
  t.equal(parseConfigText('alerts: { webhook: { url: "http://a%25b:c@127.0.0.1:9/h" } }\n', 'w.yaml').alerts.webhook!.url, 'http://a%25b:c@127.0.0.1:9/h')
  // so could a remote list's fetch (serve died with a URIError at start) and the parent's Proxy-Authorization
  const bad = 'the user name or password in the URL is not valid percent-encoding (UTF-8 as %XX); write a literal % as %25'
  t.same(only('lists: { r: { urls: ["http://a%zz:pw@127.0.0.1:9/x.txt"] } }\n'), [`lists.r.urls[0]: ${bad}`])
  t.same(only('proxy: { parent: "http://a:%E0%A4@127.0.0.1:8080" }\n'), [`proxy.parent: ${bad}`])
  t.equal(parseConfigText('proxy: { parent: "http://a%25b:c@127.0.0.1:8080" }\n', 'p.yaml').proxy.parent, 'http://a%25b:c@127.0.0.1:8080')
  t.same(parseConfigText('lists: { r: { urls: ["https://u:p%40ss@127.0.0.1/x.txt"] } }\n', 'l.yaml').lists.r!.urls, ['https://u:p%40ss@127.0.0.1/x.txt'])
  t.same(only('alerts: { webhook: { url: "not a url" } }\n'), ['alerts.webhook.url: Invalid URL', 'alerts.webhook.url: the webhook URL must be http:// or https://'], 'not a URL: said so, nothing decoded')
  // alerts.webhook.headers: what fetch would refuse (every alert given up at run time) is refused here
  const hook = (h: string) => `alerts: { webhook: { url: "http://127.0.0.1:9/h", headers: { ${h} } } }\n`
  t.same(only(hook('"Bad Header": x, "X-Key:": y, "": z')), [
    `alerts.webhook.headers["Bad Header"]: "Bad Header" is not a header name; write letters, digits and !#$%&'*+-.^_\`|~ only (no spaces, colons or other characters), e.g. X-Api-Key`,
    `alerts.webhook.headers["X-Key:"]: "X-Key:" is not a header name; write letters, digits and !#$%&'*+-.^_\`|~ only (no spaces, colons or other characters), e.g. X-Api-Key`,
    `alerts.webhook.headers[""]: "" is not a header name; write letters, digits and !#$%&'*+-.^_\`|~ only (no spaces, colons or other characters), e.g. X-Api-Key`,
  ])
  const oneLine = 'a header value is one line of printable characters (tab allowed; no CR, LF, NUL or other control character, nothing above U+00FF)'
  t.same(only(hook('X-A: "a\\r\\nb", X-B: "tok\\n", X-C: "\\0", X-D: "\\x7f", X-E: "€", X-F: "😀"')), [
    `alerts.webhook.headers.X-A: the value of X-A has CR (a line break) at character 2; ${oneLine}`,
    `alerts.webhook.headers.X-B: the value of X-B has LF (a line break) at character 4; ${oneLine}`,
    `alerts.webhook.headers.X-C: the value of X-C has NUL at character 1; ${oneLine}`,
    `alerts.webhook.headers.X-D: the value of X-D has U+007F at character 1; ${oneLine}`,
    `alerts.webhook.headers.X-E: the value of X-E has U+20AC at character 1; ${oneLine}`,
    `alerts.webhook.headers.X-F: the value of X-F has U+1F600 at character 1; ${oneLine}`,
  ])
  t.same(only(hook('content-length: "5", Host: h, Transfer-Encoding: chunked, Connection: upgrade, X-Key: a, x-key: b')), [
    "alerts.webhook.headers.content-length: content-length is set from each alert's body (a fixed one would not match it, and the POST would hang or fail); remove it",
    'alerts.webhook.headers.Host: Host is set from alerts.webhook.url (fetch does not send one given here); remove it, or put the host in the URL',
    'alerts.webhook.headers.Transfer-Encoding: Transfer-Encoding is for fetch to set (it refuses one given here, and the alert would never be sent); remove it',
    'alerts.webhook.headers.Connection: Connection may only be close or keep-alive (fetch refuses any other, and the alert would never be sent); remove it, or write close',
    'alerts.webhook.headers.x-key: x-key is X-Key again (header names are compared without case); give it once',
  ])
  t.same(parseConfigText(hook('X-Api-Key: "k\\té", Content-Type: "application/json; charset=utf-8", Connection: close'), 'h.yaml').alerts.webhook!.headers,
    { 'X-Api-Key': 'k\té', 'Content-Type': 'application/json; charset=utf-8', Connection: 'close' })
  for (const r of ['0', '500ms']) {
    t.same(only(`lists:\n  r: { urls: ["https://example.org/l.txt"], refresh: ${r} }\n`),
      ['lists.r.refresh: refresh a remote list at most every 1s (0 would fetch it without pause); write e.g. 1h, 1d'], `refresh: ${r}`)
  }
  t.equal(parseConfigText('lists:\n  r: { urls: ["https://example.org/l.txt"], refresh: 1s }\n', 'r.yaml').lists!.r!.refresh, 1000)
  // a list URL is fetched over HTTP(S): anything else is said so, with the form to write
  for (const bad of ['ftp://example.org/l.txt', 'not a url', 'https://', 'file:///etc/hosts', 'http://exa mple.org/l.txt']) {
    t.same(only(`lists:\n  r: { urls: ["${bad}"] }\n`), ['lists.r.urls[0]: not an http:// or https:// URL; write e.g. https://example.org/list.txt'], bad)
  }
  t.same(parseConfigText('lists:\n  r: { urls: ["HTTP://u:p@example.org:8080/l.txt?k=v"] }\n', 'u.yaml').lists!.r!.urls, ['HTTP://u:p@example.org:8080/l.txt?k=v'])
  // a list name that is not valid: why, and a name that is
  t.same(only('lists:\n  Bad: { urls: ["https://example.org/l.txt"] }\n'), ['lists.Bad: list name "Bad" is not valid: list names are lowercase letters, digits, - and _; write e.g. "bad"'])
  t.same(only('lists:\n  "My List!": { urls: ["https://example.org/l.txt"] }\n'), ['lists["My List!"]: list name "My List!" is not valid: list names are lowercase letters, digits, - and _; write e.g. "my-list-"'])
  t.same(only('lists:\n  "!!": { urls: ["https://example.org/l.txt"] }\n'), ['lists["!!"]: list name "!!" is not valid: list names are lowercase letters, digits, - and _'])
  // a parent is an HTTP proxy named by its authority alone
  const parent = 'proxy.parent: not a parent proxy URL; write http://HOST:PORT or http://USER:PASSWORD@HOST:PORT (an HTTP proxy that takes CONNECT)'
  for (const bad of ['socks5://127.0.0.1:1080', 'https://corp:8443', 'corp-proxy:8080', 'mailto:x@y', 'http://corp:8080/path', 'http://corp:8080?q=1', 'http://corp:8080/#f', 'http://']) {
    t.same(only(`proxy: { parent: "${bad}" }\n`), [parent], bad)
  }
  for (const good of ['http://corp:8080', 'http://u:p%40ss@corp:8080/', 'HTTP://[::1]:3128']) {
    t.equal(parseConfigText(`proxy: { parent: "${good}" }\n`, 'p.yaml').proxy.parent, good, good)
  }
})

t.test('YAML syntax errors, non-mappings, unreadable files', async t => {
  const y = errorsOf(() => parseConfigText('dns:\n  listen: [\n', 'y.yaml'))
  t.match(y.e.message, /invalid YAML/)
  t.match(y.details[0], /^y\.yaml:\d+: YAML: /)
  t.match(errorsOf(() => parseConfigText('- a\n- b\n', 'l.yaml')).details[0], /must be a mapping/)
  t.match(errorsOf(() => parseConfigText('dns: 1\nfoo: 2\n', 'u.yaml')).details.join('\n'), /u\.yaml:2: foo: unknown key "foo"; valid keys here: dns, proxy, limits, admin, sinkhole, lists, groups, alerts, clients, reload, state, log/)
  t.match(errorsOf(() => loadConfig('/nonexistent/tg.yaml')).e.message, /cannot read config: ENOENT/)
  t.equal(parseConfigText('', 'empty.yaml').dns.listen[0], '127.0.0.1:1053', 'an empty file is the defaults')
  // at a reload, a file with no setting in it is a save caught half-way, not the defaults
  const dir = t.testdir({ 'empty.yaml': '', 'comments.yaml': '# being written\n', 'dashes.yaml': '---\n', 'ok.yaml': 'dns: {}\n' })
  for (const f of ['empty.yaml', 'comments.yaml', 'dashes.yaml']) {
    t.equal(loadConfig(join(dir, f)).dns.listen[0], '127.0.0.1:1053', `${f} at a start: the defaults`)
    const r = errorsOf(() => loadConfig(join(dir, f), { reload: true }))
    t.match(r.e.message, /: the config file has no setting in it \(a save caught half-way\?\)$/, f)
    t.match(r.details[0], /:1: empty at a reload: the running config is kept/)
  }
  t.equal(loadConfig(join(dir, 'ok.yaml'), { reload: true }).dns.listen[0], '127.0.0.1:1053')
  // a debounce past an hour is a mistake (past 24.8 days Node's timers would fire at once, in a loop)
  t.match(errorsOf(() => parseConfigText('reload: { debounce: 30d }\n', 'd.yaml')).details[0], /d\.yaml:1: reload\.debounce: at most 1h/)
  t.equal(parseConfigText('reload: { debounce: 1h }\n', 'd.yaml').reload.debounce, 3_600_000)
  t.match(errorsOf(() => loadConfig(join(dir, 'ok.yaml') + 'x', { reload: true })).e.message, /cannot read config: ENOENT/)
  t.match(errorsOf(() => loadConfig(dir)).e.message, /cannot read config: EISDIR/)
  // for serve, a FIFO (or a device) would block the process at the read: refused, as a config and as a list
  const fifo = join(dir, 'fifo.yaml')
  execFileSync('mkfifo', [fifo])
  t.match(errorsOf(() => loadConfig(fifo, { serve: true })).e.message, /cannot read config: not a regular file \(a FIFO, socket or device: serve would wait on it, or read it without end\); name a regular file or a symlink to one$/)
  t.match(errorsOf(() => loadConfig(fifo, { reload: true })).e.message, /not a regular file/)
  const listIn = `lists:\n  l: { files: [${fifo}] }\n`
  t.same(errorsOf(() => parseConfigText(listIn, 'f.yaml', { serve: true })).details[0], `f.yaml:2: lists.l.files[0]: cannot read list file ${fifo}: not a regular file (a FIFO, socket or device: serve would wait on it, or read it without end); name a regular file or a symlink to one`,
    'an absolute path: no word about relative paths')
  t.equal(parseConfigText(listIn, 'f.yaml').lists.l!.files[0], fifo, 'validate, check and lists may read a pipe (--config <(…))')
  t.equal(parseConfigText('lists:\n  l: { files: [/dev/null] }\n', 'n.yaml', { serve: true }).lists.l!.files[0], '/dev/null', '/dev/null: an empty list, for serve too')
})

t.test('durations a timer waits are at most 24d, TTLs at most 2^31-1 s', async t => {
  const only = (text: string) => errorsOf(() => parseConfigText(text, 's.yaml')).details.map(d => d.replace(/^s\.yaml:\d+: /, ''))
  // past 2^31-1 ms Node sets a timer to 1 ms: a refresh of 25d fetched its list every millisecond,
  // a helloTimeout of 25d closed every tunnel at once; a TTL past 2^32-1 s took serve down at its first sinkholed query
  const timerKeys: [string, string][] = [
    ['dns.timeout', 'dns: { timeout: @ }'], ['dns.tcp.idleTimeout', 'dns: { tcp: { idleTimeout: @ } }'],
    ['proxy.headerTimeout', 'proxy: { headerTimeout: @ }'], ['proxy.helloTimeout', 'proxy: { helloTimeout: @ }'],
    ['proxy.idleTimeout', 'proxy: { idleTimeout: @ }'], ['proxy.keepAliveTimeout', 'proxy: { keepAliveTimeout: @ }'],
    ['lists.r.refresh', 'lists:\n  r: { urls: ["https://example.org/l.txt"], refresh: @ }'],
    ['alerts.webhook.backoff', 'alerts: { webhook: { url: "https://example.org/h", backoff: @ } }'],
    ['alerts.webhook.timeout', 'alerts: { webhook: { url: "https://example.org/h", timeout: @ } }'],
    ['clients.leaseCheck', 'clients: { leaseCheck: @ }'],
  ]
  const timerMsg = "at most 24d: Node's timers wait at most 2^31-1 ms (24.8 days), and a longer wait would end at once"
  for (const [path, yaml] of timerKeys) {
    t.same(only(yaml.replace('@', '25d') + '\n'), [`${path}: ${timerMsg}`], `${path}: 25d`)
    t.same(only(yaml.replace('@', '2147483648ms') + '\n'), [`${path}: ${timerMsg}`], `${path}: one ms past`)
    t.doesNotThrow(() => parseConfigText(yaml.replace('@', '24d') + '\n', 't.yaml'), `${path}: 24d`)
    t.doesNotThrow(() => parseConfigText(yaml.replace('@', '2147483647ms') + '\n', 't.yaml'), `${path}: 2^31-1 ms`)
  }
  const ttlMsg = 'at most 2147483647s (about 68 years; RFC 2181 §8 reads a larger TTL as 0); write e.g. 1d'
  for (const [path, yaml] of [['dns.cache.minTtl', 'dns: { cache: { minTtl: @, maxTtl: @ } }'], ['dns.cache.maxTtl', 'dns: { cache: { maxTtl: @ } }'], ['sinkhole.ttl', 'sinkhole: { ttl: @ }']] as const) {
    const errs = only(yaml.replaceAll('@', '2147483648s') + '\n')
    t.ok(errs.includes(`${path}: ${ttlMsg}`), `${path}: 2^31 s (${errs.join('; ')})`)
    t.doesNotThrow(() => parseConfigText(yaml.replaceAll('@', '2147483647s') + '\n', 't.yaml'), `${path}: 2^31-1 s`)
  }
  // durations that are compared with the clock, not waited for, keep any length
  t.equal(parseConfigText('alerts: { window: 365d }\nclients: { ptr: true, ptrTtl: 365d }\n', 'w.yaml').alerts.window, 365 * 86_400_000)
})

t.test('helpers: durations, host:port, upstream URLs, schema paths', async t => {
  t.equal(parseDuration('500ms'), 500)
  t.equal(parseDuration('1.5s'), 1500)
  t.equal(parseDuration('1d'), 86_400_000)
  t.equal(parseDuration(3), 3000)
  t.equal(parseDuration(-1), undefined)
  t.equal(parseDuration('3 s'), undefined)
  t.same(splitHostPort('[::1]:53'), { host: '::1', port: 53 })
  t.same(splitHostPort('localhost:80'), { host: 'localhost', port: 80 })
  t.equal(splitHostPort('[nope]:53'), undefined)
  t.equal(splitHostPort('1.2.3.4:99999'), undefined)
  t.equal(splitHostPort('1.2.3.4'), undefined)
  t.ok(isUpstreamUrl('udp://127.0.0.1'))
  t.ok(isUpstreamUrl('tcp://[::1]:5353'))
  t.notOk(isUpstreamUrl('udp://[127.0.0.1]:53'))
  t.notOk(isUpstreamUrl('udp://::1:53'))
  t.notOk(isUpstreamUrl('udp://1.2.3.4:0'))
  t.notOk(isUpstreamUrl('https://1.1.1.1/dns-query'))
  t.notOk(isUpstreamUrl('udp://999.1.1.1'))
  t.same(keysAt(['dns', 'cache']), ['maxEntries', 'minTtl', 'maxTtl'])
  t.ok(keysAt(['groups', 0])!.includes('actions'))
  t.ok(keysAt(['lists', 'x'])!.includes('files'))
  t.equal(keysAt(['dns', 'listen']), undefined)
  t.equal(keysAt(['dns', 'timeout']), undefined, 'through a transform (pipe) to a non-object')
  t.equal(splitHostPort('[1.2.3.4]:53'), undefined, 'brackets only for IPv6')
  t.equal(keysAt(['dns', 'nope']), undefined)
  t.equal(keysAt(['dns', 'listen', 0, 'x']), undefined)
  t.equal(formatPath([]), '(top level)')
  t.equal(formatPath(['groups', 0, 'clients', 1]), 'groups[0].clients[1]')
})

t.test('a config file with every section round-trips', async t => {
  const dir = t.testdir()
  const f = join(dir, 'full.yaml')
  writeFileSync(f, [
    'dns: { listen: ["[::1]:1053"], upstreams: ["udp://127.0.0.1:53"], blockResponse: refused, allowClients: [127.0.0.0/8] }',
    'proxy: { listen: [], parent: "http://127.0.0.1:8080", connectPorts: [443, 8443] }',
    'admin: { listen: null }',
    'sinkhole: { ipv4: 192.0.2.1, ipv6: "2001:db8::1", ttl: 5m }',
    'log: { level: warn, queries: all }',
  ].join('\n'))
  const c = loadConfig(f)
  t.equal(c.admin.listen, null)
  t.equal(c.proxy.parent, 'http://127.0.0.1:8080')
  t.equal(c.sinkhole.ttl, 300_000)
  t.equal(c.log.queries, 'all')
  t.same(c.proxy.listen, [])
})

t.test('a listen address with a zone (fe80::1%eth0) is refused saying why, and what to write instead', async t => {
  for (const [key, value, path] of [['dns', '["[fe80::1%eth0]:5353"]', 'dns\\.listen\\[0\\]'], ['proxy', '["[fe80::1%eth0]:3128"]', 'proxy\\.listen\\[0\\]'], ['admin', '"[fe80::1%eth0]:9153"', 'admin\\.listen']]) {
    const { e, details } = errorsOf(() => parseConfigText(`${key}:\n  listen: ${value}\n`, 'z.yaml'))
    t.equal(e.code, 'CONFIG_INVALID')
    t.match(details, [new RegExp(`^z\\.yaml:2: ${path}: an address with a zone \\(%eth0\\) cannot be listened on; write \\[::\\]:PORT`)], key)
  }
})

t.test('a listen port past 65535 is said to be out of range, not "not HOST:PORT"', async t => {
  const only = (text: string) => errorsOf(() => parseConfigText(text, 's.yaml')).details.map(d => d.replace(/^s\.yaml:\d+: /, ''))
  t.same(only('dns: { listen: ["127.0.0.1:99999", "[::1]:65536", "127.0.0.1:1234567", "127.0.0.1:70000"] }\n'), [
    'dns.listen[0]: port 99999 is out of range (0-65535); write e.g. 127.0.0.1:1053',
    'dns.listen[1]: port 65536 is out of range (0-65535); write e.g. 127.0.0.1:1053',
    'dns.listen[2]: port 1234567 is out of range (0-65535); write e.g. 127.0.0.1:1053',
    'dns.listen[3]: port 70000 is out of range (0-65535); write e.g. 127.0.0.1:1053',
  ])
  t.same(only('proxy: { listen: ["127.0.0.1:65535x", "127.0.0.1", ":99999", "::1:99999"] }\n'), [0, 1, 2, 3].map(i => `proxy.listen[${i}]: not HOST:PORT; write e.g. 127.0.0.1:1053 or [::1]:53`),
    'another mistake than the port (no host, IPv6 out of brackets): the form is said')
  t.same(parseConfigText('dns: { listen: ["127.0.0.1:65535", "127.0.0.1:0"] }\nproxy: { listen: [] }\nadmin: null\n', 'p.yaml').dns.listen, ['127.0.0.1:65535', '127.0.0.1:0'])
})
