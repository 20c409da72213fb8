import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { AppError } from '../../src/errors.js'
import { loadLists, MAX_WARNINGS_PER_SOURCE } from '../../src/match/load-lists.js'
import type { ListConfig } from '../../src/snapshot-types.js'
import type { Action } from '../../src/policy/types.js'

const SIGMA = fileURLToPath(new URL('../../../shared/fixtures/sigma/', import.meta.url))
const list = (files: string[], action: Action = 'block', urls: string[] = []): ListConfig => ({ files, urls, refresh: 86_400_000, maxBytes: 1 << 20, action })

t.test('loads every list into one matcher, with infos and warnings', async t => {
  const dir = t.testdir({
    'ngrok.txt': '# ngrok\nngrok.io\n*.ngrok.app\n@@||docs.ngrok.com^\nngrok.io\nbad..name\n',
    'hosts': '0.0.0.0 tunnel.ngrok.com\n',
  })
  const { matcher, infos, warnings } = loadLists({
    ngrok: list([join(dir, 'ngrok.txt'), join(dir, 'hosts')], 'sinkhole'),
    sigma: list([join(SIGMA, 'net_connection_lnx_ngrok_tunnel.yml')], 'alert'),
  })
  t.same(infos, [
    { name: 'ngrok', action: 'sinkhole', sources: [join(dir, 'ngrok.txt'), join(dir, 'hosts')], entries: 4, allows: 1 },
    { name: 'sigma', action: 'alert', sources: [join(SIGMA, 'net_connection_lnx_ngrok_tunnel.yml')], entries: 7, allows: 0 },
  ])
  t.equal(matcher.size, 11, 'the duplicate ngrok.io line is counted once')
  t.same(warnings[0], { source: `${join(dir, 'ngrok.txt')}:6`, message: 'list ngrok: invalid entry "bad..name": empty label; ' + warnings[0]!.message.split('; ').slice(1).join('; ') })
  t.same(warnings.slice(1).map(w => w.source), [25, 26, 27, 28, 29, 30, 31].map(n => `${join(SIGMA, 'net_connection_lnx_ngrok_tunnel.yml')}:${n}`),
    'and the rule\'s contains values, each noted (a substring matches more than whole labels)')
  t.match(warnings[0]!.message, /valid: a domain/)
  t.same(matcher.lookup('x.ngrok.io').map(e => [e.list, e.pattern, e.source]), [['ngrok', 'ngrok.io', `${join(dir, 'ngrok.txt')}:2`]])
  t.same(matcher.lookup('myngrok.io'), [])
  t.same(matcher.lookup('ngrok.io.example.com'), [])
  const jp = matcher.lookup('tunnel.jp.ngrok.com')
  t.match(jp, [{ list: 'sigma', kind: 'domain', sigma: { id: '19bf6fdb-7721-4f3d-867f-53467f6a5db6', author: 'Florian Roth (Nextron Systems)' } }])
  t.same(matcher.lookup('tunnel.ngrok.com').map(e => e.pattern), ['0.0.0.0 tunnel.ngrok.com'])
  t.same(matcher.lookup('docs.ngrok.com').map(e => e.allow), [true])
})

t.test('remote texts are fed in with their source; texts for unknown lists are a warning', async t => {
  const { matcher, infos, warnings } = loadLists({ tunnels: list([], 'alert', ['https://lists.example/t.txt']) }, {
    extraTexts: {
      tunnels: [{ source: 'https://lists.example/t.txt', text: 'trycloudflare.com\n' }],
      nope: [{ source: 'https://x/y', text: 'a.example' }],
    },
  })
  t.same(infos, [{ name: 'tunnels', action: 'alert', sources: ['https://lists.example/t.txt'], entries: 1, allows: 0 }])
  t.equal(matcher.lookup('a.trycloudflare.com')[0]!.source, 'https://lists.example/t.txt:1')
  t.match(warnings, [{ source: 'nope', message: /remote texts for list nope, which is not configured, were ignored/ }])
})

t.test('an injected reader is used', async t => {
  const read: string[] = []
  const { matcher } = loadLists({ a: list(['/virtual/a.txt']) }, { readFile: p => { read.push(p); return 'a.example\n' } })
  t.same(read, ['/virtual/a.txt'])
  t.equal(matcher.lookup('a.example').length, 1)
})

t.test('unreadable files are one LIST_LOAD error naming each file and what is valid', async t => {
  const dir = t.testdir({ 'ok.txt': 'a.example\n' })
  const one = () => loadLists({ a: list([join(dir, 'missing.txt'), join(dir, 'ok.txt')]) })
  t.throws(one, { code: 'LIST_LOAD', message: /^list a: cannot read .*missing\.txt \(ENOENT.*\); lists\.a\.files must name readable list files/ })
  let err: unknown
  try { loadLists({ a: list([join(dir, 'x1')]), b: list([dir]) }) } catch (e) { err = e }
  t.ok(err instanceof AppError)
  t.match(err, { code: 'LIST_LOAD', message: /^2 list files cannot be read: list a: .*; list b: .*EISDIR/ })
  t.equal((err as AppError).details.length, 2)
})

t.test('warnings are capped per source, with a count of the rest', async t => {
  const text = Array.from({ length: MAX_WARNINGS_PER_SOURCE + 7 }, (_, i) => `bad${i}..x`).join('\n')
  const { warnings } = loadLists({ a: list(['/v/a.txt']) }, { readFile: () => text })
  t.equal(warnings.length, MAX_WARNINGS_PER_SOURCE + 1)
  t.same(warnings.at(-1), { source: '/v/a.txt', message: 'list a: 7 more warnings in this source not shown' })
})

t.test('a list saved as UTF-16 (Notepad, PowerShell >) loads its entries; a line\'s controls are escaped in its warning', async t => {
  const dir = t.testdir({})
  writeFileSync(join(dir, 'u16.txt'), Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('u16.example\r\nother.example\r\n', 'utf16le')]))
  // without a BOM: UTF-8, and the NULs of each line are shown escaped, not written raw to a terminal
  writeFileSync(join(dir, 'nobom.txt'), Buffer.from('a.example\r\n', 'utf16le'))
  writeFileSync(join(dir, 'esc.txt'), 'x\u001b]0;t\u0007 y\n')
  const { matcher, infos, warnings } = loadLists({ u: list([join(dir, 'u16.txt')]), n: list([join(dir, 'nobom.txt'), join(dir, 'esc.txt')]) })
  t.equal(infos[0]!.entries, 2)
  t.same(matcher.lookup('www.u16.example').map(e => e.pattern), ['u16.example'])
  t.equal(warnings.length, 3, 'two lines of nobom.txt (its last is a NUL alone), one of esc.txt')
  t.match(warnings[0]!.message, /^list n: invalid entry "a\\x00\.\\x00e\\x00/, 'NULs escaped')
  t.match(warnings[2]!.message, /^list n: invalid entry "x\\x1b\]0;t\\x07 y": one name per line/, 'ESC and BEL escaped')
  t.notMatch(warnings.map(w => w.message).join(''), /[\u0000-\u0008\u001b]/)
  // a long line is cut by its own characters, then escaped: the length said is the line's, no escape cut in half
  writeFileSync(join(dir, 'long.txt'), `${'x\u001b'.repeat(70)} y\n`)
  const long = loadLists({ l: list([join(dir, 'long.txt')]) }).warnings[0]!.message
  t.match(long, `"${'x\\x1b'.repeat(50)}…" (142 characters)`)
})
