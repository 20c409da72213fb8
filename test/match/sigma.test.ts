import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parseListText } from '../../src/match/load-lists.js'

const SIGMA = new URL('../../../shared/fixtures/sigma/', import.meta.url)
const read = (name: string) => readFileSync(new URL(name, SIGMA), 'utf8')
const rule = (name: string) => parseListText('sigma', name, read(name))
const yml = (text: string) => parseListText('s', 'r.yml', text)

t.test('net_connection_lnx_ngrok_tunnel.yml: tunnel.*.ngrok.com entries attributed to the rule', async t => {
  const r = rule('net_connection_lnx_ngrok_tunnel.yml')
  t.equal(r.warnings.length, 7, 'a note per value: contains matches more than whole labels')
  t.ok(r.warnings.every(w => /\(contains, a substring\) also matches names such as/.test(w.message)))
  t.same(r.entries.map(e => e.name), ['us', 'eu', 'ap', 'au', 'sa', 'jp', 'in'].map(x => `tunnel.${x}.ngrok.com`))
  const jp = r.entries.find(e => e.name === 'tunnel.jp.ngrok.com')!
  t.same(jp, {
    list: 'sigma', name: 'tunnel.jp.ngrok.com', kind: 'domain', allow: false,
    pattern: 'DestinationHostname|contains: tunnel.jp.ngrok.com',
    source: 'net_connection_lnx_ngrok_tunnel.yml:30',
    sigma: { id: '19bf6fdb-7721-4f3d-867f-53467f6a5db6', title: 'Communication To Ngrok Tunneling Service - Linux', author: 'Florian Roth (Nextron Systems)' },
  })
  t.equal(read('net_connection_lnx_ngrok_tunnel.yml').split('\n')[29]!.trim(), "- 'tunnel.jp.ngrok.com'", 'the source line is the value line')
})

t.test('net_connection_win_domain_ngrok.yml: endswith .x is subdomains only', async t => {
  const r = rule('net_connection_win_domain_ngrok.yml')
  t.same(r.warnings, [])
  t.same(r.entries.map(e => `${e.kind}:${e.name}`),
    ['ngrok-free.app', 'ngrok-free.dev', 'ngrok.app', 'ngrok.dev', 'ngrok.io'].map(n => `subdomains:${n}`))
  t.equal(r.entries[0]!.sigma!.id, '18249279-932f-45e2-b37a-8925f2597670')
})

t.test('lolrmm ngrok rule: endswith without a dot loads by whole labels and says what it does not cover', async t => {
  const r = rule('lolrmm/ngrok_network_sigma.yml')
  t.same(r.entries.map(e => `${e.kind}:${e.name}`).slice(0, 2), ['domain:connect.ngrok-agent.com', 'domain:connect.us.ngrok-agent.com'])
  t.equal(r.entries.length, 9)
  t.equal(r.warnings.length, 9)
  t.match(r.warnings[8], { source: /^lolrmm\/ngrok_network_sigma\.yml:\d+$/, message: /Sigma rule [0-9a-f-]+: DestinationHostname\|endswith: 'ngrok\.com': .*"xngrok\.com" \(a partial label\)/ })
})

t.test('lolrmm dev tunnel rule: a * inside endswith is a wildcard, not a character', async t => {
  const r = rule('lolrmm/visual_studio_dev_tunnel_network_sigma.yml')
  t.same(r.entries.map(e => `${e.kind}:${e.name}`),
    ['domain:global.rel.tunnels.api.visualstudio.com', 'subdomains:rel.tunnels.api.visualstudio.com', 'subdomains:devtunnels.ms'])
})

t.test('lolrmm rmm rule: contains .x is subdomains; .*. wildcards are warnings naming rule and value', async t => {
  const r = rule('lolrmm/rmm_domains_dns_queries.yml')
  t.ok(r.entries.length > 300)
  t.ok(r.entries.some(e => e.name === 'connect.ngrok-agent.com' && e.kind === 'subdomains'))
  const w = r.warnings.find(x => x.message.includes('.*.api.netreo.com'))!
  t.match(w, { source: 'lolrmm/rmm_domains_dns_queries.yml:21', message: /^Sigma rule 9fa68c28-79b2-4ab5-af95-0c7b2f706c63: query\|contains: '\.\*\.api\.netreo\.com' not converted: a wildcard/ })
})

t.test('remote access rule: AND of two host conditions and negated filters are not converted', async t => {
  const r = rule('dns_query_win_remote_access_software_domains_non_browsers.yml')
  t.ok(r.entries.some(e => e.name === 'tmate.io'))
  t.notOk(r.entries.some(e => e.name === 'rustdesk.com'))
  t.ok(r.warnings.some(w => /QueryName\|endswith: '\.rustdesk\.com' not converted: it is combined \(AND\)/.test(w.message)))
  t.ok(r.warnings.some(w => /QueryName\|startswith: 'rs-' not converted/.test(w.message)))
  const dead = rule('net_connection_win_domain_dead_drop_resolvers.yml')
  t.ok(dead.warnings.some(w => /DestinationHostname\|endswith: 'facebook\.com' not converted: selection filter_main_whatsapp is negated/.test(w.message)))
  t.ok(dead.warnings.some(w => /'ghostbin\.co\/' not converted: .*character "\/"/.test(w.message)))
  t.notOk(dead.entries.some(e => e.name === 'ghostbin.co'))
})

t.test('conditions on fields tunnelguard does not see (the program, the user) are named, once per selection or rule', async t => {
  const r = rule('dns_query_win_remote_access_software_domains_non_browsers.yml')
  const filters = r.warnings.filter(w => /filters .* are not applied/.test(w.message))
  t.equal(filters.length, 1, 'one warning for the rule, not one per filter')
  t.match(filters[0], { source: /:\d+$/, message: /^Sigma rule 4d07b1f4-cb00-4470-b9f8-b0191d48ff52: the condition's filters filter_optional_chrome, filter_optional_firefox, filter_optional_ie and 18 more are not applied \(they test fields tunnelguard does not see, such as the program\): its names are decided for every client and program$/ })
  t.same(rule('net_connection_win_domain_ngrok.yml').warnings, [], "Initiated: 'true' is an outbound connection: nothing to say")
  const both = yml([
    'id: r9', 'detection:',
    '  sel:',
    '    Image|endswith: \\ngrok.exe',
    '    Initiated: "false"',
    '    QueryName: a.example',
    '  filter_user:',
    '    User: SYSTEM',
    '  filter_two:',
    '    CommandLine|contains: x',
    '  condition: sel and not filter_user and not filter_two',
  ].join('\n'))
  t.same(both.entries.map(e => e.name), ['a.example'], 'the names are still loaded')
  t.match(both.warnings, [
    { source: 'r.yml:4', message: /^Sigma rule r9: selection sel also requires Image\|endswith, Initiated, which tunnelguard does not see: its names are decided for every client and program$/ },
    { source: 'r.yml:3', message: /^Sigma rule r9: the condition's filters filter_user, filter_two are not applied/ },
  ])
  t.equal(both.warnings.length, 2)
  const unused = yml('id: r10\ndetection:\n  sel:\n    Image: x\n    QueryName: a.example\n  other:\n    User: y\n  condition: sel and other\n')
  t.match(unused.warnings, [{ message: /selection sel also requires Image, which/ }], 'a positive selection without a host field is not a filter')
  t.equal(unused.warnings.length, 1)
  const onlyFilters = yml('id: r11\ndetection:\n  sel:\n    Image: x\n  filter:\n    User: y\n  condition: sel and not filter\n')
  t.equal(onlyFilters.warnings.length, 1, 'no host values: the one "nothing loaded" warning')
  t.match(onlyFilters.warnings[0], { message: /has no DestinationHostname/ })
  const unusedHost = yml('id: r12\ndetection:\n  sel:\n    QueryName: a.example\n  other:\n    Image: x\n    QueryName: b.example\n  filter:\n    User: y\n  condition: sel and not filter\n')
  t.notOk(unusedHost.warnings.some(w => /also requires Image/.test(w.message)), 'a selection not used says only that')
})

t.test('a rule without host-name selectors loads nothing and says so', async t => {
  const r = rule('proc_creation_win_pua_ngrok.yml')
  t.same(r.entries, [])
  t.match(r.warnings, [{ message: /Sigma rule ee37eb7c-a4e7-4cd5-8fa4-efa27f1c3f31 \(".*"\) has no DestinationHostname, QueryName or query selector/ }])
})

t.test('every fixture rule parses without an exception; what is not converted is a warning', async t => {
  const files = [
    ...readdirSync(SIGMA).filter(f => f.endsWith('.yml')),
    ...readdirSync(new URL('lolrmm/', SIGMA)).filter(f => f.endsWith('.yml')).map(f => `lolrmm/${f}`),
  ]
  t.ok(files.length >= 30, fileURLToPath(SIGMA))
  for (const f of files) {
    const r = rule(f)
    t.ok(r.entries.length + r.warnings.length > 0, `${f}: entries or warnings`)
    for (const e of r.entries) t.ok(e.sigma && e.sigma.id && e.sigma.author, `${f}: ${e.name} attributed`)
    for (const w of r.warnings) t.match(w.source, new RegExp(`^${f.replace(/\./g, '\\.')}:\\d+$`))
  }
})

t.test('odd files: invalid YAML, not a rule, no detection, no condition, unused selections', async t => {
  t.match(yml('title: [unclosed\n').warnings, [{ source: /^r\.yml:\d+$/, message: /not valid YAML/ }])
  t.match(yml('- a\n- b\n').warnings, [{ source: 'r.yml:1', message: /not a Sigma rule/ }])
  t.match(yml('').warnings, [{ source: 'r.yml:1', message: /empty file: not a Sigma rule/ }])
  t.match(yml('# only a comment\n').warnings, [{ source: 'r.yml:1', message: /not a Sigma rule/ }])
  t.match(yml('---\n').warnings, [{ source: 'r.yml:1', message: /not a Sigma rule: expected a mapping/ }])
  t.match(yml('title: x\nid: 1\n').warnings, [{ message: /Sigma rule 1: no detection section/ }])
  const noCond = yml('id: r2\ndetection:\n  sel:\n    QueryName: a.example\n')
  t.same(noCond.entries.map(e => e.name), ['a.example'])
  t.match(noCond.warnings, [{ source: 'r.yml:3', message: /Sigma rule r2: no condition; reading every selection as a match/ }])
  const unused = yml('id: r3\ndetection:\n  sel:\n    QueryName: a.example\n  other:\n    QueryName: b.example\n  condition: sel\n')
  t.same(unused.entries.map(e => e.name), ['a.example'])
  t.match(unused.warnings, [{ source: 'r.yml:6', message: /'b\.example' not converted: selection other is not used by the condition/ }])
})

t.test('selection shapes: lists of maps, keyword lists, null and non-text values, multiple documents', async t => {
  const r = yml([
    'title: T', 'id: r4', 'author: A', 'detection:',
    '  sel_list:',
    '    - QueryName|endswith: .one.example',
    '    - DestinationHostname: two.example',
    '  keywords:',
    '    - ngrok',
    '  sel_null:',
    '    query:',
    '  sel_num:',
    '    query: 42',
    '  sel_nested:',
    '    query:',
    '      - {a: b}',
    '  sel_flow: {query}',
    '  condition: 1 of sel_* or keywords',
    'timeframe: 1h',
    '---',
    'id: r5', 'author: B', 'title:', 'detection:', '  sel:', '    Query|contains: three.example',
    '  ? [odd, key]', '  : x', '  condition: [sel, "not other"]',
  ].join('\n'))
  t.same(r.entries.map(e => `${e.kind}:${e.name}:${e.sigma!.id}:${e.source}`),
    ['subdomains:one.example:r4:r.yml:6', 'exact:two.example:r4:r.yml:7', 'domain:three.example:r5:r.yml:26'])
  t.same(r.entries[2]!.sigma, { id: 'r5', title: '', author: 'B' })
  t.match(r.warnings, [
    { source: 'r.yml:11', message: /query: 'null' not converted: null is not a host name/ },
    { source: 'r.yml:13', message: /query: '42' not converted: number is not a host name/ },
    { source: 'r.yml:16', message: /not converted: object is not a host name/ },
    { source: 'r.yml:17', message: /query: 'null' not converted: null is not a host name/ },
  ])
  t.notOk(r.warnings.some(w => /condition/.test(w.message)), 'a list of conditions is read')
})
