import t from 'tap'
import { createPolicy } from '../../src/policy/decide.js'
import { Groups } from '../../src/policy/groups.js'
import { simpleMatcher, testEntries } from '../fixtures/snapshot.js'

const lists = {
  ngrok: { action: 'sinkhole' as const, patterns: ['ngrok.io', '=tunnel.ngrok.com', '*.ngrok-free.app', '@@ok.ngrok.io'] },
  tunnels: { action: 'alert' as const, patterns: ['trycloudflare.com', 'ngrok.io'] },
  hard: { action: 'block' as const, patterns: ['evil.ngrok.io'] },
}
const policy = createPolicy({
  matcher: simpleMatcher(testEntries(lists)),
  listActions: { ngrok: 'sinkhole', tunnels: 'alert', hard: 'block' },
  groups: [
    { name: 'devops', clients: ['10.20.0.0/16', '2001:db8::/32'], actions: { ngrok: 'alert', hard: 'off' } },
    { name: 'lab', clients: ['10.0.0.0/8'], actions: { tunnels: 'block' } },
  ],
})

t.test('unlisted names pass; whole labels only', async t => {
  for (const n of ['myngrok.io', 'ngrok.io.example.com', 'example.com', 'ngrok-free.app']) {
    const d = policy.decide('127.0.0.1', n, 'qname')
    t.equal(d.action, 'pass', `${n} passes`)
    t.equal(d.reason, 'not listed')
  }
  t.equal(policy.decide('127.0.0.1', 'tunnel.ngrok.com', 'qname').action, 'sinkhole', 'exact')
  t.equal(policy.decide('127.0.0.1', 'x.tunnel.ngrok.com', 'qname').action, 'pass', 'exact does not cover subdomains')
  t.equal(policy.decide('127.0.0.1', 'a.ngrok-free.app', 'qname').action, 'sinkhole', 'subdomains only')
})

t.test('precedence: allow wins; otherwise block > sinkhole > alert', async t => {
  const d = policy.decide('127.0.0.1', 'x.ngrok.io', 'qname')
  t.equal(d.action, 'sinkhole', 'sinkhole (ngrok) beats alert (tunnels)')
  t.equal(d.list, 'ngrok')
  t.equal(d.entry!.pattern, 'ngrok.io')
  t.match(d.reason, /sinkhole: x\.ngrok\.io matches ngrok\.io in list ngrok \(ngrok\.txt:1\); action from list ngrok/)
  t.equal(policy.decide('127.0.0.1', 'a.evil.ngrok.io', 'qname').action, 'block', 'block beats sinkhole')
  const a = policy.decide('127.0.0.1', 'ok.ngrok.io', 'qname')
  t.equal(a.action, 'allow', 'allow exception wins over every block')
  t.match(a.reason, /allowed by @@ok\.ngrok\.io in list ngrok/)
  t.equal(policy.decide('127.0.0.1', 'Sub.OK.ngrok.io.', 'sni').action, 'allow', 'normalized before matching')
})

t.test('groups: first match wins, per-list overrides, off, IPv6 and mapped clients', async t => {
  const d = policy.decide('10.20.1.1', 'x.ngrok.io', 'connect')
  t.equal(d.group, 'devops')
  t.equal(d.action, 'alert', 'devops alerts on ngrok')
  t.match(d.reason, /action from group devops/)
  t.equal(d.where, 'connect')
  t.equal(policy.decide('10.20.1.1', 'evil.ngrok.io', 'qname').action, 'alert', 'hard is off for devops; ngrok alert remains')
  t.equal(policy.decide('::ffff:10.20.3.4', 'x.ngrok.io', 'qname').group, 'devops', 'IPv4-mapped client')
  t.equal(policy.decide('2001:db8::7', 'x.ngrok.io', 'qname').group, 'devops')
  t.equal(policy.decide('10.9.9.9', 'a.trycloudflare.com', 'qname').action, 'block', 'lab blocks tunnels')
  t.equal(policy.decide('10.9.9.9', 'a.trycloudflare.com', 'qname').group, 'lab')
  t.equal(policy.decide('192.0.2.1', 'a.trycloudflare.com', 'qname').group, 'default')
  t.equal(policy.decide('not-an-ip', 'a.trycloudflare.com', 'qname').group, 'default')
  const seen = ['10.9.9.9', '10.9.9.9', '192.0.2.1', '10.20.1.1', '10.9.9.9', '192.0.2.1', '192.0.2.1', '10.20.1.1']
    .map(c => policy.decide(c, 'a.trycloudflare.com', 'qname').group)
  t.same(seen, ['lab', 'lab', 'default', 'devops', 'lab', 'default', 'default', 'devops'], 'clients in turn, each its own group every time')
  const off = policy.decide('10.20.1.1', 'solo.evil.ngrok.io', 'qname')
  t.equal(off.action, 'alert')
  const only = createPolicy({
    matcher: simpleMatcher(testEntries({ hard: { action: 'block', patterns: ['z.com'] } })),
    listActions: { hard: 'block' },
    groups: [{ name: 'g', clients: ['10.0.0.0/8'], actions: { hard: 'off' } }],
  }).decide('10.1.1.1', 'z.com', 'qname')
  t.equal(only.action, 'pass', 'a list that is off for the group does not act')
  t.match(only.reason, /list hard, but that list is off for group g/)
})

t.test('a name that is no host name: the proxy\'s hosts are blocked, fail closed; a DNS name is decided as a name under its longest host-name suffix', async t => {
  for (const where of ['connect', 'sni', 'host', 'url'] as const) {
    const d = policy.decide('127.0.0.1', 'a..b', where)
    t.same([d.action, d.unparseable, d.name], ['block', true, 'a..b'], where)
    t.match(d.reason, /^unparseable name \(empty label\): blocked, fail closed$/)
    t.equal(policy.decide('127.0.0.1', 'x'.repeat(64) + '.com', where).action, 'block')
  }
  const dns = (name: string, client = '127.0.0.1', where: 'qname' | 'cname' = 'qname') => policy.decide(client, name, where)
  // RFC 2317 classless reverse zones, DNS-SD instance names, a wildcard asked, a dot inside a label
  t.match(dns('10.0/25.0.0.127.in-addr.arpa'), { action: 'pass', unparseable: true, name: '10.0/25.0.0.127.in-addr.arpa',
    reason: 'not listed; not a host name (character "/" not allowed in a host name in "0/25"): decided as a name under 0.0.127.in-addr.arpa' })
  t.match(dns('office printer._ipp._tcp.example.com', '127.0.0.1', 'cname'), { action: 'pass', where: 'cname', reason: /in "office printer"\): decided as a name under _ipp\._tcp\.example\.com$/ })
  t.match(dns('*.example.com'), { action: 'pass', reason: /decided as a name under example\.com$/ })
  t.match(dns('a\\.b'), { action: 'pass', reason: /in "a\\\.b"\): decided as a name under the root$/ })
  t.match(dns('x'.repeat(64) + '.com'), { action: 'pass', reason: /^not listed; not a host name \(label longer than 63 characters in "x{64}"\): decided as a name under com$/ })
  // a listed suffix decides it, with its entry, list and group, as for any name under it
  t.match(dns('my printer.x.ngrok.io'), { action: 'sinkhole', list: 'ngrok', entry: { pattern: 'ngrok.io' }, unparseable: true, name: 'my printer.x.ngrok.io',
    reason: /^sinkhole: my printer\.x\.ngrok\.io matches ngrok\.io in list ngrok/ })
  t.match(dns('a b.evil.ngrok.io'), { action: 'block', list: 'hard' })
  t.match(dns('a b.evil.ngrok.io', '10.20.0.1'), { action: 'alert', group: 'devops' }, 'the client\'s group applies')
  t.match(dns('a b.ngrok-free.app'), { action: 'sinkhole' }, 'a *.S entry: the name is under S')
  t.match(dns('a b.tunnel.ngrok.com'), { action: 'pass' }, 'an =S entry: the name is not S itself')
  t.match(dns('a b.ok.ngrok.io'), { action: 'allow', entry: { pattern: '@@ok.ngrok.io' } }, 'an allow entry of the suffix')
  t.match(dns('a b.c.trycloudflare.com'), { action: 'alert', tail: / matches trycloudflare\.com in list tunnels/ })
  t.equal(dns('a b.c.trycloudflare.com').reason, `alert: a b.c.trycloudflare.com${dns('a b.c.trycloudflare.com').tail}`, 'reason is action, name and tail')
  // trailing dots: the root's, not an escaped one
  t.match(dns('a b.ngrok.io.'), { action: 'sinkhole' })
  t.match(dns('x\\.'), { action: 'pass', reason: /in "x\\\."\): decided as a name under the root$/ })
})

t.test('Sigma attribution is carried into the decision', async t => {
  const e = testEntries({ sig: { action: 'block', patterns: ['tunnel.jp.ngrok.com'] } }).map(x => ({ ...x, sigma: { id: 'id-1', title: 'T', author: 'A' } }))
  const p = createPolicy({ matcher: simpleMatcher(e), listActions: { sig: 'block' }, groups: [] })
  const d = p.decide('127.0.0.1', 'tunnel.jp.ngrok.com', 'qname')
  t.same(d.sigma, { id: 'id-1', title: 'T', author: 'A' })
  t.match(d.reason, /Sigma rule id-1 "T" by A/)
  t.equal(p.entries, 1)
})

t.test('Groups memoizes and stays bounded', async t => {
  const g = new Groups([{ name: 'a', clients: ['10.0.0.0/8'], actions: {} }])
  for (let i = 0; i < 70_000; i++) g.nameOf(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`)
  t.equal(g.nameOf('10.0.0.1'), 'a')
  t.equal(g.actionsOf('1.1.1.1').size, 0)
  t.throws(() => new Groups([{ name: 'x', clients: ['nope'], actions: {} }]), /group x: not a CIDR: nope/)
})
