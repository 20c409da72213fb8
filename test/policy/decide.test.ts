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

t.test('unparseable names are blocked, fail closed, with the reason', async t => {
  const d = policy.decide('127.0.0.1', 'a..b', 'qname')
  t.equal(d.action, 'block')
  t.equal(d.unparseable, true)
  t.match(d.reason, /unparseable name \(empty label\)/)
  t.equal(policy.decide('127.0.0.1', 'x'.repeat(64) + '.com', 'qname').action, 'block')
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
