// tls:// upstream URLs (DNS over TLS) and dns.tlsCaFile: what is taken, and what each mistake is told.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig, parseConfigText } from '../../src/config/load.js'
import { isUpstreamUrl, parseUpstreamUrl } from '../../src/config/endpoints.js'
import { parseUpstream } from '../../src/dns/upstream.js'
import { detailsOf } from '../fixtures/config-errors.js'

const FORMS = 'udp://IP[:PORT], tcp://IP[:PORT] or tls://IP[:PORT][#SERVERNAME] (IPv6 in brackets)'

t.test('tls://IP[:PORT][#SERVERNAME]: port 853 by default, the server name kept apart', async t => {
  t.same(parseUpstreamUrl('tls://1.1.1.1'), { proto: 'tls', host: '1.1.1.1', port: 853 })
  t.same(parseUpstreamUrl('tls://1.1.1.1#cloudflare-dns.com'), { proto: 'tls', host: '1.1.1.1', port: 853, servername: 'cloudflare-dns.com' })
  t.same(parseUpstreamUrl('tls://[2606:4700:4700::1111]:8853#one.one.one.one'),
    { proto: 'tls', host: '2606:4700:4700::1111', port: 8853, servername: 'one.one.one.one' })
  t.same(parseUpstreamUrl('tls://10.0.0.53#10.0.0.1'), { proto: 'tls', host: '10.0.0.53', port: 853, servername: '10.0.0.1' }, 'a server name may be an IP')
  t.same(parseUpstreamUrl('tls://10.0.0.53#fd00::1'), { proto: 'tls', host: '10.0.0.53', port: 853, servername: 'fd00::1' })
  t.same(parseUpstreamUrl('udp://9.9.9.9'), { proto: 'udp', host: '9.9.9.9', port: 53 }, 'udp:// and tcp:// keep port 53')
  t.same(parseUpstreamUrl('tcp://[::1]:5353'), { proto: 'tcp', host: '::1', port: 5353 })
  t.same(parseUpstream('tls://9.9.9.9#dns.quad9.net'), { proto: 'tls', host: '9.9.9.9', port: 853, servername: 'dns.quad9.net' })
  t.ok(isUpstreamUrl('tls://8.8.8.8#dns.google'))
})

t.test('a bad upstream URL: what is wrong with it and what to write', async t => {
  const cases: [string, string][] = [
    ['tls://dns.google', '"dns.google" is a name: an upstream is an IP address (names are not looked up; there is no bootstrap resolver); write the server\'s IP address and the name after #: tls://IP#dns.google, e.g. tls://1.1.1.1#cloudflare-dns.com'],
    ['tls://cloudflare-dns.com:853#cloudflare-dns.com', '"cloudflare-dns.com" is a name: an upstream is an IP address (names are not looked up; there is no bootstrap resolver); write the server\'s IP address and the name after #: tls://IP#cloudflare-dns.com, e.g. tls://1.1.1.1#cloudflare-dns.com'],
    ['udp://dns.google', '"dns.google" is a name: an upstream is an IP address (names are not looked up; there is no bootstrap resolver); write udp://IP'],
    ['udp://1.1.1.1#cloudflare-dns.com', 'a server name (#cloudflare-dns.com) is for tls:// upstreams only; write udp://1.1.1.1 or tls://…#cloudflare-dns.com'],
    ['tcp://[::1]:53#x.test', 'a server name (#x.test) is for tls:// upstreams only; write tcp://[::1]:53 or tls://…#x.test'],
    ['tls://1.1.1.1#', '"" is not a server name; write the name the server\'s certificate carries, e.g. tls://1.1.1.1#cloudflare-dns.com'],
    ['tls://1.1.1.1#bad name', '"bad name" is not a server name; write the name the server\'s certificate carries, e.g. tls://1.1.1.1#cloudflare-dns.com'],
    ['tls://1.1.1.1:0', '0 is not a port (1-65535)'],
    ['tls://1.1.1.1:65536#x.test', '65536 is not a port (1-65535)'],
    ['tls://999.1.1.1', `not an upstream URL; write ${FORMS}`],
    ['tls://1.2.3', `not an upstream URL; write ${FORMS}`],
    ['tls://[1.1.1.1]', `not an upstream URL; write ${FORMS}`],
    ['tls://', `not an upstream URL; write ${FORMS}`],
    ['tls://-x-', `not an upstream URL; write ${FORMS}`],
    ['tls://::1', `not an upstream URL; write ${FORMS}`],
    ['https://1.1.1.1/dns-query', `not an upstream URL; write ${FORMS}`],
    ['TLS://1.1.1.1', `not an upstream URL; write ${FORMS}`],
  ]
  for (const [url, why] of cases) {
    t.equal(parseUpstreamUrl(url), why, url)
    t.notOk(isUpstreamUrl(url))
  }
  t.throws(() => parseUpstream('tls://dns.google'), { code: 'CONFIG_INVALID', message: /^tls:\/\/dns\.google: "dns\.google" is a name/ })
})

t.test('in the config: tls:// in dns.upstreams and forwardZones; each mistake on its line', async t => {
  const c = parseConfigText('dns:\n  upstreams: ["tls://1.1.1.1#cloudflare-dns.com", "udp://9.9.9.9"]\n  forwardZones: { corp.example: ["tls://10.0.0.10#dc1.corp.example"] }\n', 'u.yaml')
  t.same(c.dns.upstreams, ['tls://1.1.1.1#cloudflare-dns.com', 'udp://9.9.9.9'])
  t.same(c.dns.forwardZones, { 'corp.example': ['tls://10.0.0.10#dc1.corp.example'] })
  t.equal(c.dns.tlsCaFile, undefined, 'no private CA by default')
  t.equal(c.dns.tlsCa, undefined)
  const text = [
    'dns:',
    '  upstreams:',
    '    - tls://1.1.1.1#cloudflare-dns.com',    // 3
    '    - tls://cloudflare-dns.com',            // 4
    '    - udp://1.1.1.1#one.one.one.one',       // 5
    '  forwardZones:',
    '    corp.example: ["tls://dc1.corp.example"]',   // 7
  ].join('\n')
  t.same(detailsOf(() => parseConfigText(text, 'u.yaml')), [
    'u.yaml:4: dns.upstreams[1]: "cloudflare-dns.com" is a name: an upstream is an IP address (names are not looked up; there is no bootstrap resolver); write the server\'s IP address and the name after #: tls://IP#cloudflare-dns.com, e.g. tls://1.1.1.1#cloudflare-dns.com',
    'u.yaml:5: dns.upstreams[2]: a server name (#one.one.one.one) is for tls:// upstreams only; write udp://1.1.1.1 or tls://…#one.one.one.one',
    'u.yaml:7: dns.forwardZones["corp.example"][0]: "dc1.corp.example" is a name: an upstream is an IP address (names are not looked up; there is no bootstrap resolver); write the server\'s IP address and the name after #: tls://IP#dc1.corp.example, e.g. tls://1.1.1.1#cloudflare-dns.com',
  ])
})

/** A CA certificate made by openssl (PEM). */
function caPem(dir: string, name: string): string {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, `${name}.key`),
    '-out', join(dir, `${name}.pem`), '-days', '2', '-subj', `/CN=${name}`], { stdio: ['ignore', 'pipe', 'pipe'] })
  return readFileSync(join(dir, `${name}.pem`), 'utf8')
}

t.test('dns.tlsCaFile: read at load, relative to the config file; its certificates kept', async t => {
  const dir = t.testdir({ etc: {} })
  const one = caPem(join(dir, 'etc'), 'one')
  const two = caPem(join(dir, 'etc'), 'two')
  // a bundle: two certificates, with the text openssl x509 -text puts before them
  writeFileSync(join(dir, 'etc', 'bundle.pem'), `# corp CAs\nsubject=CN = one\n${one}\n${two}`)
  const cfg = join(dir, 'etc', 'tg.yaml')
  writeFileSync(cfg, 'dns:\n  upstreams: ["tls://10.0.0.53#dns.corp.example"]\n  tlsCaFile: bundle.pem\n')
  const c = loadConfig(cfg)
  t.equal(c.dns.tlsCaFile, join(dir, 'etc', 'bundle.pem'), 'the path made absolute')
  t.equal(c.dns.tlsCa, `${one.trim()}\n${two.trim()}\n`, 'the certificates, nothing else')
  writeFileSync(cfg, `dns:\n  tlsCaFile: ${join(dir, 'etc', 'one.pem')}\n`)
  t.equal(loadConfig(cfg, { reload: true }).dns.tlsCa, one, 'an absolute path; read again at a reload')
})

t.test('dns.tlsCaFile that cannot serve: the config file, line, path and fix', async t => {
  const dir = t.testdir({ sub: {}, 'key.pem': '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n' })
  const good = caPem(dir, 'good')
  writeFileSync(join(dir, 'bad.pem'), `${good}\n-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n`)
  const badLine = good.split('\n').length + 1
  const cfg = join(dir, 'c.yaml')
  const errors = (ca: string) => {
    writeFileSync(cfg, `dns:\n  upstreams: ["tls://10.0.0.53"]\n  tlsCaFile: ${ca}\n`)
    return detailsOf(() => loadConfig(cfg, { serve: true }))
  }
  t.same(errors('nosuch.pem'), [`${cfg}:3: dns.tlsCaFile: cannot read TLS CA file ${join(dir, 'nosuch.pem')}: no such file (relative paths are from the config file's directory)`])
  t.same(errors(join(dir, 'sub')), [`${cfg}:3: dns.tlsCaFile: cannot read TLS CA file ${join(dir, 'sub')}: a directory, not a file`])
  t.same(errors('key.pem'), [`${cfg}:3: dns.tlsCaFile: no certificate in TLS CA file ${join(dir, 'key.pem')}; write the CA's certificate in PEM (-----BEGIN CERTIFICATE-----; from DER: openssl x509 -inform der -in ca.der -out ca.pem)`])
  t.match(errors('bad.pem'), [new RegExp(`^${cfg.replace(/\./g, '\\.')}:3: dns\\.tlsCaFile: TLS CA file ${join(dir, 'bad.pem').replace(/\./g, '\\.')}:${badLine}: not a certificate that can be read \\(.+\\); write the CA's certificate in PEM, as openssl x509 -in ca\\.pem -text reads it$`)])
  t.equal(errors('bad.pem').length, 1)
  t.same(errors('/dev/null'), [`${cfg}:3: dns.tlsCaFile: no certificate in TLS CA file /dev/null; write the CA's certificate in PEM (-----BEGIN CERTIFICATE-----; from DER: openssl x509 -inform der -in ca.der -out ca.pem)`])
  mkdirSync(join(dir, 'fifo-dir'))
  execFileSync('mkfifo', [join(dir, 'fifo-dir', 'ca.fifo')])
  t.same(errors('fifo-dir/ca.fifo'), [`${cfg}:3: dns.tlsCaFile: cannot read TLS CA file ${join(dir, 'fifo-dir', 'ca.fifo')}: not a regular file (a FIFO, socket or device: serve would wait on it, or read it without end); name a regular file or a symlink to one (relative paths are from the config file's directory)`],
    'serve does not block on a FIFO')
  writeFileSync(cfg, 'dns:\n  upstreams: ["tls://10.0.0.53"]\n  tlsCaFile: /dev/zero\n')
  t.same(detailsOf(() => loadConfig(cfg)), [`${cfg}:3: dns.tlsCaFile: cannot read TLS CA file /dev/zero: not a regular file (a device or socket: reading it might never end); name a regular file, a symlink to one, or a pipe (<(…))`],
    'validate, check and lists: a device is not read either (it never ends)')
  // beside the schema's errors, each on its line
  writeFileSync(cfg, 'dns:\n  upstreams: ["tls://dns.example"]\n  tlsCaFile: nosuch.pem\n')
  t.same(detailsOf(() => loadConfig(cfg)), [
    `${cfg}:2: dns.upstreams[0]: "dns.example" is a name: an upstream is an IP address (names are not looked up; there is no bootstrap resolver); write the server's IP address and the name after #: tls://IP#dns.example, e.g. tls://1.1.1.1#cloudflare-dns.com`,
    `${cfg}:3: dns.tlsCaFile: cannot read TLS CA file ${join(dir, 'nosuch.pem')}: no such file (relative paths are from the config file's directory)`,
  ])
  writeFileSync(cfg, 'dns:\n  tlsCaFile: ""\n')
  t.same(detailsOf(() => loadConfig(cfg)), [`${cfg}:2: dns.tlsCaFile: "" is too short; at least 1 character`])
  writeFileSync(cfg, 'dns:\n  tlsCaFile: [a.pem]\n')
  t.same(detailsOf(() => loadConfig(cfg)), [`${cfg}:2: dns.tlsCaFile: expected file path, got a list`])
})
