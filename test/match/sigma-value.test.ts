import t from 'tap'
import { convertSigmaValue } from '../../src/match/formats/sigma-value.js'

const conv = (mods: string[], v: unknown) => convertSigmaValue(mods, v)

t.test('plain values are exact names; plain *.x are subdomains', async t => {
  t.same(conv([], 'Tunnel.US.ngrok.com'), { ok: true, name: 'tunnel.us.ngrok.com', kind: 'exact' })
  t.same(conv([], '*.devtunnels.ms'), { ok: true, name: 'devtunnels.ms', kind: 'subdomains' })
})

t.test('endswith with a leading dot is subdomains only; *.x the same', async t => {
  t.same(conv(['endswith'], '.ngrok.io'), { ok: true, name: 'ngrok.io', kind: 'subdomains' })
  t.same(conv(['endswith'], '*.devtunnels.ms'), { ok: true, name: 'devtunnels.ms', kind: 'subdomains' })
  t.same(conv(['endswith'], '.top'), { ok: true, name: 'top', kind: 'subdomains' }, 'a TLD suffix is a whole label')
})

t.test('endswith without the dot is a partial label: loaded by whole labels, with a note', async t => {
  const r = conv(['endswith'], 'ngrok.com')
  t.match(r, { ok: true, name: 'ngrok.com', kind: 'domain', note: /also matches names such as "xngrok\.com" \(a partial label\)/ })
  t.match(conv([], '*ngrok.com'), { ok: true, kind: 'domain', note: /partial label/ })
})

t.test('contains of a whole name is the domain; with a leading dot its subdomains', async t => {
  // with a note: Sigma's substring matches more than whole labels do
  t.same(conv(['contains'], 'tunnel.us.ngrok.com'), { ok: true, name: 'tunnel.us.ngrok.com', kind: 'domain',
    note: '"tunnel.us.ngrok.com" (contains, a substring) also matches names such as "xtunnel.us.ngrok.com" and "tunnel.us.ngrok.com.example"; loaded as tunnel.us.ngrok.com and its subdomains, by whole labels only' })
  t.same(conv(['contains'], '.connect.ngrok-agent.com'), { ok: true, name: 'connect.ngrok-agent.com', kind: 'subdomains',
    note: '".connect.ngrok-agent.com" (contains, a substring) also matches names such as "a.connect.ngrok-agent.com.example"; loaded as the subdomains of connect.ngrok-agent.com, by whole labels only' })
  t.match(conv(['contains'], '*tunnel.ngrok.com*'), { ok: true, name: 'tunnel.ngrok.com', kind: 'domain', note: /also matches names such as "xtunnel\.ngrok\.com"/ })
})

t.test('an address is no name: refused, plain, endswith or contains (the rule meant the address)', async t => {
  for (const [mods, v] of [[[], '10.0.0.1'], [['contains'], '.192.144.34.42'], [['endswith'], '51.255.19.179'], [[], '2001:db8::1']] as const) {
    t.match(conv([...mods], v), { ok: false, reason: /is an address, not a name: tunnelguard decides names \(block the address at the firewall\)/ }, `${mods.join('|')} ${v}`)
  }
})

t.test('what cannot be a suffix entry is refused with the reason', async t => {
  const reasons: [string[], unknown, RegExp][] = [
    [['re'], '.*\\.ngrok\\.io', /regular expression/],
    [['startswith'], 'tunnel.', /prefix match/],
    [['contains', 'all'], 'ngrok.io', /\|all needs every value/],
    [['base64'], 'ngrok.io', /modifier \|base64 is not supported/],
    [['endswith', 'windash'], 'ngrok.io', /modifier \|endswith\|windash is not supported/],
    [[], 'ngrok.*', /trailing \* makes it a prefix match/],
    [['contains'], '.*.api.netreo.com', /wildcard inside/],
    [[], 'ngrok?.io', /wildcard inside/],
    [[], 'C:\\Users\\x', /escape sequences/],
    [['contains'], 'ngrok', /fragment/],
    [['contains'], '.top', /fragment/],
    [['contains'], 'tunnel.', /fragment/],
    [['contains'], '-agent.com', /fragment/],
    [['endswith'], 'grok', /fragment/],
    [['endswith'], 'ghostbin.co/', /not a whole domain name \(character "\/" not allowed/],
    [['endswith'], '.', /not a whole domain name \(empty name\)/],
    [[], null, /null is not a host name/],
    [[], 42, /number is not a host name/],
  ]
  for (const [mods, v, re] of reasons) t.match(conv(mods, v), { ok: false, reason: re }, `${mods.join('|')} ${String(v)}`)
})
