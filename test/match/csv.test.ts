import { readFileSync } from 'node:fs'
import t from 'tap'
import { parseListText } from '../../src/match/load-lists.js'

const LISTS = new URL('../../../shared/fixtures/lists/', import.meta.url)

t.test('a CSV reads its first column as plain names, after a header', async t => {
  const r = parseListText('c', 'x.csv', 'domain,name\r\nngrok.io,ngrok\n"*.ts.net",Tailscale\n"unclosed.example\n\nbore.pub:*,bore\n*.*.x.com,x\n')
  t.same(r.entries.map(e => `${e.kind}:${e.name}:${e.source}`),
    ['domain:ngrok.io:x.csv:2', 'subdomains:ts.net:x.csv:3', 'domain:unclosed.example:x.csv:4'])
  t.same(r.warnings.map(w => w.source), ['x.csv:6', 'x.csv:7'])
  t.match(r.warnings[0]!.message, /invalid entry "bore\.pub:\*"/)
})

t.test('a first line with a dot in its first field is data, not a header', async t => {
  t.same(parseListText('c', 'x.csv', '\uFEFFngrok.io\nngrok.app').entries.map(e => e.name), ['ngrok.io', 'ngrok.app'])
})

t.test('the LOTTunnels and LOLRMM fixtures load, and what cannot is a warning', async t => {
  for (const f of ['lottunnels/domains.csv', 'lolrmm/rmm_domains.csv']) {
    const text = readFileSync(new URL(f, LISTS), 'utf8')
    const r = parseListText('c', f, text)
    const rows = text.split('\n').filter(l => l.trim() !== '').length - 1
    t.ok(r.entries.length > rows / 2, `${f}: most rows load`)
    t.equal(r.entries.length + r.warnings.length, rows, `${f}: every row is an entry or a warning`)
  }
  const lot = parseListText('c', 'd.csv', readFileSync(new URL('lottunnels/domains.csv', LISTS), 'utf8'))
  t.ok(lot.entries.some(e => e.name === 'ts.net' && e.kind === 'subdomains'))
  t.ok(lot.warnings.some(w => w.message.includes('"bore.pub:*"')))
})

t.test('an address or a name of the machine itself is no entry: a warning naming its line (LOLRMM holds IP rows)', async t => {
  const r = parseListText('c', 'x.csv', 'URI,Tool\n136.243.104.235,Ammyy\n2001:db8::1,v6\nlocalhost,l\nBroadcastHost,b\nok.example,fine\n')
  t.same(r.entries.map(e => e.name), ['ok.example'])
  t.same(r.warnings.map(w => w.source), ['x.csv:2', 'x.csv:3', 'x.csv:4', 'x.csv:5'])
  t.match(r.warnings[0]!.message, /^"136\.243\.104\.235" is an address, not a name: lists hold names \(block the address at the firewall\)/)
  t.match(r.warnings[2]!.message, /^"localhost" names the machine itself, as in a hosts file: not an entry$/)
  // the fixture's IP rows, each a warning now (they were loaded as names nothing ever asks)
  const rmm = parseListText('c', 'r.csv', readFileSync(new URL('lolrmm/rmm_domains.csv', LISTS), 'utf8'))
  t.notOk(rmm.entries.some(e => /^\d+\.\d+\.\d+\.\d+$/.test(e.name)), 'no address among the entries')
  t.ok(rmm.warnings.filter(w => w.message.includes('is an address')).length >= 9)
  // the plain format too (a line of a plain list that is a name of the machine)
  const plain = parseListText('p', 'p.txt', 'localhost\nngrok.io\n')
  t.same(plain.entries.map(e => e.name), ['ngrok.io'])
  t.match(plain.warnings, [{ source: 'p.txt:1', message: /names the machine itself/ }])
})

t.test('a warning quotes at most 100 characters of a long line, and says how long it was', async t => {
  const long = 'a'.repeat(300_000)
  const r = parseListText('p', 'p.txt', `${long}\n`)
  t.equal(r.warnings.length, 1)
  t.ok(r.warnings[0]!.message.length < 600, `${r.warnings[0]!.message.length} characters`)
  t.match(r.warnings[0]!.message, `invalid entry "${'a'.repeat(100)}…" (300000 characters)`)
})
