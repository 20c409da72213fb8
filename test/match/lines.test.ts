import t from 'tap'
import { parseListText } from '../../src/match/load-lists.js'

const parse = (text: string) => parseListText('l', 'list.txt', text)
const short = (text: string) => parse(text).entries.map(e => `${e.kind}${e.allow ? '+allow' : ''}:${e.name}:${e.pattern}:${e.source}`)

t.test('plain lines: domain, *.subdomains, comments, blank lines, CRLF, BOM', async t => {
  const text = '\uFEFF# header\n\nngrok.io\r\n  *.ngrok.app  \n! adblock comment\nNGROK-Free.App. # inline comment\n\tbücher.example\n'
  t.same(short(text), [
    'domain:ngrok.io:ngrok.io:list.txt:3',
    'subdomains:ngrok.app:*.ngrok.app:list.txt:4',
    'domain:ngrok-free.app:NGROK-Free.App.:list.txt:6',
    'domain:xn--bcher-kva.example:bücher.example:list.txt:7',
  ])
  t.same(parse(text).warnings, [])
})

t.test('invalid plain lines are warnings naming the line and what is valid; the rest loads', async t => {
  const r = parse('ok.example\nbad..name\nngrok.io/path\ntwo names here\n*.\nx.io#c\n')
  t.same(r.entries.map(e => e.name), ['ok.example'])
  t.same(r.warnings.map(w => w.source), ['list.txt:2', 'list.txt:3', 'list.txt:4', 'list.txt:5', 'list.txt:6'])
  t.match(r.warnings[0]!.message, /invalid entry "bad\.\.name": empty label; valid: a domain \(ngrok\.io/)
  t.match(r.warnings[1]!.message, /character "\/" not allowed/)
  t.match(r.warnings[2]!.message, /one name per line/)
  t.match(r.warnings[3]!.message, /"\*\.": empty name/)
  t.match(r.warnings[4]!.message, /character "#" not allowed/)
})

t.test('hosts lines are exact entries; localhost names are skipped', async t => {
  const text = [
    '127.0.0.1 localhost localhost.localdomain',
    '::1 ip6-localhost ip6-loopback',
    'fe80::1%lo0 localhost',
    '255.255.255.255 broadcasthost',
    '0.0.0.0 0.0.0.0',
    '0.0.0.0 tunnel.ngrok.com # legacy agent',
    '127.0.0.1\tA.example b.example',
    ':: c.example',
  ].join('\n')
  t.same(short(text), [
    'exact:tunnel.ngrok.com:0.0.0.0 tunnel.ngrok.com:list.txt:6',
    'exact:a.example:127.0.0.1 A.example:list.txt:7',
    'exact:b.example:127.0.0.1 b.example:list.txt:7',
    'exact:c.example::: c.example:list.txt:8',
  ])
  t.same(parse(text).warnings, [])
})

t.test('bad hosts lines are warnings', async t => {
  const r = parse('0.0.0.0 good.example bad_ch*r.example\n0.0.0.0\n0.0.0.0 # nothing\n')
  t.same(r.entries.map(e => e.name), ['good.example'])
  t.same(r.warnings.map(w => w.source), ['list.txt:1', 'list.txt:2', 'list.txt:3'])
  t.match(r.warnings[0]!.message, /invalid host "bad_ch\*r\.example" in hosts line: character "\*"/)
  t.match(r.warnings[1]!.message, /"0\.0\.0\.0" is an address with no host name after it: not an entry \(lists hold names: block addresses at the firewall\)/)
})

t.test('adblock rules: ||domain^, ||*.domain^, @@ allow, safe options, header', async t => {
  const text = '[Adblock Plus 2.0]\n||ngrok.io^\n@@||docs.ngrok.com^\n||*.ngrok.app^\n||ngrok.dev^|\n||ngrok.pizza\n||equinox.io^$important\n@@||ok.example^$all,important\n'
  t.same(short(text), [
    'domain:ngrok.io:||ngrok.io^:list.txt:2',
    'domain+allow:docs.ngrok.com:@@||docs.ngrok.com^:list.txt:3',
    'subdomains:ngrok.app:||*.ngrok.app^:list.txt:4',
    'domain:ngrok.dev:||ngrok.dev^|:list.txt:5',
    'domain:ngrok.pizza:||ngrok.pizza:list.txt:6',
    'domain:equinox.io:||equinox.io^$important:list.txt:7',
    'domain+allow:ok.example:@@||ok.example^$all,important:list.txt:8',
  ])
  t.same(parse(text).warnings, [])
})

t.test('adblock rules a name list cannot honour are skipped with a warning', async t => {
  const r = parse('||x.example^$third-party\n|https://x.example/\n/ngrok\\.io/\nexample.com##.ad\n||bad..name^\n@@plain.example\n[Adblock\n||y.example^$\n')
  t.same(r.entries, [])
  t.same(r.warnings.map(w => w.source), [1, 2, 3, 4, 5, 6, 7, 8].map(n => `list.txt:${n}`))
  t.match(r.warnings[0]!.message, /option \$third-party limits when it applies/)
  t.match(r.warnings[1]!.message, /only \|\|domain\^ rules name hosts/)
  t.match(r.warnings[4]!.message, /"bad\.\.name" is not a host name \(empty label\)/)
  t.match(r.warnings[7]!.message, /option \$ limits/)
})

t.test('plain, hosts and adblock lines mix in one file', async t => {
  t.same(parse('a.example\n0.0.0.0 b.example\n||c.example^\n*.d.example\n').entries.map(e => e.kind),
    ['domain', 'exact', 'domain', 'subdomains'])
})
