import t from 'tap'
import { PassThrough, Readable } from 'node:stream'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { main, unexpected } from '../src/cli.js'
import { outputFailure } from '../src/cli-output.js'
import { blockedLine, runCli } from './fixtures/cli.js'
import { packageVersion } from './fixtures/package-version.js'

const SIGMA = new URL('../../shared/fixtures/sigma/net_connection_lnx_ngrok_tunnel.yml', import.meta.url).pathname

const run = runCli

t.test('check connect.ngrok-agent.com: sinkholed by the shipped list, naming entry and list', async t => {
  const r = await run(['check', 'connect.ngrok-agent.com'])
  t.equal(r.code, 0)
  t.match(r.out, /^connect\.ngrok-agent\.com: SINKHOLE/)
  t.match(r.out, /entry: +ngrok-agent\.com \(domain\) in list ngrok, .*blocklists\/ngrok\.txt:\d+/)
  const j = JSON.parse((await run(['check', 'CONNECT.ngrok-agent.com.', '--json'])).out)
  t.equal(j.action, 'sinkhole')
  t.equal(j.list, 'ngrok')
  t.equal(j.entry.pattern, 'ngrok-agent.com')
  t.equal(j.name, 'connect.ngrok-agent.com', 'normalized')
})

t.test('check shows a name\'s controls escaped: a pasted escape sequence is not run by the terminal', async t => {
  const r = await run(['check', 'x\u001b]0;pwned\u0007.example.com'])
  t.notMatch(r.out, /[\u001b\u0007]/)
  t.match(r.out, /x\\x1b\]0;pwned\\x07\.example\.com/)
  t.match(JSON.parse((await run(['check', 'x\u001b.example.com', '--json'])).out), { name: 'x\u001b.example.com' }, 'JSON keeps the name (its own escaping)')
})

t.test('check takes the host from a URL or host:port pasted from an alert, and says so', async t => {
  const url = await run(['check', 'https://x.ngrok-free.app/path'])
  t.equal(url.code, 0)
  t.match(url.out, /^x\.ngrok-free\.app \(from https:\/\/x\.ngrok-free\.app\/path\): SINKHOLE\n/)
  t.match(url.out, /entry: +ngrok-free\.app \(domain\) in list ngrok, /)
  const hp = await run(['check', 'www.example.com:443'])
  t.match(hp.out, /^www\.example\.com \(from www\.example\.com:443\): PASS\n.*\n {2}reason: +not listed\n/)
  const j = JSON.parse((await run(['check', 'tcp://user:pw@0.TCP.ngrok.io:12345', '--json'])).out)
  t.match(j, { name: '0.tcp.ngrok.io', action: 'sinkhole', list: 'ngrok', unparseable: false, from: 'tcp://user:***@0.TCP.ngrok.io:12345' }, 'any scheme; userinfo dropped, the password not repeated')
  const pw = await run(['check', 'https://ops:s3cr@t@x.ngrok-free.app/p?q=1'])
  t.match(pw.out, /^x\.ngrok-free\.app \(from https:\/\/ops:\*\*\*@x\.ngrok-free\.app\/p\?q=1\): SINKHOLE\n/)
  t.notMatch(pw.out, /s3cr/, 'a password with an @ in it: none of it shown')
  t.match(JSON.parse((await run(['check', 'wss://x.ngrok.app?q=1', '--json'])).out), { name: 'x.ngrok.app', action: 'sinkhole' }, 'no path, a query')
  // an address literal is no name: it passes, as the proxy passes it
  t.match(JSON.parse((await run(['check', '[fd00::7]:8443', '--json'])).out), { name: 'fd00::7', action: 'pass', reason: 'an address, not a name', from: '[fd00::7]:8443' })
  t.match(JSON.parse((await run(['check', 'http://10.1.2.3/x', '--json'])).out), { name: '10.1.2.3', action: 'pass', from: 'http://10.1.2.3/x' })
  // an address alone, as a line names it, in any form: the same (it was "a name under the root" for IPv6)
  for (const [input, name] of [['::1', '::1'], ['[fd00::1]', 'fd00::1'], ['0:0:0:0:0:0:0:1', '::1'], ['::ffff:10.9.9.9', '10.9.9.9'], ['10.1.2.3', '10.1.2.3']]) {
    t.match(JSON.parse((await run(['check', input!, '--json'])).out), { name, action: 'pass', reason: 'an address, not a name', unparseable: false, from: input }, input)
  }
  const addr = await run(['check', 'fd00::1'])
  t.match(addr.out, /^fd00::1 \(from fd00::1\): PASS\n/)
  t.match(addr.out, /note: +an address: lists hold names; the proxy still refuses it when it is internal .*proxy\.allowDestinations.*proxy\.connectPorts/)
  // a name is decided as it is, with no word about where it came from
  t.notOk('from' in JSON.parse((await run(['check', 'x.ngrok.io', '--json'])).out))
  // no URL, no colon: decided as DNS would decide a query for it, as a name under its longest
  // host-name suffix (the label that is none named in the reason)
  for (const [n, label, under] of [['bad!host/x', 'bad!host/x', 'the root'], ['10.0/25.2.0.192.in-addr.arpa', '0/25', '2.0.192.in-addr.arpa']]) {
    const r = JSON.parse((await run(['check', n, '--json'])).out)
    t.match(r, { name: n, action: 'pass', unparseable: true }, n)
    t.match(r.reason, `in "${label}"): decided as a name under ${under}`, n)
    t.notOk('from' in r, n)
  }
  // and a listed suffix decides it
  t.match(JSON.parse((await run(['check', 'my agent.x.ngrok.io', '--json'])).out), { action: 'sinkhole', list: 'ngrok', unparseable: true })
})

t.test('check reads a target as the proxy does: one it refuses as malformed is said to be, with the decision it logs', async t => {
  // the README's own fail-closed example: 400 and a block line in the proxy, so here too
  const bad = await run(['check', 'bad_name!.ngrok.io:443'])
  t.equal(bad.code, 0)
  t.equal(bad.out, 'bad_name!.ngrok.io (from bad_name!.ngrok.io:443): BLOCK\n'
    + '  client:  127.0.0.1 (group default)\n'
    + '  reason:  unparseable name (character "!" not allowed in a host name): blocked, fail closed\n'
    + '  target:  invalid (host "bad_name!.ngrok.io" is no valid name (character "!")): the proxy refuses it (400) and logs this decision\n')
  t.match(JSON.parse((await run(['check', 'http://bad_name!.ngrok.io/', '--json'])).out), {
    name: 'bad_name!.ngrok.io', action: 'block', unparseable: true, from: 'http://bad_name!.ngrok.io/', invalid: 'host "bad_name!.ngrok.io" is no valid name (character "!")',
  }, 'a URL: the same, its host decided where the proxy decides a URL host')
  t.match(JSON.parse((await run(['check', 'https://bad!host/x', '--json'])).out), { name: 'bad!host', action: 'block', invalid: /no valid name/ })
  // a listed host with a bad port: the proxy logs its list's decision, and answers 400
  const port = await run(['check', 'x.ngrok.io:99999'])
  t.match(port.out, /^x\.ngrok\.io \(from x\.ngrok\.io:99999\): SINKHOLE\n[^]*\n {2}entry: +ngrok\.io \(domain\) in list ngrok, [^]*\n {2}target: +invalid \(port 99999 is out of range \(1-65535\)\): the proxy refuses it \(400\) and logs this decision\n$/)
  t.match(JSON.parse((await run(['check', 'x.ngrok.io:', '--json'])).out), { name: 'x.ngrok.io', action: 'sinkhole', list: 'ngrok', invalid: 'no port after ":"' })
  // an unlisted host with a bad port, or no host at all: invalid, and no decision logged
  const plain = await run(['check', 'www.example.com:99999'])
  t.equal(plain.out, 'www.example.com (from www.example.com:99999): INVALID\n'
    + '  client:  127.0.0.1 (group default)\n'
    + '  reason:  invalid target (port 99999 is out of range (1-65535)): the proxy refuses it (400) and logs no decision; the host alone: not listed\n')
  t.notMatch(plain.out, /note:/, 'no note on a target that goes nowhere')
  for (const [n, name, invalid] of [['www.example.com:0', 'www.example.com', 'port 0 is out of range (1-65535)'], ['http://www.example.com:123456/', 'www.example.com', 'port 123456 is out of range (1-65535)'],
    ['[zz]:443', '[zz]:443', 'host [zz] is no IPv6 address'], ['https://[zz]/', 'https://[zz]/', 'host [zz] is no IPv6 address'],
    ['a:b:c', 'a:b:c', 'more than one ":": write host:port'], ['x.ngrok.io:https', 'x.ngrok.io:https', 'port "https" is not a number']]) {
    const r = JSON.parse((await run(['check', n!, '--json'])).out)
    t.match(r, { name, action: 'invalid', from: n, invalid, list: null }, n)
    t.match(r.reason, `invalid target (${invalid}): the proxy refuses it (400) and logs no decision; `, n)
  }
  t.match((await run(['check', '[zz]:443'])).out, /: INVALID\n.*\n {2}reason: +invalid target \(host \[zz\] is no IPv6 address\): the proxy refuses it \(400\) and logs no decision; no host to decide\n$/)
  // a host an alert list names, with a bad port: the proxy's 400 alone (an alert does not refuse), the host's own decision said
  const dir = t.testdir({ 'l.txt': 'watch.example\n', 'tg.yaml': 'lists:\n  w: { files: [l.txt], action: alert }\n' })
  const alert = JSON.parse((await run(['check', 'a.watch.example:0', '--config', join(dir, 'tg.yaml'), '--json'])).out)
  t.match(alert, { action: 'invalid', list: 'w', reason: /logs no decision; the host alone: alert: a\.watch\.example matches watch\.example in list w/ })
})

t.test('check says when DNS answers a name itself: the DoH canary NXDOMAIN, DDR NODATA, per the config', async t => {
  const canary = await run(['check', 'use-application-dns.net'])
  t.equal(canary.out, 'use-application-dns.net: PASS\n'
    + '  client:  127.0.0.1 (group default)\n'
    + '  reason:  not listed\n'
    + '  dns:     the DoH canary: answered NXDOMAIN here (dns.dohCanary), not forwarded upstream\n')
  t.match(JSON.parse((await run(['check', 'Use-Application-DNS.net.', '--json'])).out), { action: 'pass', dnsAnswer: { rcode: 'NXDOMAIN', setting: 'dns.dohCanary' } })
  t.match((await run(['check', '_dns.resolver.arpa'])).out, /\n {2}dns: +DDR discovery: answered NODATA here \(dns\.blockDdr\), not forwarded upstream\n$/)
  t.match(JSON.parse((await run(['check', '_dns.resolver.arpa', '--json'])).out), { dnsAnswer: { rcode: 'NODATA', setting: 'dns.blockDdr' } })
  // not to a client DNS refuses; not when a list blocks it; not when the config turns it off; not for a URL (the proxy's)
  t.notOk('dnsAnswer' in JSON.parse((await run(['check', 'use-application-dns.net', '--client', '192.0.2.1', '--json'])).out))
  t.notOk('dnsAnswer' in JSON.parse((await run(['check', 'https://use-application-dns.net/', '--json'])).out))
  const dir = t.testdir({ 'l.txt': 'use-application-dns.net\n', 'off.yaml': 'dns: { dohCanary: false, blockDdr: false }\n', 'block.yaml': 'lists:\n  b: { files: [l.txt], action: block }\n' })
  const off = await run(['check', 'use-application-dns.net', '--config', join(dir, 'off.yaml')])
  t.notMatch(off.out, /dns:/)
  t.match(off.out, /note: +the name alone/)
  t.notOk('dnsAnswer' in JSON.parse((await run(['check', '_dns.resolver.arpa', '--config', join(dir, 'off.yaml'), '--json'])).out))
  t.notMatch((await run(['check', 'use-application-dns.net', '--config', join(dir, 'block.yaml')])).out, /dns:/)
})

t.test('whole labels: myngrok.io and ngrok.io.example.com pass', async t => {
  for (const n of ['myngrok.io', 'ngrok.io.example.com']) {
    const r = await run(['check', n, '--json'])
    t.equal(JSON.parse(r.out).action, 'pass', `${n} passes`)
  }
  const pass = (await run(['check', 'example.com'])).out
  t.match(pass, /example\.com: PASS\n.*\n {2}reason: +not listed\n {2}note: +the name alone; DNS also decides the CNAME, DNAME, HTTPS\/SVCB and SRV targets in its answer, and the proxy the SNI and Host/)
  t.notMatch((await run(['check', 'connect.ngrok-agent.com'])).out, /note:/, 'no note on a name the lists decide')
})

t.test('a config listing a Sigma rule blocks tunnel.jp.ngrok.com and names the rule id and author', async t => {
  const dir = t.testdir()
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, `lists:\n  sigma: { files: ["${SIGMA}"], action: block }\n`)
  const r = await run(['check', 'tunnel.jp.ngrok.com', '--config', cfg])
  t.equal(r.code, 0)
  t.match(r.out, /tunnel\.jp\.ngrok\.com: BLOCK/)
  t.match(r.out, /sigma: +19bf6fdb-7721-4f3d-867f-53467f6a5db6 "Communication To Ngrok Tunneling Service - Linux" by Florian Roth \(Nextron Systems\)/)
  const j = JSON.parse((await run(['check', 'tunnel.jp.ngrok.com', '--config', cfg, '--json'])).out)
  t.same(j.sigma, { id: '19bf6fdb-7721-4f3d-867f-53467f6a5db6', title: 'Communication To Ngrok Tunneling Service - Linux', author: 'Florian Roth (Nextron Systems)' })
})

t.test('check --client picks the group', async t => {
  const dir = t.testdir()
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, 'lists:\n  ngrok: { files: [ngrok.txt], action: block }\ngroups:\n  - { name: devops, clients: [10.20.0.0/16], actions: { ngrok: alert } }\n')
  writeFileSync(join(dir, 'ngrok.txt'), 'ngrok.io\n')
  t.match((await run(['check', 'a.ngrok.io', '--config', cfg, '--client', '10.20.3.4'])).out, /ALERT[^]*group devops/)
  t.match((await run(['check', 'a.ngrok.io', '--config', cfg, '--client', '10.21.3.4'])).out, /BLOCK[^]*group default/)
})

t.test('lists shows what was loaded, with warnings', async t => {
  const r = await run(['lists'])
  t.equal(r.code, 0)
  t.match(r.out, /config: built-in/)
  t.match(r.out, /ngrok +sinkhole +\d+/)
  t.match(r.out, /tunnels +alert +\d+/)
  const j = JSON.parse((await run(['lists', '--json'])).out)
  t.ok(j.lists.find((l: { name: string; entries: number }) => l.name === 'ngrok').entries > 10)
  const dir = t.testdir({ 'bad.txt': 'ngrok.io\nnot a name!\n', 'tg.yaml': 'lists:\n  x: { files: [bad.txt] }\n' })
  const w = await run(['lists', '--config', join(dir, 'tg.yaml')])
  t.match(w.out, /1 warning\n {2}warning: .*bad\.txt:2: /)
})

t.test('validate: 0 when valid, 2 with every error listed', async t => {
  t.equal((await run(['validate'])).code, 0)
  const dir = t.testdir({
    'bad.yaml': 'dns:\n  listen: [nope]\n  timeout: soon\n  blockResponse: drop\nproxy:\n  connectPorts: [0]\ngroups:\n  - { name: g, clients: [300.1.1.1] }\n',
  })
  const r = await run(['validate', '--config', join(dir, 'bad.yaml')])
  t.equal(r.code, 2)
  t.match(r.err, /5 errors/)
  for (const p of ['dns.listen[0]', 'dns.timeout', 'dns.blockResponse', 'proxy.connectPorts[0]', 'groups[0].clients[0]']) {
    t.ok(r.err.includes(`: ${p}: `), `${p} listed`)
  }
  const missing = await run(['validate', '--config', join(dir, 'missing-list.yaml')])
  t.equal(missing.code, 2)
  writeFileSync(join(dir, 'nolist.yaml'), 'lists:\n  x: { files: [does-not-exist.txt] }\n')
  const nl = await run(['validate', '--config', join(dir, 'nolist.yaml')])
  t.equal(nl.code, 2, 'a list that cannot be read: invalid')
  t.equal(nl.err, `tunnelguard: ${join(dir, 'nolist.yaml')}: 1 error\n  ${join(dir, 'nolist.yaml')}:2: lists.x.files[0]: cannot read list file ${join(dir, 'does-not-exist.txt')}: no such file (relative paths are from the config file's directory)\n`, 'once, with file, line and list')
})

t.test('validate: a valid config whose list has bad lines is valid (0) and shows each warning with file and line', async t => {
  const dir = t.testdir({ 'l.txt': '# source: local\nexfil.test\nhttp://c2.exfil.test/\nrelay_bad..example\n', 'one.txt': 'a.test\nnot a name!\n' })
  writeFileSync(join(dir, 'tg.yaml'), 'lists:\n  local: { files: [l.txt], action: block }\n')
  const r = await run(['validate', '--config', join(dir, 'tg.yaml')])
  t.equal(r.code, 0, 'warnings are not errors')
  t.equal(r.err, '')
  const lines = r.out.split('\n')
  t.equal(lines[0], `${join(dir, 'tg.yaml')}: valid, 2 warnings`)
  t.match(lines[1], new RegExp(`^  ${join(dir, 'l.txt')}:3: list local: invalid entry "http://c2\\.exfil\\.test/": .*; valid: a domain`))
  t.match(lines[2], new RegExp(`^  ${join(dir, 'l.txt')}:4: list local: invalid entry "relay_bad\\.\\.example": empty label; valid: `))
  t.equal(lines.length, 4)
  writeFileSync(join(dir, 'one.yaml'), 'lists:\n  one: { files: [one.txt] }\n')
  t.match((await run(['validate', '--config', join(dir, 'one.yaml')])).out, /one\.yaml: valid, 1 warning\n {2}\S*one\.txt:2: list one: /)
  writeFileSync(join(dir, 'clean.yaml'), 'lists:\n  one: { files: [l.txt] }\n')
  writeFileSync(join(dir, 'l.txt'), 'exfil.test\n')
  t.equal((await run(['validate', '--config', join(dir, 'clean.yaml')])).out, `${join(dir, 'clean.yaml')}: valid\n`, 'no warnings: just valid')
})

t.test('a sinkhole capture nothing reaches: validate and lists warn, with file and line; it is still valid', async t => {
  const dir = t.testdir({ 'tg.yaml': 'dns: { upstreams: ["udp://127.0.0.1:5399"] }\nsinkhole: { ipv4: 0.0.0.0, ipv6: "::", listen: ["127.0.0.250:443", "127.0.0.250:80"] }\n' })
  const cfg = join(dir, 'tg.yaml')
  const v = await run(['validate', '--config', cfg])
  t.equal(v.code, 0)
  t.match(v.out, new RegExp(`^${cfg}: valid, 1 warning\\n  ${cfg}:2: sinkhole\\.listen: nothing will reach the capture listeners on 127\\.0\\.0\\.250:443, 127\\.0\\.0\\.250:80: .*; set sinkhole\\.ipv4: 127\\.0\\.0\\.250, the listener's own address`))
  t.match((await run(['lists', '--config', cfg])).out, /\d+ entries in all; 1 warning\n {2}warning: \S*tg\.yaml:2: sinkhole\.listen: nothing will reach/)
  const j = JSON.parse((await run(['lists', '--config', cfg, '--json'])).out)
  t.match(j.warnings, [{ source: `${cfg}:2`, message: /^sinkhole\.listen: / }])
})

t.test('validate lists every semantic error together: an unknown list in a group and a missing list file', async t => {
  const dir = t.testdir({ 'tg.yaml': 'lists:\n  l: { files: [gone.txt] }\ngroups:\n  - { name: g, clients: [10.0.0.0/8], actions: { nope: off } }\n' })
  const r = await run(['validate', '--config', join(dir, 'tg.yaml')])
  t.equal(r.code, 2)
  t.match(r.err, /2 errors\n {2}.*tg\.yaml:2: lists\.l\.files\[0\]: cannot read list file .*gone\.txt.*\n {2}.*tg\.yaml:4: groups\[0\]\.actions\.nope: no list named "nope"/)
})

t.test('a list error from the list loader itself (a file gone after the config check) is invalid (2), shown once', async t => {
  const { AppError } = await import('../src/errors.js')
  const { default: tap } = await import('tap')
  const cli = await tap.mockImport<typeof import('../src/cli.js')>('../src/cli.js', {
    '../src/snapshot.js': { ...await import('../src/snapshot.js'), buildSnapshot: () => { throw new AppError('LIST_LOAD', 'list a: cannot read /x (ENOENT)', ['list a: cannot read /x (ENOENT)']) } },
  })
  const err = new PassThrough()
  let e = ''
  err.on('data', d => { e += d })
  const code = await cli.main(['lists'], { stdout: new PassThrough(), stderr: err, stdin: Readable.from(['']), resolvConf: '/nonexistent' })
  t.equal(code, 2)
  t.equal(e, 'tunnelguard: list a: cannot read /x (ENOENT)\n')
})

t.test('check --client must be an IP address; a client DNS would refuse is named', async t => {
  const bad = await run(['check', 'a.b', '--client', 'notanip'])
  t.equal(bad.code, 2)
  t.equal(bad.err, 'tunnelguard: check: --client notanip: not an IP address (e.g. 10.1.2.3 or fd00::7)\n')
  const inside = await run(['check', 'a.ngrok.io', '--client', '10.1.2.3'])
  t.notMatch(inside.out, /REFUSED/, 'an allowed client: the output as before')
  t.equal(inside.out.split('\n').length, 5)
  const outside = await run(['check', 'a.ngrok.io', '--client', '8.8.8.8'])
  t.equal(outside.code, 0)
  t.equal(outside.out, inside.out.replace(/10\.1\.2\.3/g, '8.8.8.8') + '  dns:     REFUSED: 8.8.8.8 is not in dns.allowClients, so DNS answers this client REFUSED whatever the name\n')
  t.equal(JSON.parse((await run(['check', 'a.ngrok.io', '--client', '8.8.8.8', '--json'])).out).dnsRefused, true)
  t.equal(JSON.parse((await run(['check', 'a.ngrok.io', '--client', '::1', '--json'])).out).dnsRefused, undefined)
  // the client as the log lines name it, not as typed
  t.equal(JSON.parse((await run(['check', 'a.ngrok.io', '--client', '::ffff:10.1.2.3', '--json'])).out).client, '10.1.2.3')
  t.match((await run(['check', 'a.ngrok.io', '--client', '0:0:0:0:0:0:0:1'])).out, /\n {2}client: {2}::1 \(group default\)\n/)
})

t.test('--version, -V and version print the package\'s version and exit 0', async t => {
  t.match(packageVersion, /^\d+\.\d+\.\d+/)
  for (const v of ['--version', '-V', 'version']) {
    const r = await run([v])
    t.same([r.code, r.out, r.err], [0, `tunnelguard ${packageVersion}\n`, ''], v)
  }
  t.match((await run(['--help'])).out, /\n {2}tunnelguard --version \| COMMAND --help\n$/, 'the usage says so')
})

t.test('--help or -h after any command prints its usage and exits 0', async t => {
  for (const cmd of ['serve', 'check', 'lists', 'validate', 'report']) {
    for (const h of ['--help', '-h']) {
      const r = await run([cmd, h])
      t.equal(r.code, 0, `${cmd} ${h}`)
      t.ok(r.out.startsWith(`usage: tunnelguard ${cmd} `), 'its usage line')
      t.match(r.out, /^usage: .*\n {2}\S.*\n$/, 'and what it does')
      t.equal(r.err, '')
    }
  }
  t.match((await run(['check', 'a.com', '--json', '--help'])).out, /^usage: tunnelguard check NAME/, 'with other arguments too')
})

t.test('report --since=-5m is five minutes back; a value that starts with a dash after a space is a usage error, as the help says', async t => {
  const recent = LINE('10.1.1.1', 'a.ngrok.io').replace('2026-11-22T04:00:00.000Z', new Date().toISOString())
  for (const since of [['--since=-5m'], ['--since', '5m']]) {
    const r = await run(['report', ...since, '--format', 'csv'], recent + LINE('10.9.9.9', 'old.ngrok.io'))
    t.equal(r.code, 0, since.join(' '))
    t.match(r.out, /10\.1\.1\.1/)
    t.notMatch(r.out, /10\.9\.9\.9/, 'the old line is left out')
  }
  const cases: [string[], string][] = [
    [['report', '--since', '--format', 'csv'], 'report: --since needs a value (one that starts with a dash: --since=-VALUE)'],
    [['report', '--until'], 'report: --until needs a value (one that starts with a dash: --until=-VALUE)'],
    [['lists', '--json=yes'], 'lists: --json takes no value'],
    [['lists', '-x'], 'lists: unknown option -x; options: --config, --json, --help'],
  ]
  for (const [argv, msg] of cases) {
    const r = await run(argv)
    t.equal(r.code, 2, argv.join(' '))
    t.equal(r.err, `tunnelguard: ${msg}\n`)
  }
  for (const [argv, msg] of [
    [['report', '--since', '-5m', '--format', 'csv'], 'report: --since -5m: a value that starts with a dash is written --since=-5m'],
    [['report', '--format', 'csv', '--until', '-1h'], 'report: --until -1h: a value that starts with a dash is written --until=-1h'],
    [['check', 'a.com', '--client', '-1'], 'check: --client -1: a value that starts with a dash is written --client=-1'],
  ] as const) {
    const r = await run([...argv], LINE('10.1.1.1', 'a.ngrok.io'))
    t.same(r, { code: 2, out: '', err: `tunnelguard: ${msg}\n` }, argv.join(' '))
  }
  const dashed = await run(['report', '--since=-x'])
  t.equal(dashed.code, 2)
  t.match(dashed.err, /--since -x: expected a duration/, 'a dashed value that is not a duration is passed on and refused there')
  const rest = await run(['report', '--format', 'csv', '--', '--since'])
  t.equal(rest.code, 1, 'a file that cannot be read: a read error')
  t.match(rest.err, /^tunnelguard: report: --since: /, 'after --, a dashed argument is a file name')
})

t.test('report --until 08:54:41 (README: a time of day alone is that whole second, today in UTC)', async t => {
  const day = () => new Date().toISOString().slice(0, 10)
  const before = day()
  const r = await run(['report', '--since', '00:00', '--until', '08:54:41'], LINE('10.1.1.1', 'a.ngrok.io'))
  t.equal(r.code, 0, r.err)
  // the day before and after the run: one of them (both but at midnight UTC)
  const window = (d: string) => `\nwindow: ${d} 00:00:00 .. ${d} 08:54:41.999 (UTC, both included)\n`
  t.ok(r.out.includes(window(before)) || r.out.includes(window(day())), r.out)
})

t.test('usage errors exit 2 with one line saying what is wrong', async t => {
  const cases: [string[], RegExp][] = [
    [['frobnicate'], /unknown command "frobnicate"; commands: serve, check, lists, validate, report/],
    [['check'], /check: missing NAME/],
    [['check', 'a', 'b'], /unexpected argument "b"/],
    [['check', ''], /^tunnelguard: check: NAME is empty \(e\.g\. tunnelguard check connect\.ngrok-agent\.com\)\n$/],
    [['check', ' '], /check: NAME is empty/],
    [['check', 'a', '--bogus'], /^tunnelguard: check: unknown option --bogus; options: --config, --client, --json, --help\n$/],
    [['serve', '--dns', 'nope'], /--dns nope: not HOST:PORT/],
    [['serve', '--proxy', 'x:99999'], /--proxy x:99999: not HOST:PORT/],
    [['serve', '--admin', 'x'], /--admin x: not HOST:PORT/],
    [['serve', '--upstream', 'https://dns.google'], /--upstream https:\/\/dns\.google: not an upstream URL; write udp:\/\/IP\[:PORT\], tcp:\/\/IP\[:PORT\] or tls:\/\/IP\[:PORT\]\[#SERVERNAME\]/],
    [['serve', '--upstream', 'tls://dns.google'], /--upstream tls:\/\/dns\.google: "dns\.google" is a name: an upstream is an IP address \(names are not looked up; there is no bootstrap resolver\); write the server's IP address and the name after #: tls:\/\/IP#dns\.google, e\.g\. tls:\/\/1\.1\.1\.1#cloudflare-dns\.com/],
    [['report', '--format', 'xml'], /--format xml: expected table, json or csv/],
    [['report', '--client', '10.0.0.1', '--client', '10.0.0.2'], /^tunnelguard: report: --client given more than once; give it once\n$/],
    [['report', '--since=1h', '--since', '2h'], /report: --since given more than once/],
    [['check', 'a.test', '--client', '10.0.0.1', '--client', '10.0.0.2'], /check: --client given more than once/],
    [['serve', '--config', 'a.yaml', '--config', 'b.yaml'], /serve: --config given more than once/],
  ]
  for (const [argv, re] of cases) {
    const r = await run(argv)
    t.equal(r.code, 2, `${argv.join(' ')} exits 2`)
    t.match(r.err, re)
    t.equal(r.err.trim().split('\n').length, 1, 'one line')
  }
  t.equal((await run(['check', 'a.test', '--json', '--json'])).code, 0, 'a flag without a value, given twice, is only said twice')
  const none = await run([])
  t.equal(none.code, 2)
  t.match(none.out, /^usage: tunnelguard/)
  t.equal((await run(['--help'])).code, 0)
})

const LINE = blockedLine

t.test('report reads stdin when no file or "-" is given, and files beside it', async t => {
  const r = await run(['report', '--format', 'json'], LINE('10.1.1.1', 'a.ngrok.io'))
  t.equal(r.code, 0)
  t.match(r.out, /10\.1\.1\.1/)
  const dir = t.testdir({ 'a.jsonl': LINE('10.2.2.2', 'b.ngrok.io') })
  const both = await run(['report', join(dir, 'a.jsonl'), '-', '--format', 'csv'], LINE('10.1.1.1', 'a.ngrok.io'))
  t.match(both.out, /10\.1\.1\.1/)
  t.match(both.out, /10\.2\.2\.2/)
  const onlyFile = await run(['report', join(dir, 'a.jsonl')], LINE('10.1.1.1', 'a.ngrok.io'))
  t.notMatch(onlyFile.out, /10\.1\.1\.1/, 'stdin is not read when only files are named')
})

t.test('an unexpected error exits 1 with one line saying what it is, not a stack trace or a crash', async t => {
  const { Writable } = await import('node:stream')
  const broken = new Writable({ write(_c, _e, cb) { cb() } })
  broken.write = () => { throw new Error('EPIPE: stdout went away') }
  for (const argv of [['check', 'a.com'], ['report', '--format', 'json']]) {
    const err = new PassThrough()
    let e = ''
    err.on('data', d => { e += d })
    const code = await main(argv, { stdout: broken, stderr: err, stdin: Readable.from([LINE('10.1.1.1', 'a.ngrok.io')]), resolvConf: '/nonexistent' })
    t.equal(code, 1)
    t.equal(e, `tunnelguard: ${argv[0]}: unexpected error: Error: EPIPE: stdout went away\n`, 'one line')
  }
  t.equal(unexpected('report', new RangeError('Invalid string length\n    more')), 'report: unexpected error: RangeError: Invalid string length', 'its first line')
  t.equal(unexpected('lists', 'a string'), "lists: unexpected error: 'a string'", 'a thrown value that is not an Error')
})

t.test('a stdout that fails is one stderr line and exit 1; a reader gone (EPIPE) is quiet, with the command\'s own code', async t => {
  const { Writable } = await import('node:stream')
  const errno = (code: string, message = `write ${code}`) => Object.assign(new Error(message), { code })
  const failing = (e: Error) => new Writable({ write(_c, _e, cb) { cb(e) } })
  const runOn = async (argv: string[], stdout: NodeJS.WritableStream, stdin = '') => {
    const err = new PassThrough()
    let e = ''
    err.on('data', d => { e += d })
    const code = await main(argv, { stdout, stderr: err, stdin: Readable.from([stdin]), resolvConf: '/nonexistent' })
    return { code, err: e }
  }
  const full = 'tunnelguard: cannot write the output to stdout: ENOSPC (no space left on device)\n'
  for (const argv of [['check', 'a.com'], ['lists'], ['report', '--format', 'json'], ['report'], ['--help']]) {
    t.same(await runOn(argv, failing(errno('ENOSPC')), LINE('10.1.1.1', 'a.ngrok.io')), { code: 1, err: full }, `${argv.join(' ')}: ENOSPC`)
    t.same(await runOn(argv, failing(errno('EPIPE')), LINE('10.1.1.1', 'a.ngrok.io')), { code: 0, err: '' }, `${argv.join(' ')}: EPIPE`)
    t.same(await runOn(argv, failing(errno('ERR_STREAM_DESTROYED')), LINE('10.1.1.1', 'a.ngrok.io')), { code: 0, err: '' }, `${argv.join(' ')}: destroyed`)
  }
  // the command's own failure keeps its code
  t.same(await runOn([], failing(errno('EIO'))), { code: 2, err: 'tunnelguard: cannot write the output to stdout: EIO (input/output error)\n' }, 'the usage text, exit 2')
  const dir = t.testdir({ 'a.jsonl': LINE('10.2.2.2', 'b.ngrok.io') })
  t.same(await runOn(['report', join(dir, 'a.jsonl'), join(dir, 'nosuch.jsonl')], failing(errno('EPIPE'))),
    { code: 1, err: `tunnelguard: report: ${join(dir, 'nosuch.jsonl')}: ENOENT: no such file or directory\n` }, 'a reader gone: the input error still said, exit 1')
  t.same(await runOn(['report', join(dir, 'a.jsonl'), join(dir, 'nosuch.jsonl')], failing(errno('ENOSPC', 'ENOSPC: no space left on device, write'))),
    { code: 1, err: full }, 'the output failed: that is what is said')
})

t.test('outputFailure: the code, and what it means where it is known', async t => {
  const errno = (code: string | undefined, message: string) => Object.assign(new Error(message), { code })
  t.equal(outputFailure(errno('EDQUOT', 'write EDQUOT')), 'cannot write the output to stdout: EDQUOT (disk quota exceeded)')
  t.equal(outputFailure(errno('ENXIO', 'ENXIO: no such device or address, write')), 'cannot write the output to stdout: ENXIO (no such device or address)', 'from a file\'s message')
  t.equal(outputFailure(errno('ECONNRESET', 'write ECONNRESET')), 'cannot write the output to stdout: ECONNRESET', 'a pipe\'s message says nothing more')
  t.equal(outputFailure(errno(undefined, 'it broke')), 'cannot write the output to stdout: it broke', 'no code: the message')
})

t.test('serve through main: listens, logs to the given stream, stops on SIGTERM', async t => {
  const log = new PassThrough()
  let text = ''
  log.on('data', d => { text += d })
  const done = run(['serve', '--dns', '127.0.0.1:0', '--proxy', '127.0.0.1:0', '--admin', '127.0.0.1:0'], '', log)
  // up to 20 s: loading the shipped lists took 1.4-3 s on a box busy with other test runs
  for (let i = 0; i < 2000 && !text.includes('"message":"started"'); i++) await new Promise(r => setTimeout(r, 10))
  t.match(text, /"message":"started"/)
  process.emit('SIGTERM', 'SIGTERM')
  const r = await done
  t.equal(r.code, 0)
  t.match(text, /"message":"stopped"/)
})

t.test('listeners of one config that clash: validate and serve say so alike, naming the paths, exit 2 (serve binds nothing)', async t => {
  const dir = t.testdir({ 'tg.yaml': 'dns: { listen: ["127.0.0.1:34050"] }\nproxy: { listen: ["127.0.0.1:34050"] }\nadmin: { listen: "127.0.0.1:34051" }\nsinkhole: { listen: ["0.0.0.0:34051"] }\n' })
  const cfg = join(dir, 'tg.yaml')
  const want = `tunnelguard: ${cfg}: 2 errors\n`
    + `  ${cfg}:2: proxy.listen[0]: 127.0.0.1:34050 clashes with dns.listen[0] (127.0.0.1:34050): the same address and port; give each listener its own port (or address)\n`
    + `  ${cfg}:4: sinkhole.listen[0]: 0.0.0.0:34051 clashes with admin.listen (127.0.0.1:34051): 0.0.0.0 takes port 34051 on every IPv4 address; give each listener its own port (or address)\n`
  const v = await run(['validate', '--config', cfg])
  t.equal(v.code, 2)
  t.equal(v.err, want)
  const log = new PassThrough()
  log.resume()
  const s = await run(['serve', '--config', cfg], '', log)
  t.equal(s.code, 2)
  t.equal(s.err, want)
})

t.test('serve on a port another process holds: one line naming the setting and address, exit 1', async t => {
  const { createServer } = await import('node:net')
  const busy = createServer()
  await new Promise<void>(r => busy.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => busy.close(() => r())))
  const port = (busy.address() as { port: number }).port
  const log = new PassThrough()
  log.resume()
  const r = await run(['serve', '--dns', '127.0.0.1:0', '--proxy', `127.0.0.1:${port}`, '--admin', '127.0.0.1:0', '--upstream', 'udp://127.0.0.1:9'], '', log)
  t.equal(r.code, 1)
  t.equal(r.err, `tunnelguard: --proxy 127.0.0.1:${port}: address in use (EADDRINUSE)\n`)
})
