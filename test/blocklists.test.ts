// The shipped lists, checked as text: form, sources, duplicates, what they must and must not cover.
// Plain string processing on purpose: this test does not depend on the list loaders or the trie.
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { basename, dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { defaultLists } from '../src/config/resolve.js'

const DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'blocklists')

type Kind = 'exact' | 'domain' | 'subdomains'
interface Item { file: string; line: number; text: string; name: string; kind: Kind }
interface Parsed { file: string; lines: string[]; items: Item[]; problems: string[] }

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/
const HOSTS_ADDR = new Set(['0.0.0.0', '127.0.0.1', '::', '::1'])

/** Why `name` is not a valid lowercase host name of at least two labels, or undefined. */
function badName(name: string): string | undefined {
  if (name.length === 0) return 'empty name'
  if (name.length > 253) return 'longer than 253 characters'
  if (name !== name.toLowerCase()) return 'not lowercase'
  const labels = name.split('.')
  if (labels.length < 2) return 'a single label (a TLD) is far too broad'
  const bad = labels.find(l => !LABEL.test(l))
  return bad === undefined ? undefined : `invalid label "${bad}"`
}

/** One entry line → what it matches, or a reason it is not a valid entry. */
function parseEntry(text: string): { name: string; kind: Kind } | string {
  if (text !== text.trim()) return 'leading or trailing whitespace'
  if (text.includes('#')) return 'trailing comment (put the source in the comment block above)'
  const parts = text.split(' ')
  let name = text
  let kind: Kind = 'domain'
  if (parts.length === 2) {
    if (!HOSTS_ADDR.has(parts[0]!)) return `hosts-file address "${parts[0]}" (use 0.0.0.0)`
    name = parts[1]!
    kind = 'exact'
  } else if (parts.length !== 1) return 'not one of: name | *.name | 0.0.0.0 name'
  else if (text.startsWith('*.')) { name = text.slice(2); kind = 'subdomains' }
  const bad = badName(name)
  return bad ?? { name, kind }
}

/**
 * Parse a list file. Rule for sources: entries come in groups (consecutive entry lines); each
 * group must directly follow (no blank line between) a comment block that has a `# source: …` line.
 */
function parseList(file: string, text: string): Parsed {
  const lines = text.split('\n')
  const items: Item[] = []
  const problems: string[] = []
  let block: string[] = []           // the comment block right above the current position
  let blockHasSource = false
  let inGroup = false
  lines.forEach((raw, i) => {
    const where = `${basename(file)}:${i + 1}`
    if (raw.trim() === '') { block = []; blockHasSource = false; inGroup = false; return }
    if (raw.startsWith('#')) {
      if (inGroup) { block = []; blockHasSource = false; inGroup = false }
      block.push(raw)
      if (/^# source: \S/.test(raw)) blockHasSource = true
      return
    }
    const e = parseEntry(raw)
    if (typeof e === 'string') { problems.push(`${where}: "${raw}": ${e}`); return }
    if (!blockHasSource) problems.push(`${where}: "${raw}" has no "# source: …" line in the comment block right above it`)
    inGroup = true
    items.push({ file: basename(file), line: i + 1, text: raw, ...e })
  })
  return { file: basename(file), lines, items, problems }
}

/** Does `item` match host `name` (whole labels only)? */
function matches(item: { name: string; kind: Kind }, name: string): boolean {
  const sub = name.endsWith('.' + item.name)
  if (item.kind === 'exact') return name === item.name
  if (item.kind === 'subdomains') return sub
  return sub || name === item.name
}

const covered = (items: Item[], name: string): Item | undefined => items.find(i => matches(i, name))

const files = readdirSync(DIR).filter(f => f.endsWith('.txt')).sort()
const lists = new Map(files.map(f => [f, parseList(f, readFileSync(resolve(DIR, f), 'utf8'))]))
function get(f: string): Parsed {
  const p = lists.get(f)
  if (!p) throw new Error(`blocklists/${f} is missing`)
  return p
}

t.test('the parser and matcher of this test behave', async t => {
  t.same(parseEntry('ngrok.io'), { name: 'ngrok.io', kind: 'domain' })
  t.same(parseEntry('*.ngrok.io'), { name: 'ngrok.io', kind: 'subdomains' })
  t.same(parseEntry('0.0.0.0 vscode.dev'), { name: 'vscode.dev', kind: 'exact' })
  t.match(parseEntry('1.2.3.4 vscode.dev'), /hosts-file address/)
  t.match(parseEntry('ngrok.io # x'), /trailing comment/)
  t.match(parseEntry('a b c'), /not one of/)
  t.match(parseEntry(' ngrok.io'), /whitespace/)
  t.match(parseEntry('Ngrok.io'), /lowercase/)
  t.match(parseEntry('io'), /single label/)
  t.match(parseEntry('-x.io'), /invalid label/)
  t.match(parseEntry('a..io'), /invalid label/)
  t.match(parseEntry('*.'), /empty name/)
  t.match(parseEntry('a.'.repeat(130) + 'io'), /longer than 253/)
  const p = parseList('x.txt', '# header\n\n# what\n# source: doc\na.io\nb.io\n# next, no source\nc.io\n\nd.io\nBAD\n')
  t.same(p.items.map(i => i.name), ['a.io', 'b.io', 'c.io', 'd.io'])
  t.equal(p.problems.length, 3)
  t.match(p.problems[0], /x\.txt:8: "c\.io" has no "# source/)
  t.match(p.problems[1], /x\.txt:10: "d\.io" has no/)
  t.match(p.problems[2], /x\.txt:11: "BAD": not lowercase/)
  t.ok(matches({ name: 'ngrok.io', kind: 'domain' }, 'ngrok.io'))
  t.ok(matches({ name: 'ngrok.io', kind: 'domain' }, 'a.b.ngrok.io'))
  t.notOk(matches({ name: 'ngrok.io', kind: 'domain' }, 'myngrok.io'))
  t.notOk(matches({ name: 'ngrok.io', kind: 'domain' }, 'ngrok.io.example.com'))
  t.notOk(matches({ name: 'ngrok.io', kind: 'subdomains' }, 'ngrok.io'))
  t.ok(matches({ name: 'ngrok.io', kind: 'subdomains' }, 'x.ngrok.io'))
  t.notOk(matches({ name: 'ngrok.io', kind: 'exact' }, 'x.ngrok.io'))
})

t.test('the shipped lists exist and the defaults use only the low-collateral ones', async t => {
  t.same(files, ['ngrok.txt', 'tunnels-broad.txt', 'tunnels.txt'])
  const defaults = Object.values(defaultLists()).flatMap(l => l.files).map(f => basename(f)).sort()
  t.same(defaults, ['ngrok.txt', 'tunnels.txt'], 'tunnels-broad.txt is opt-in only')
  const readme = readFileSync(resolve(DIR, 'README.md'), 'utf8')
  for (const f of files) {
    const row = readme.split('\n').find(l => l.startsWith(`| \`${f}\` |`))
    const count = row?.split('|').at(-3)?.trim()
    t.equal(count, String(get(f).items.length), `README.md's table gives the entry count of ${f}`)
  }
})

for (const f of files) {
  t.test(`${f}: header, form and a source for every entry`, async t => {
    const p = get(f)
    t.match(p.lines[0], /^# tunnelguard blocklist: /, 'first line names the list')
    const header = p.lines.slice(0, p.lines.indexOf(''))
    for (const key of ['What:', 'Researched:', 'Format:', 'License: MIT', 'Contribute:']) {
      t.ok(header.some(l => l.includes(key)), `header has "${key}"`)
    }
    t.same(p.problems, [], 'every line is a comment, blank, or a valid entry with a source')
    t.ok(p.items.length > 0, 'has entries')
    t.equal(p.lines.at(-1), '', 'ends with a newline')
  })
}

t.test('no duplicate or redundant entries within or across the lists', async t => {
  const all = [...lists.values()].flatMap(p => p.items)
  const problems: string[] = []
  for (const a of all) {
    for (const b of all) {
      if (a === b || !matches(b, a.name)) continue
      if (a.kind === 'domain' && b.kind === 'exact') continue      // b is narrower than a
      problems.push(`${a.file}:${a.line} ${a.text} is already covered by ${b.file}:${b.line} ${b.text}`)
    }
  }
  t.same(problems, [])
})

t.test('ngrok.txt covers ngrok as it is today', async t => {
  const items = get('ngrok.txt').items
  const must = [
    // agent control plane, current and legacy
    'connect.ngrok-agent.com', 'connect.eu.ngrok-agent.com', 'connect.us-cal-1.ngrok-agent.com',
    'connect.eu-lon-1.ngrok-agent.com', 'crl.ngrok-agent.com', 'update.ngrok-agent.com', 'ngrok-agent.com',
    'tunnel.ngrok.com', ...['us', 'eu', 'ap', 'au', 'sa', 'jp', 'in'].map(r => `tunnel.${r}.ngrok.com`),
    ...['us', 'eu', 'ap', 'au', 'sa', 'jp', 'in'].map(r => `connect.${r}.ngrok-agent.com`),
    'ngrokd.ngrok.com', 'crl.ngrok.com',
    // SNI of legacy agents dialing a fallback IP: `tunnel.<region>.ngrok` reversed, + `.com`
    'korgn.lennut.com', ...['us', 'eu', 'ap', 'au', 'sa', 'jp', 'in'].map(r => `${`tunnel.${r}.ngrok`.split('').reverse().join('')}.com`),
    // public endpoints
    'ngrok.io', 'abc.ngrok.io', '0.tcp.ngrok.io', '4.tcp.eu.ngrok.io', 'x.eu.ngrok.io',
    'ngrok.app', 'x.ngrok.app', 'x.ngrok.dev', 'x.ngrok.pizza', 'x.ngrok.pro',
    'ngrok-free.app', 'herring-sharing-precisely.ngrok-free.dev', 'x.ngrok-free.pizza',
    // custom domains, download and update
    'a.b.ngrok-cname.com', 'x.acme-challenge.ngrok-dns.com',
    'equinox.io', 'bin.equinox.io', 'dl.equinox.io', 'update.equinox.io',
    'download.ngrok.com', 'ngrok-agent.s3.amazonaws.com',
  ]
  for (const n of must) t.ok(covered(items, n), `${n} is blocked`)
  const mustNot = [
    'ngrok.com', 'www.ngrok.com', 'dashboard.ngrok.com', 'api.ngrok.com', 'idp.ngrok.com', 'golang.ngrok.com',
    'myngrok.io', 'ngrok.io.example.com', 'notngrok-agent.com', 's3.amazonaws.com', 'amazonaws.com',
    'dns.ngrok.com.s3.amazonaws.com', 'dns.google', 'lennut.com', 'korgn.us.lennut.com',
  ]
  for (const n of mustNot) t.notOk(covered(items, n), `${n} is not listed (policy choice or collateral)`)
})

t.test('tunnels.txt covers the other services without collateral', async t => {
  const items = get('tunnels.txt').items
  const must = [
    'x.trycloudflare.com', 'api.trycloudflare.com', '_v2-origintunneld._tcp.argotunnel.com',
    'region1.v2.argotunnel.com', 'protocol-v2.argotunnel.com', 'update.argotunnel.com', 'quic.cftunnel.com',
    'h2.cftunnel.com', 'uuid.cfargotunnel.com', 'localtunnel.me', 'x.loca.lt', 'serveo.net',
    'x.serveousercontent.com', 'localhost.run', 'cd.localhost.run', 'x.lhr.life', 'x.lhr.rocks',
    'a.pinggy.io', 'x.a.free.pinggy.link', 'bore.pub', 'api.playit.gg', 'x.gl.at.ply.gg', 'x.at.playit.plus',
    'api-v2.zrok.io', 'x.share.zrok.io', 'myzrok.io', 'x.pagekite.me', 'frontends.b5p.us', 'up.pagekite.net',
    'x.loclx.io', 'localxpose.io', 'get.telebit.io', 'wormhole.tunnelto.dev', 'eu-1.sharedwithexpose.com',
    'expose.dev', 'service.tunnelmole.com', 'x.tunnelmole.net', 'x.localto.net', 'localtonet.com',
    'portmap.io', 'x.portmap.host', 'btunnel.co.in', 'srv.us', 'packetriot.net', 'pktriot.net', 'tmate.io',
  ]
  for (const n of must) t.ok(covered(items, n), `${n} is listed`)
  const mustNot = [
    'ts.net', 'x.tailnet.ts.net', 'tailscale.com', 'controlplane.tailscale.com', 'devtunnels.ms',
    'global.rel.tunnels.api.visualstudio.com', 'visualstudio.com', 'vscode.dev', 'cloudflare.com',
    'api.cloudflare.com', 'cloudflare-dns.com', 'one.one.one.one', 's3.amazonaws.com', 'github.com',
    'ngrok.io', 'ngrok-agent.com',
  ]
  for (const n of mustNot) t.notOk(covered(items, n), `${n} is not in tunnels.txt`)
})

t.test('tunnels-broad.txt holds the high-collateral services, and nothing wider', async t => {
  const items = get('tunnels-broad.txt').items
  for (const n of ['x.tailnet.ts.net', 'controlplane.tailscale.com', 'log.tailscale.io', 'a-8080.usw2.devtunnels.ms',
    'global.rel.tunnels.api.visualstudio.com', 'vscode.dev']) t.ok(covered(items, n), `${n} is listed`)
  for (const n of ['visualstudio.com', 'marketplace.visualstudio.com', 'insiders.vscode.dev', 'microsoft.com',
    'github.com', 'code.visualstudio.com']) t.notOk(covered(items, n), `${n} is not listed`)
})

t.test('no list entry is a shared platform or public suffix', async t => {
  const tooBroad = ['com', 'net', 'io', 'dev', 'app', 'amazonaws.com', 's3.amazonaws.com', 'cloudflare.com',
    'visualstudio.com', 'microsoft.com', 'github.com', 'google.com', 'co.in']
  for (const it of [...lists.values()].flatMap(p => p.items)) {
    t.notOk(tooBroad.some(b => it.name === b), `${it.file}:${it.line} ${it.text}`)
  }
})
