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
