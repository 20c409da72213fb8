import t from 'tap'
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import dnsPacket from 'dns-packet'
import type { Test } from 'tap'
import type { Client } from '../../src/dns/client-access.js'
import { QueryHandler } from '../../src/dns/handler.js'
import type { Snapshot } from '../../src/snapshot-types.js'
import { memoryEvidence } from '../fixtures/evidence.js'
import { makeSnapshot } from '../fixtures/snapshot.js'
import { decodeMsg, optRr } from '../fixtures/dig.js'
import { flushNotices } from '../../src/observe/throttle.js'

const client: Client = { ip: '127.0.0.1', port: 5555, transport: 'udp' }
const q = (name = 'a.test', extra: Partial<dnsPacket.Packet> = {}): Buffer =>
  dnsPacket.encode({ type: 'query', id: 0x4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }], ...extra })

async function fakeUdp(t: Test, behave: (msg: Buffer, r: RemoteInfo, s: Socket) => void): Promise<{ url: string; seen: Buffer[] }> {
  const s = createSocket('udp4')
  const seen: Buffer[] = []
  s.on('message', (m, r) => { seen.push(Buffer.from(m)); behave(m, r, s) })
  await new Promise<void>(r => s.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => s.close())
  return { url: `udp://127.0.0.1:${s.address().port}`, seen }
}

function setup(t: Test, first: Snapshot, logsPass = true): { h: QueryHandler; ask: (m: Buffer, c?: Client) => Promise<Buffer | undefined>; use: (s: Snapshot) => void; ev: ReturnType<typeof memoryEvidence> } {
  let snap = first
  const ev = memoryEvidence({ logsPass })
  const h = new QueryHandler({ getSnapshot: () => snap, evidence: ev, clock: process.hrtime.bigint })
  t.teardown(() => h.close())
  return { h, ev, use: s => { snap = s }, ask: (m, c = client) => new Promise(r => h.handle(m, c, r)) }
}

const answer = (m: Buffer): Buffer => {
  const d = decodeMsg(m)
  return dnsPacket.encode({ type: 'response', id: d.id, flags: 0x8180, questions: d.questions as dnsPacket.Question[], answers: [{ type: 'A', name: 'a.test', ttl: 60, data: '192.0.2.1' }] })
}

t.test('the client\'s bytes go upstream unchanged but for the ID, the letter case of the name and its own EDNS options (COOKIE taken out, others kept)', async t => {
  const up = await fakeUdp(t, (m, r, s) => s.send(answer(m), r.port, r.address))
  const { h, ask } = setup(t, makeSnapshot({ config: { dns: { upstreams: [up.url] } } }))
  const msg = q('a.test', { additionals: [optRr(1400, dnsPacket.DNSSEC_OK, [{ code: 10, data: Buffer.from('0123456789abcdef', 'hex') }, { code: 65002, data: Buffer.from('hi') }])] })
  const copy = Buffer.from(msg)
  const pending = ask(msg)
  t.equal(h.pending, 1)
  const reply = await pending
  t.equal(h.pending, 0)
  t.equal(decodeMsg(reply!).id, 0x4242, 'the reply carries the client\'s ID')
  const nameEnd = 12 + 8                                     // a.test
  t.same(up.seen[0]!.subarray(2, 12), copy.subarray(2, 12), 'same header after the ID')
  t.equal(up.seen[0]!.toString('latin1', 12, nameEnd).toLowerCase(), copy.toString('latin1', 12, nameEnd), 'the name, in a random case (0x20)')
  const withoutCookie = q('a.test', { additionals: [optRr(1400, dnsPacket.DNSSEC_OK, [{ code: 65002, data: Buffer.from('hi') }])] })
  t.same(up.seen[0]!.subarray(nameEnd), withoutCookie.subarray(nameEnd), 'same bytes after the name, but for the COOKIE option')
  t.ok(msg.equals(copy), 'the client\'s own buffer is not changed')
  t.not(up.seen[0]!.readUInt16BE(0), 0x4242)
})

t.test('a malformed upstream answer gives SERVFAIL', async t => {
  const up = await fakeUdp(t, (m, r, s) => {
    const a = answer(m)
    s.send(a.subarray(0, a.length - 2), r.port, r.address)
  })
  const { ask, ev } = setup(t, makeSnapshot({ config: { dns: { upstreams: [up.url] } } }))
  t.equal(decodeMsg((await ask(q()))!).rcode, 'SERVFAIL')
  t.match(ev.events[0], { dns: { rcode: 'SERVFAIL', upstream: up.url } })
})

t.test('an upstream\'s COOKIE, NSID and Client Subnet are not handed on, from the miss or the cache; its other options are; a top-bit TTL is 0', async t => {
  const up = await fakeUdp(t, (m, r, s) => {
    const d = decodeMsg(m)
    const name = d.questions![0]!.name.toLowerCase()
    const ttls = name === 'top.test' ? [60, 0x80000001] : [60, 30]
    s.send(dnsPacket.encode({
      type: 'response', id: d.id, flags: 0x8180, questions: d.questions as dnsPacket.Question[],
      answers: ttls.map((ttl, i) => ({ type: 'A', name, ttl, data: `192.0.2.${i + 1}` })),
      additionals: [optRr(1232, 0, [{ code: 10, data: Buffer.alloc(24, 67) }, { code: 3, data: Buffer.from('NSID') }, { code: 8, data: Buffer.from([0, 1, 24, 0, 10, 0, 0]) }, { code: 65002, data: Buffer.from('hi') }])],
    }), r.port, r.address)
  })
  const { ask } = setup(t, makeSnapshot({ config: { dns: { upstreams: [up.url] } } }))
  const options = (b: Buffer): number[] => (decodeMsg(b).additionals!.find(a => a.type === 'OPT') as unknown as { options: { code: number }[] }).options.map(x => x.code)
  const msg = q('a.test', { additionals: [optRr(1232, 0, [])] })
  t.same(options((await ask(msg))!), [65002], 'the miss: only the option of no one client')
  t.same(options((await ask(msg))!), [65002], 'the hit: the same')
  t.equal(up.seen.length, 1, 'the second was a hit')
  const top = q('top.test', { additionals: [optRr(1232, 0, [])] })
  t.same(decodeMsg((await ask(top))!).answers!.map(a => a.ttl), [60, 0], 'TTL 0x80000001 is 0 (RFC 2181 §8), not maxTtl')
  await ask(top)
  t.equal(up.seen.length, 3, 'and the answer is not cached: its smallest TTL is 0')
})

t.test('access: unknown clients get REFUSED, their malformed queries nothing; many clients stay bounded', async t => {
  const { h, ask, ev } = setup(t, makeSnapshot({ config: { dns: { allowClients: ['10.0.0.0/8'] } } }))
  const stranger: Client = { ip: '192.0.2.1', port: 1, transport: 'udp' }
  t.equal(decodeMsg((await ask(q(), stranger))!).rcode, 'REFUSED')
  t.equal(await ask(Buffer.concat([q().subarray(0, 12)]), stranger), undefined, 'FORMERR only for allowed clients')
  let refused = 0
  const msg = q()
  const count = (r: Buffer | undefined): void => { if (r && (r.readUInt16BE(2) & 0xf) === 5) refused++ }
  for (let i = 0; i < 66_000; i++) {                          // more clients than the access memo keeps
    h.handle(msg, { ip: `11.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 1, transport: 'udp' }, count)
  }
  t.equal(refused, 66_000)
  t.equal(ev.events.length, 0)
})

t.test('a query with answer or authority records, or two additional ones, is FORMERR with its question, even when its answer is cached; counted as malformed, not logged', async t => {
  const up = await fakeUdp(t, (m, r, s) => s.send(answer(m), r.port, r.address))
  const { ask, ev } = setup(t, makeSnapshot({ config: { dns: { upstreams: [up.url] } } }))
  t.equal(decodeMsg((await ask(q()))!).rcode, 'NOERROR', 'asked plainly: answered, and cached')
  t.equal(decodeMsg((await ask(q()))!).answers.length, 1, 'from the cache')
  const a = { type: 'A', name: 'a.test', data: '192.0.2.9' } as const
  const events = ev.events.length
  for (const [what, msg] of [
    ['an answer record', q('a.test', { answers: [a] })],
    ['an authority record', q('a.test', { authorities: [a] })],
    ['an OPT and another additional record', q('a.test', { additionals: [optRr(1232), a] })],
  ] as const) {
    const r = decodeMsg((await ask(msg))!)
    t.match(r, { id: 0x4242, rcode: 'FORMERR', questions: [{ name: 'a.test', type: 'A' }], answers: [], additionals: [] }, what)
  }
  t.equal(up.seen.length, 1, 'nothing of them went upstream')
  t.equal(ev.counts['dropped.malformed'], 3)
  t.equal(ev.events.length, events, 'no decision line, as for other malformed queries')
})

t.test('a reload rebuilds only what changed', async t => {
  const up = await fakeUdp(t, (m, r, s) => s.send(answer(m), r.port, r.address))
  const base = makeSnapshot({ config: { dns: { upstreams: [up.url] } }, lists: { ngrok: { action: 'block', patterns: ['ngrok.io'] } } })
  const { ask, use, ev } = setup(t, base)
  await ask(q())
  use({ ...base, config: { ...base.config, dns: { ...base.config.dns, rateLimit: { qps: 100, burst: 5 } } } })
  await ask(q())
  t.equal(ev.counts['cache.hit'], 1, 'cache kept when its settings did not change')
  use({ ...base, config: { ...base.config, dns: { ...base.config.dns, cache: { maxEntries: 10, minTtl: 0, maxTtl: 1000 } } } })
  await ask(q())
  t.equal(ev.counts['cache.miss'], 2, 'a new cache when its settings changed')
  use({ ...base, config: { ...base.config, dns: { ...base.config.dns, blockResponse: 'refused' } } })
  t.equal(decodeMsg((await ask(q('x.ngrok.io')))!).rcode, 'REFUSED', 'blockResponse applies at once (same sinkhole settings)')
})

t.test('once draining, new queries are dropped', async t => {
  const { h, ask } = setup(t, makeSnapshot())
  await h.drain()
  t.equal(await ask(q()), undefined)
})

t.test('when the evidence does not log passes (the default config), a passed query is counted only; a blocked one is an event', async t => {
  const up = await fakeUdp(t, (m, r, s) => s.send(answer(m), r.port, r.address))
  const snap = makeSnapshot({ config: { dns: { upstreams: [up.url] } }, lists: { ngrok: { action: 'block', patterns: ['ngrok.io'] } } })
  t.equal(snap.config.log.queries, 'matched', 'the default')
  const { ask, ev } = setup(t, snap, false)
  t.ok(await ask(q('a.test')))
  t.ok(await ask(q('a.test')), 'a cache hit')
  t.equal(ev.counts['decided.pass'], 2)
  t.equal(ev.events.length, 0)
  t.ok(await ask(q('x.ngrok.io')))
  t.equal(ev.events.length, 1)
  t.equal(ev.events[0]!.decision.action, 'block')
  t.equal(ev.counts['decided.pass'], 2)
})

t.test('dns.trustEdnsFrom: the machine a resolver in front names is the client (policy, access, rate limit, log); others\' options are not read', async t => {
  const up = await fakeUdp(t, (m, r, s) => s.send(answer(m), r.port, r.address))
  const snap = makeSnapshot({
    config: {
      dns: { upstreams: [up.url], trustEdnsFrom: ['192.0.2.53/32'], allowClients: ['10.0.0.0/8'], rateLimit: { qps: 0.001, burst: 2 } },
      groups: [{ name: 'lab', clients: ['10.9.9.9/32'], actions: { ngrok: 'alert' } }],
    },
    lists: { ngrok: { action: 'block', patterns: ['ngrok.io'] } },
  })
  const { h, ask, ev } = setup(t, snap)
  const router: Client = { ip: '192.0.2.53', port: 4053, transport: 'udp' }
  const ecs = (a: number[]) => ({ code: 8, data: Buffer.from([0, 1, 32, 0, ...a]) })
  const mac = { code: 65001, data: Buffer.from('02005e10000a', 'hex') }
  const via = (name: string, options: { code: number; data: Buffer }[]) => q(name, { additionals: [optRr(1232, 0, options)] })

  t.ok(h.admit('192.0.2.53'), 'a trusted resolver outside allowClients is let in (its clients are checked query by query)')
  t.ok(h.trusts('192.0.2.53'))
  t.notOk(h.trusts('10.1.1.1'))
  t.notOk(h.admit('192.0.2.54'), 'an untrusted one outside allowClients is not')

  t.equal(decodeMsg((await ask(via('x.ngrok.io', [ecs([10, 1, 2, 3]), mac]), router))!).rcode, 'NXDOMAIN', 'blocked for 10.1.2.3')
  t.match(ev.events.at(-1), { client: { ip: '10.1.2.3', port: 0, mac: '02-00-5E-10-00-0A' }, extra: { 'source.ip': '192.0.2.53', 'source.port': 4053 }, decision: { action: 'block' } },
    'the line names the machine, its MAC, and the resolver that named it')
  t.equal(decodeMsg((await ask(via('x.ngrok.io', [ecs([10, 9, 9, 9])]), router))!).rcode, 'NOERROR', 'the group of 10.9.9.9 (alert) applies to it')
  t.match(ev.events.at(-1), { client: { ip: '10.9.9.9', port: 0 }, decision: { action: 'alert', group: 'lab' } })
  t.notOk('mac' in ev.events.at(-1)!.client, 'no MAC when none was given')
  t.equal(up.seen.at(-1)!.includes(Buffer.from([10, 9, 9, 9])), false, 'the machine\'s address does not go upstream')

  // the rate limit (burst 2) counts each machine, not the resolver: 10.1.2.3 has used one, 10.9.9.9 one
  t.ok(await ask(via('a.test', [ecs([10, 1, 2, 3])]), router), '10.1.2.3: its second query')
  t.equal(await ask(via('a.test', [ecs([10, 1, 2, 3])]), router), undefined, '10.1.2.3: its third is dropped')
  t.ok(await ask(via('a.test', [ecs([10, 7, 7, 7])]), router), 'another machine behind the same resolver is still answered')
  t.equal(ev.counts['dropped.ratelimit'], 1)

  t.equal(decodeMsg((await ask(via('a.test', [ecs([198, 51, 100, 7])]), router))!).rcode, 'REFUSED', 'a named machine outside allowClients: REFUSED')
  t.match(ev.messages.at(-1), { msg: 'dns client refused', fields: { 'client.ip': '198.51.100.7' } })
  t.equal(decodeMsg((await ask(via('a.test', []), router))!).rcode, 'REFUSED', 'the resolver\'s own query (no option) is its own, and it is outside allowClients')
  t.equal(decodeMsg((await ask(q('a.test'), router))!).rcode, 'REFUSED', 'likewise one without EDNS')
  t.match(ev.messages.at(-1), { msg: 'dns client refused', fields: { 'client.ip': '192.0.2.53' } })
  t.equal(decodeMsg((await ask(Buffer.concat([q('a.test').subarray(0, 12), Buffer.from([0xc0])]), router))!).rcode, 'FORMERR', 'a malformed query from it: FORMERR (it is let in)')
  const other: Client = { ip: '10.53.0.1', port: 5353, transport: 'udp' }
  t.equal(decodeMsg((await ask(via('x.ngrok.io', [ecs([10, 9, 9, 9]), mac]), other))!).rcode, 'NXDOMAIN', 'an untrusted sender\'s options are not read: not the lab group\'s alert')
  t.same(ev.events.at(-1)!.client, { ip: '10.53.0.1', port: 5353 }, 'the sender is the client')
  t.equal(ev.events.at(-1)!.extra, undefined)
})

t.test('event.outcome: success for an answer (NOERROR, NXDOMAIN), failure for an error rcode (SERVFAIL: the upstream failed or timed out); none on a block', async t => {
  const up = await fakeUdp(t, (m, r, s) => {
    const d = decodeMsg(m)
    const name = d.questions![0]!.name.toLowerCase()
    if (name === 'drop.test') return                       // no answer: the query times out
    const rcode = ({ 'nx.test': 3, 'fail.test': 2, 'refused.test': 5 } as Record<string, number>)[name] ?? 0
    s.send(dnsPacket.encode({ type: 'response', id: d.id, flags: 0x8180 | rcode, questions: d.questions as dnsPacket.Question[],
      answers: rcode === 0 ? [{ type: 'A', name, ttl: 60, data: '192.0.2.1' }] : [] }), r.port, r.address)
  })
  const { ask, ev } = setup(t, makeSnapshot({ config: { dns: { upstreams: [up.url], timeout: '300ms' } } }))
  const asked: [string, string, string | undefined][] = []
  for (const [name, type] of [['a.test', 'A'], ['a.test', 'A'], ['nx.test', 'A'], ['fail.test', 'A'], ['refused.test', 'A'], ['drop.test', 'A'], ['a.ngrok.io', 'A'], ['a.test', 'AXFR']] as const) {
    const reply = await ask(dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] }))
    const e = ev.events.at(-1)!
    asked.push([`${name} ${type}${e.dns!.cacheHit ? ' (cache)' : ''}`, decodeMsg(reply!).rcode!, e.outcome])
  }
  t.same(asked, [
    ['a.test A', 'NOERROR', 'success'], ['a.test A (cache)', 'NOERROR', 'success'], ['nx.test A', 'NXDOMAIN', 'success'],
    ['fail.test A', 'SERVFAIL', 'failure'], ['refused.test A', 'REFUSED', 'failure'], ['drop.test A', 'SERVFAIL', 'failure'],
    ['a.ngrok.io A', 'NOERROR', undefined], ['a.test AXFR', 'REFUSED', 'failure'],
  ])
  t.equal(ev.events.at(-2)!.decision.action, 'sinkhole', 'the listed name: sinkholed, and no outcome (event.type denied says it)')
})

t.test('zone transfers from many clients: 100 named per window, the rest summed in one line', async t => {
  const { ask, ev } = setup(t, makeSnapshot({ config: { dns: { upstreams: ['udp://127.0.0.1:9'], rateLimit: { qps: 0 } } } }), false)
  const axfr = q('test', { questions: [{ type: 'AXFR', name: 'test' }] })
  for (let i = 0; i < 103; i++) {
    const r = await ask(axfr, { ip: `10.0.${i >> 8}.${i & 255}`, port: 5353, transport: 'udp' })
    if (decodeMsg(r!).rcode !== 'REFUSED') t.fail(`client ${i}`)
  }
  const said = () => ev.messages.filter(m => m.msg === 'dns zone transfer refused')
  t.equal(said().length, 100, 'the first 100 clients, each named at once')
  t.match(said()[0], { level: 'warn', fields: { 'client.ip': '10.0.0.0', refused: 1 } })
  flushNotices()
  t.match(said().at(-1), { level: 'warn', fields: { clients: 3, refused: 3 } }, 'the other three, summed at the window\'s end')
  t.equal(ev.events.length, 0, 'no query line without log.queries: all')
})
