import t from 'tap'
import { eventKind, eventType, toEcs } from '../../src/observe/ecs.js'
import { ecsBody } from '../../src/observe/ecs-body.js'
import type { DecisionEvent } from '../../src/observe/types.js'
import { makeSnapshot, simpleMatcher, testEntries } from '../fixtures/snapshot.js'

const lists = { ngrok: { action: 'sinkhole' as const, patterns: ['ngrok.io', 'ngrok-free.app'] } }
const entries = testEntries(lists)
entries[1] = { ...entries[1]!, sigma: { id: 'f0e7c3d8', title: 'Ngrok tunnel', author: 'Florian Roth' } }
const snap = makeSnapshot({ lists, matcher: simpleMatcher(entries) })

t.test('event.kind', async t => {
  const actions = ['block', 'sinkhole', 'alert', 'allow', 'pass'] as const
  t.same(actions.map(action => eventKind({ action })), ['alert', 'alert', 'alert', 'event', 'event'])
  // a refusal by the proxy's own rules is an event, unless a list matched the name too
  t.equal(eventKind({ action: 'block', policy: 'proxy.connectPorts' }), 'event')
  t.equal(eventKind({ action: 'block', policy: 'proxy.connectPorts', entry: entries[0] }), 'alert')
})

t.test('event.category and event.type: ECS categorization, what the client got', async t => {
  const actions = ['block', 'sinkhole', 'alert', 'allow', 'pass'] as const
  t.same(actions.map(a => eventType('dns.query', a)), [
    ['protocol', 'denied'], ['protocol', 'denied'], ['protocol', 'allowed'], ['protocol', 'allowed'], ['protocol', 'allowed']])
  for (const m of ['proxy.connect', 'proxy.http'] as const) {
    t.same(actions.map(a => eventType(m, a)[1]), ['denied', 'denied', 'allowed', 'allowed', 'allowed'], m)
    t.equal(eventType(m, 'pass')[0], 'connection')
  }
  // a capture is closed whatever the decision on the name it carried
  t.same(actions.map(a => eventType('sinkhole.capture', a)), actions.map(() => ['connection', 'denied']))
})

t.test('a refusal by the proxy\'s rules: tunnelguard.policy, event.kind event unless a list matched', async t => {
  const decision = { action: 'block' as const, group: 'default', where: 'connect' as const, name: '10.1.2.3', reason: 'private', policy: 'proxy.allowDestinations' }
  const ev: DecisionEvent = { message: 'proxy.connect', decision, client: { ip: '10.0.0.5', port: 1 }, transport: 'tcp', durationNs: 1, destination: { domain: '10.1.2.3', port: 443 } }
  const out = toEcs(ev)
  t.same(out.event, { action: 'block', kind: 'event', category: ['network'], type: ['connection', 'denied'], duration: 1 })
  t.equal((out.tunnelguard as { policy: string }).policy, 'proxy.allowDestinations')
  t.equal(`{${ecsBody(ev)}`, JSON.stringify(out))
  // port 0: a client named by X-Forwarded-For, whose port is not known: no client.port
  const forwarded = { ...ev, client: { ip: '10.0.0.9', port: 0 } }
  t.same(toEcs(forwarded).client, { ip: '10.0.0.9' })
  t.equal(`{${ecsBody(forwarded)}`, JSON.stringify(toEcs(forwarded)))
  const listed = toEcs({ ...ev, decision: { ...decision, entry: entries[0], list: 'ngrok' } })
  t.same(listed.event, { action: 'block', kind: 'alert', category: ['network'], type: ['connection', 'denied'], duration: 1 })
})

t.test('a DNS decision on the question', async t => {
  const ev: DecisionEvent = {
    message: 'dns.query', decision: snap.policy.decide('10.0.0.5', 'Tunnel.NGROK.io.', 'qname'),
    client: { ip: '10.0.0.5', port: 53001 }, transport: 'udp', durationNs: 12345,
    dns: { name: 'tunnel.ngrok.io', type: 'A', rcode: 'NOERROR' },
  }
  t.same(toEcs(ev), {
    message: 'dns.query',
    event: { action: 'sinkhole', kind: 'alert', category: ['network'], type: ['protocol', 'denied'], duration: 12345 },
    client: { ip: '10.0.0.5', port: 53001 },
    network: { transport: 'udp' },
    dns: { question: { name: 'tunnel.ngrok.io', type: 'A' }, response_code: 'NOERROR' },
    rule: { name: 'ngrok.io', ruleset: 'ngrok' },
    tunnelguard: { group: 'default', matched_on: 'qname', reason: ev.decision.reason },
    related: { hosts: ['tunnel.ngrok.io'], ip: ['10.0.0.5'] },
  })
  t.equal(`{${ecsBody(ev)}`, JSON.stringify(toEcs(ev)), 'the bytes written directly say the same')
})

t.test('related.hosts: every name the line is about, so that one SIEM rule on it finds a match whichever field holds the name', async t => {
  const base = { client: { ip: '10.0.0.9', port: 1 }, durationNs: 1 }
  const hostsOf = (ev: DecisionEvent) => {
    const out = toEcs(ev)
    if (!ev.extra) t.equal(`{${ecsBody(ev)}`, JSON.stringify(out), 'the bytes written directly say the same')
    return (out.related as { hosts?: string[] } | undefined)?.hosts
  }
  // a CNAME (or HTTPS/SVCB target) match: the target is in no other ECS field
  t.same(hostsOf({ ...base, message: 'dns.query', transport: 'udp', decision: snap.policy.decide('10.0.0.9', 'x.ngrok.io', 'cname'),
    dns: { name: 'c1.test', type: 'A', rcode: 'NXDOMAIN' } }), ['c1.test', 'x.ngrok.io'])
  t.same(hostsOf({ ...base, message: 'dns.query', transport: 'udp', decision: snap.policy.decide('10.0.0.9', 'x.ngrok.io', 'cname'),
    dns: { name: 'svc.test', type: 'HTTPS', rcode: 'NOERROR' } }), ['svc.test', 'x.ngrok.io'], 'an HTTPS target')
  // a Host header on plain HTTP: only in tunnelguard.host_header before
  t.same(hostsOf({ ...base, message: 'proxy.http', transport: 'tcp', decision: snap.policy.decide('10.0.0.9', 'h.ngrok.io', 'host'),
    destination: { domain: 'Innocent.Example', port: 80 }, urlDomain: 'Innocent.Example',
    extra: { 'http.request.method': 'GET', 'tunnelguard.mismatch': true, 'tunnelguard.host_header': 'H.Ngrok.IO' } }), ['innocent.example', 'h.ngrok.io'],
  'lowercased, each once')
  // CONNECT host, SNI and an inner CONNECT of a request in the tunnel
  t.same(hostsOf({ ...base, message: 'proxy.connect', transport: 'tcp', decision: snap.policy.decide('10.0.0.9', 'i.ngrok.io', 'connect'),
    destination: { domain: 'a.example', port: 443 }, sni: 'b.example', extra: { 'tunnelguard.sni_status': 'http', 'tunnelguard.inner_connect': 'i.ngrok.io' } }),
  ['a.example', 'b.example', 'i.ngrok.io'])
  t.same(hostsOf({ ...base, message: 'proxy.connect', transport: 'tcp', decision: snap.policy.decide('10.0.0.9', 's.ngrok.io', 'sni'),
    destination: { ip: '192.0.2.7', port: 443 }, sni: 's.ngrok.io' }), ['s.ngrok.io'], 'a CONNECT to an address and its SNI: the address in related.ip')
  t.same(hostsOf({ ...base, message: 'sinkhole.capture', transport: 'tcp', decision: snap.policy.decide('10.0.0.9', 'm.ngrok.io', 'host'),
    urlDomain: 'm.ngrok.io', destination: { port: 80 } }), ['m.ngrok.io'])
  t.equal(hostsOf({ ...base, message: 'dns.query', transport: 'udp', decision: { ...snap.policy.decide('10.0.0.9', 'example.com', 'qname'), name: '' },
    dns: { name: '', type: 'NS', rcode: 'NOERROR' } }), undefined, 'the root asked: no host')
})

t.test('a CNAME target matched, with a Sigma rule, upstream and cache', async t => {
  const ev: DecisionEvent = {
    message: 'dns.query', decision: snap.policy.decide('10.0.0.6', 'x.ngrok-free.app', 'cname'),
    client: { ip: '10.0.0.6', port: 5300 }, transport: 'tcp', durationNs: 1,
    dns: { name: 'innocent.example', type: 'AAAA', rcode: 'NOERROR', upstream: 'udp://127.0.0.1:5399', cacheHit: false },
  }
  const out = toEcs(ev)
  t.same(out.rule, { name: 'ngrok-free.app', ruleset: 'ngrok', id: 'f0e7c3d8', author: 'Florian Roth', description: 'Ngrok tunnel' })
  t.match(out.tunnelguard, { matched_on: 'cname', matched_name: 'x.ngrok-free.app', upstream: 'udp://127.0.0.1:5399', cache_hit: false })
})

t.test('a proxy decision on the SNI behind an innocent CONNECT host', async t => {
  const ev: DecisionEvent = {
    message: 'proxy.connect', decision: snap.policy.decide('10.0.0.7', 'abc.ngrok.io', 'sni'),
    client: { ip: '10.0.0.7', port: 40000 }, transport: 'tcp', durationNs: 5,
    destination: { domain: 'example.com', ip: '192.0.2.1', port: 443 }, sni: 'abc.ngrok.io',
  }
  const out = toEcs(ev)
  t.same(out.destination, { domain: 'example.com', ip: '192.0.2.1', port: 443 })
  t.same(out.tls, { client: { server_name: 'abc.ngrok.io' } })
  t.equal(out.dns, undefined)
  t.match(out.tunnelguard, { matched_on: 'sni', matched_name: 'abc.ngrok.io' })
})

t.test('a plain HTTP pass: no rule, no matched_name, extra merged', async t => {
  const ev: DecisionEvent = {
    message: 'proxy.http', decision: snap.policy.decide('10.0.0.8', 'example.org', 'url'),
    client: { ip: '10.0.0.8', port: 1 }, transport: 'tcp', durationNs: 7,
    destination: {}, urlDomain: 'example.org',
    extra: { tunnelguard: { bytes: 10 }, http: { response: { status_code: 200 } }, network: 'replaced' },
  }
  const out = toEcs(ev)
  t.same(out.destination, {})
  t.same(out.url, { domain: 'example.org' })
  t.equal(out.rule, undefined)
  t.same(out.tunnelguard, { group: 'default', matched_on: 'url', reason: 'not listed', bytes: 10 })
  t.same(out.http, { response: { status_code: 200 } })
  t.equal(out.network, 'replaced')
  t.same(out.event, { action: 'pass', kind: 'event', category: ['network'], type: ['connection', 'allowed'], duration: 7 })
})

t.test('dotted extra keys are nested as the paths they name: one layout per line', async t => {
  const out = toEcs({
    message: 'proxy.connect', decision: snap.policy.decide('10.0.0.8', 'example.org', 'sni'),
    client: { ip: '10.0.0.8', port: 1 }, transport: 'tcp', durationNs: 7, sni: 'example.org',
    extra: { 'tunnelguard.sni_status': 'ok', 'tunnelguard.cnames': ['a.example'], 'error.message': 'x', 'tls.client.ja3': 'j', 'network.transport': 'tcp6', 'event.kind.x': 1 },
  })
  t.same(out.tunnelguard, { group: 'default', matched_on: 'sni', reason: 'not listed', sni_status: 'ok', cnames: ['a.example'] })
  t.same(out.error, { message: 'x' })
  t.same(out.tls, { client: { server_name: 'example.org', ja3: 'j' } })
  t.same(out.network, { transport: 'tcp6' }, 'a dotted key replaces the value at its path')
  t.same(out.event, { action: 'pass', kind: { x: 1 }, category: ['network'], type: ['connection', 'allowed'], duration: 7 }, 'a scalar on the path is replaced by the object the path needs')
  t.notOk(Object.keys(out).some(k => k.includes('.')))
})

t.test('an unparseable name, and a list without an entry', async t => {
  const bad = snap.policy.decide('10.0.0.9', 'bad..name', 'host')
  const out = toEcs({ message: 'proxy.http', decision: bad, client: { ip: '10.0.0.9', port: 2 }, transport: 'tcp', durationNs: 0 })
  t.match(out.tunnelguard, { unparseable: true, matched_name: 'bad..name' })
  t.equal(out.rule, undefined)
  const listOnly = { ...bad, unparseable: undefined, list: 'ngrok' }
  const o2 = toEcs({ message: 'proxy.http', decision: listOnly, client: { ip: '10.0.0.9', port: 2 }, transport: 'tcp', durationNs: 0, urlDomain: 'bad..name' })
  t.same(o2.rule, { ruleset: 'ngrok' })
  t.notOk('matched_name' in (o2.tunnelguard as object))
})

t.test('ecsBody writes the same text as JSON.stringify(toEcs(ev)), over generated events', async t => {
  let seed = 7
  // the high bits: the low bits of this generator repeat with a short period (the lowest alternates)
  const rnd = (n: number): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed >>> 16) % n }
  const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)]!
  // plain names, and text JSON must escape: quotes, backslashes, control characters, lone surrogates
  const texts = ['a.ngrok.io', 'ngrok-free.app', 'x"y.test', 'back\\slash', 'tab\there', 'nl\nx', '\u0000', '\ud800lone', 'ok\udc00', '😀.example', 'café.test', '']
  const maybe = <T>(v: T): T | undefined => (rnd(3) === 0 ? undefined : v)
  let checked = 0
  const differ: { i: number; got: string; want: string }[] = []
  const shared = { ...entries[0]!, pattern: 'shared.test' }    // an entry seen with several tails: the writer's per-entry bytes follow
  for (let i = 0; i < 3000; i++) {
    const name = pick(texts)
    const entry = rnd(2) === 0 ? undefined : rnd(3) === 0 ? shared : { ...entries[0]!, pattern: pick(texts) }
    const sigma = rnd(3) === 0 ? { id: pick(texts), title: pick(texts), author: pick(texts) } : undefined
    const action = pick(['block', 'sinkhole', 'alert', 'allow', 'pass'] as const)
    const decided = rnd(2) === 0 ? name : pick(texts)
    // a decision with a tail (its reason built from action, name and tail, as decide builds it) or with a reason of its own
    const tail = entry && rnd(2) === 0 ? pick(texts) : undefined
    const decision = {
      action, reason: tail === undefined ? pick(texts) : `${action}: ${decided}${tail}`, tail, group: pick(texts),
      name: decided, where: pick(['qname', 'cname', 'connect', 'sni', 'host'] as const),
      entry, list: rnd(3) === 0 ? undefined : pick(texts), sigma, unparseable: rnd(4) === 0 ? true : undefined,
      policy: rnd(4) === 0 ? pick(['proxy.connectPorts', 'proxy.allowDestinations']) : undefined,
    }
    const base = { message: pick(['dns.query', 'proxy.connect', 'proxy.http', 'sinkhole.capture'] as const), decision,
      client: { ip: pick(['10.0.0.5', '::1', 'fe80::1%eth0']), port: rnd(65536) }, transport: pick(['udp', 'tcp'] as const),
      durationNs: pick([0, 123456789, 1.5, NaN]) }
    const ev: { -readonly [K in keyof DecisionEvent]: DecisionEvent[K] } = rnd(2) === 0
      ? { ...base, dns: { name, type: pick(['A', 'AAAA', 'TYPE65']), class: rnd(3) === 0 ? pick(['CH', 'ANY', 'CLASS9']) : undefined, rcode: pick(['NOERROR', 'NXDOMAIN']), upstream: maybe('udp://127.0.0.1:53'), cacheHit: rnd(3) === 0 ? undefined : rnd(2) === 0 } }
      : { ...base,
          destination: rnd(3) === 0 ? undefined : { domain: maybe(name), ip: maybe(pick(['127.0.0.1', '2001:db8::1', name])), port: maybe(443) },
          sni: maybe(pick(texts)), urlDomain: maybe(pick(texts)) }
    if (rnd(2) === 0) Object.assign(ev, { outcome: pick(['success', 'failure'] as const) })
    if (`{${ecsBody(ev)}` !== JSON.stringify(toEcs(ev))) differ.push({ i, got: ecsBody(ev), want: JSON.stringify(toEcs(ev)) })
    const named = toEcs(ev)
    Object.assign(named.client as object, { hostname: pick(texts), mac: '52:54:00:12:34:56' })
    const withNames = ecsBody(ev, JSON.stringify(named.client))
    if (`{${withNames}` !== JSON.stringify(named)) differ.push({ i, got: withNames, want: JSON.stringify(named) })
    checked++
  }
  t.equal(checked, 3000)
  t.same(differ.slice(0, 3), [], `${differ.length} of 6000 texts differ`)
})

t.test('an address the client named (CONNECT 203.0.113.5:443, http://[2001:db8::1]/) is destination.ip, with no destination.domain', async t => {
  const base = { client: { ip: '10.0.0.9', port: 1 }, transport: 'tcp' as const, durationNs: 1 }
  const pass = (name: string, where: 'connect' | 'url') => ({ action: 'pass' as const, group: 'default', where, name, reason: 'an address, not a name' })
  const connect: DecisionEvent = { ...base, message: 'proxy.connect', decision: pass('203.0.113.5', 'connect'), destination: { ip: '203.0.113.5', port: 443 } }
  const v6: DecisionEvent = { ...base, message: 'proxy.http', decision: pass('2001:db8::1', 'url'), destination: { ip: '2001:db8::1', port: 80 }, urlDomain: '[2001:db8::1]' }
  const sni: DecisionEvent = { ...connect, decision: snap.policy.decide('10.0.0.9', 's.ngrok.io', 'sni'), sni: 's.ngrok.io' }
  for (const [ev, what] of [[connect, 'CONNECT to IPv4'], [v6, 'plain HTTP to IPv6'], [sni, 'CONNECT to an address with an SNI']] as const) {
    const out = toEcs(ev)
    t.notOk('domain' in (out.destination as object), `${what}: no destination.domain`)
    t.equal((out.destination as { ip: string }).ip, ev.destination!.ip, `${what}: the address in destination.ip`)
    t.equal(`{${ecsBody(ev)}`, JSON.stringify(out), `${what}: the bytes written directly say the same`)
  }
  // the address is the name asked: the decision on it has no matched_name; a decision on the SNI has
  t.notOk('matched_name' in (toEcs(connect).tunnelguard as object))
  t.notOk('matched_name' in (toEcs(v6).tunnelguard as object))
  t.equal((toEcs(sni).tunnelguard as { matched_name?: string }).matched_name, 's.ngrok.io')
  t.same(toEcs(v6).url, { domain: '[2001:db8::1]' }, 'url.domain as before: the literal in brackets')
  // the address is no host name: related.ip after the client's, canonical, once (url.domain's brackets are the same address)
  t.same(toEcs(connect).related, { ip: ['10.0.0.9', '203.0.113.5'] })
  t.same(toEcs(v6).related, { ip: ['10.0.0.9', '2001:db8::1'] })
  t.same(toEcs(sni).related, { hosts: ['s.ngrok.io'], ip: ['10.0.0.9', '203.0.113.5'] })
})

t.test('related.ip: the client\'s address, its peer\'s, every address literal seen where a name goes (CONNECT, URL, Host, SNI, inner CONNECT), canonical, not in related.hosts, and the address dialled', async t => {
  const base = { client: { ip: '10.0.0.9', port: 1 }, transport: 'tcp' as const, durationNs: 1 }
  const pass = (name: string, where: 'connect' | 'url' | 'host' | 'sni') => ({ action: 'pass' as const, group: 'default', where, name, reason: 'an address, not a name' })
  const related = (ev: DecisionEvent) => {
    const out = toEcs(ev)
    if (!ev.extra) t.equal(`{${ecsBody(ev)}`, JSON.stringify(out), 'the bytes written directly say the same')
    return out.related
  }
  // CONNECT 192.0.2.1:443 with no SNI
  t.same(related({ ...base, message: 'proxy.connect', decision: pass('192.0.2.1', 'connect'), destination: { ip: '192.0.2.1', port: 443 } }), { ip: ['10.0.0.9', '192.0.2.1'] })
  // http://[2001:DB8:0::1]/: url.domain as the client wrote it, in brackets; related.ip canonical
  t.same(related({ ...base, message: 'proxy.http', decision: pass('2001:db8::1', 'url'), destination: { ip: '2001:db8::1', port: 80 }, urlDomain: '[2001:DB8:0::1]' }),
    { ip: ['10.0.0.9', '2001:db8::1'] })
  // http://0x7f000001/ (an address as a URL parser reads it) and ::ffff:10.1.2.3 (IPv4-mapped): the canonical address
  t.same(related({ ...base, message: 'proxy.http', decision: pass('127.0.0.1', 'url'), destination: { ip: '127.0.0.1', port: 80 }, urlDomain: '0x7f000001' }),
    { ip: ['10.0.0.9', '127.0.0.1'] })
  t.same(related({ ...base, message: 'proxy.connect', decision: pass('10.1.2.3', 'connect'), destination: { ip: '10.1.2.3', port: 443 }, sni: '::FFFF:10.1.2.3' }),
    { ip: ['10.0.0.9', '10.1.2.3'] }, 'an SNI that is the same address: once')
  // a name's URL with a Host header that is an address, and the reverse
  t.same(related({ ...base, message: 'proxy.http', decision: pass('198.51.100.7', 'host'), destination: { domain: 'www.example', ip: '203.0.113.9', port: 80 },
    urlDomain: 'www.example', extra: { 'tunnelguard.mismatch': true, 'tunnelguard.host_header': '198.51.100.7' } }), { hosts: ['www.example'], ip: ['10.0.0.9', '198.51.100.7', '203.0.113.9'] },
  'the address dialled for a name (destination.ip) after those the client named')
  t.same(related({ ...base, message: 'proxy.http', decision: snap.policy.decide('10.0.0.9', 'h.ngrok.io', 'host'), destination: { ip: '192.0.2.5', port: 80 },
    urlDomain: '192.0.2.5', extra: { 'tunnelguard.mismatch': true, 'tunnelguard.host_header': 'H.ngrok.io' } }), { hosts: ['h.ngrok.io'], ip: ['10.0.0.9', '192.0.2.5'] })
  // an SNI that is an address, on a CONNECT to an address or to a name; an inner CONNECT to an address in a tunnel
  t.same(related({ ...base, message: 'proxy.connect', decision: pass('192.0.2.1', 'connect'), destination: { ip: '192.0.2.1', port: 443 }, sni: '192.0.2.44' }),
    { ip: ['10.0.0.9', '192.0.2.1', '192.0.2.44'] })
  t.same(related({ ...base, message: 'proxy.connect', decision: pass('192.0.2.44', 'sni'), destination: { domain: 'a.example', ip: '203.0.113.1', port: 443 }, sni: '192.0.2.44' }),
    { hosts: ['a.example'], ip: ['10.0.0.9', '192.0.2.44', '203.0.113.1'] })
  t.same(related({ ...base, message: 'proxy.connect', decision: pass('2001:db8::5', 'connect'), destination: { domain: 'a.example', ip: '203.0.113.1', port: 443 },
    extra: { 'tunnelguard.sni_status': 'http', 'tunnelguard.inner_connect': '2001:db8::5' } }), { hosts: ['a.example'], ip: ['10.0.0.9', '2001:db8::5', '203.0.113.1'] })
  // names that only look numeric stay names
  t.same(related({ ...base, message: 'proxy.connect', decision: snap.policy.decide('10.0.0.9', '1.2.3.4.5', 'connect'), destination: { domain: '1.2.3.4.5', port: 443 }, sni: '0x.example' }),
    { hosts: ['1.2.3.4.5', '0x.example'], ip: ['10.0.0.9'] })
  // a DNS question is a name whatever it reads like (DNS looks it up as labels)
  t.same(related({ ...base, transport: 'udp', message: 'dns.query', decision: snap.policy.decide('10.0.0.9', '192.0.2.1', 'qname'),
    dns: { name: '192.0.2.1', type: 'A', rcode: 'NXDOMAIN' } }), { hosts: ['192.0.2.1'], ip: ['10.0.0.9'] })
  t.same(related({ ...base, transport: 'udp', message: 'dns.query', decision: snap.policy.decide('10.0.0.9', '192.0.2.1', 'qname'),
    dns: { name: '192.0.2.1', type: 'A', rcode: 'NXDOMAIN' }, extra: { 'source.ip': '10.0.0.1' } }), { hosts: ['192.0.2.1'], ip: ['10.0.0.9', '10.0.0.1'] }, 'through toEcs too: the resolver in front (source.ip) after the client it named')
})

t.test('event.outcome: written when the event has one, after event.kind; never made up', async t => {
  const ev: DecisionEvent = {
    message: 'dns.query', decision: snap.policy.decide('10.0.0.5', 'example.com', 'qname'),
    client: { ip: '10.0.0.5', port: 53001 }, transport: 'udp', durationNs: 9,
    dns: { name: 'example.com', type: 'A', rcode: 'SERVFAIL', upstream: 'udp://127.0.0.1:9' }, outcome: 'failure',
  }
  t.same(toEcs(ev).event, { action: 'pass', kind: 'event', outcome: 'failure', category: ['network'], type: ['protocol', 'allowed'], duration: 9 })
  t.ok(ecsBody(ev).startsWith('"message":"dns.query","event":{"action":"pass","kind":"event","outcome":"failure","category":'))
  t.equal(`{${ecsBody(ev)}`, JSON.stringify(toEcs(ev)))
  const ok = { ...ev, dns: { ...ev.dns!, rcode: 'NOERROR' }, outcome: 'success' as const }
  t.equal((toEcs(ok).event as { outcome: string }).outcome, 'success')
  t.equal(`{${ecsBody(ok)}`, JSON.stringify(toEcs(ok)))
  const refused: DecisionEvent = { ...ev, message: 'proxy.http', dns: undefined, destination: { domain: 'x.example', port: 80 }, outcome: 'failure',
    decision: { action: 'block', group: 'default', where: 'url', name: 'x.example', reason: 'r', policy: 'proxy.httpPorts' } }
  t.equal(`{${ecsBody(refused)}`, JSON.stringify(toEcs(refused)), 'a refusal by the proxy\'s rules with one too')
  const blocked = { ...ev, decision: snap.policy.decide('10.0.0.5', 'a.ngrok.io', 'qname'), dns: { name: 'a.ngrok.io', type: 'A', rcode: 'NOERROR' }, outcome: undefined }
  t.notOk('outcome' in (toEcs(blocked).event as object), 'none given: none written')
  t.notOk(ecsBody(blocked).includes('outcome'))
})

t.test('a proxy line writes the names a client typed lowercased (destination.domain, SNI, URL host): keyword rules match by case', async t => {
  const ev: DecisionEvent = {
    message: 'proxy.connect', decision: snap.policy.decide('10.0.0.5', 'X.NGROK-FREE.APP', 'sni'),
    client: { ip: '10.0.0.5', port: 40000 }, transport: 'tcp', durationNs: 1,
    destination: { domain: 'X.Ngrok-Free.App', port: 443 }, sni: 'X.NGROK-FREE.APP', urlDomain: 'Www.Example.COM',
  }
  const out = toEcs(ev)
  t.match(out, { destination: { domain: 'x.ngrok-free.app' }, tls: { client: { server_name: 'x.ngrok-free.app' } }, url: { domain: 'www.example.com' } })
  t.equal((out.tunnelguard as Record<string, unknown>).matched_name, undefined, 'a name that differs by case only is no other name matched')
  t.equal(`{${ecsBody(ev)}`, JSON.stringify(out), 'the bytes written directly say the same')
})
