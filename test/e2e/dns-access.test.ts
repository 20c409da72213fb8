import t from 'tap'
import { createSocket } from 'node:dgram'
import dnsPacket from 'dns-packet'
import { startDns } from '../../src/dns/server.js'
import type { ConfigInput } from '../../src/config/schema.js'
import { memoryEvidence } from '../fixtures/evidence.js'
import { makeSnapshot } from '../fixtures/snapshot.js'
import { startUnbound } from '../fixtures/unbound.js'
import { dig, kdig } from '../fixtures/dig.js'
import { slowUpstream } from '../fixtures/slow-upstream.js'

/** Send `n` queries at once from one socket; the rcodes of the replies that came within `ms`. */
async function burst(port: number, n: number, ms = 400): Promise<number[]> {
  const s = createSocket('udp4')
  const got: number[] = []
  s.on('message', m => got.push(m.readUInt16BE(2) & 0xf))
  await new Promise<void>(r => s.bind(0, '127.0.0.1', () => r()))
  for (let i = 0; i < n; i++) {
    s.send(dnsPacket.encode({ type: 'query', id: i, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: `n${i}.a.test` }] }), port, '127.0.0.1')
  }
  await new Promise(r => setTimeout(r, ms))
  s.close()
  return got
}

/** Send `n` queries at once from one socket bound to `src`; the rcodes of the replies, once all came (or after `ms`). */
async function burstFrom(src: string, port: number, n: number, tag: string, ms: number): Promise<number[]> {
  const s = createSocket('udp4')
  const got: number[] = []
  let all: () => void = () => {}
  s.on('message', m => { if (got.push(m.readUInt16BE(2) & 0xf) === n) all() })
  await new Promise<void>(r => s.bind(0, src, () => r()))
  for (let i = 0; i < n; i++) {
    s.send(dnsPacket.encode({ type: 'query', id: i, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: `${tag}${i}.a.test` }] }), port, '127.0.0.1')
  }
  await new Promise<void>(r => { all = r; setTimeout(r, ms) })
  s.close()
  return got
}

t.test('only allowClients are answered: REFUSED over UDP; over TCP the connection is reset at accept', async t => {
  const ub = await startUnbound(t)
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { dns: { upstreams: [ub.url], allowClients: ['::1/128'] } } })
  const dns = await startDns({ listen: ['127.0.0.1:0', '[::1]:0'], getSnapshot: () => snap, evidence: ev })
  t.teardown(() => dns.close())
  const v4 = await dig(dns.addresses[0]!, 'a.test')
  t.equal(v4.status, 'REFUSED')
  t.same(v4.answer, [])
  await t.rejects(kdig(dns.addresses[1]!, 'a.test', 'A', ['+tcp']), /failed to query server/, 'over TCP: no connection to ask on')
  t.equal(ev.counts['dropped.refused'], 2)
  t.equal(ev.events.length, 0, 'not an open resolver: nothing forwarded')
  t.same(ev.messages.filter(m => m.msg === 'dns client refused'), [
    { level: 'warn', msg: 'dns client refused', fields: { 'client.ip': '127.0.0.1', refused: 1, reason: 'not in dns.allowClients' } },
  ], 'the refused client is named once per window, not per query or connection')
  const v6 = await dig(dns.addresses[2]!, 'a.test')
  t.equal(v6.status, 'NOERROR')
  t.equal(ev.events.length, 1)
})

t.test('per-client rate limit: excess dropped, logged once per window', async t => {
  const ub = await startUnbound(t)
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { dns: { upstreams: [ub.url], rateLimit: { qps: 0.01, burst: 3 } } } })
  const dns = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev })
  t.teardown(() => dns.close())
  const got = await burst(dns.addresses[0]!.port, 10, 1500)
  t.equal(got.length, 3, 'the burst is answered, the rest dropped')
  t.equal(ev.counts['dropped.ratelimit'], 7)
  t.same(ev.messages.filter(m => m.msg === 'dns client rate limited').map(m => m.fields?.['client.ip']), ['127.0.0.1'], 'one log line')
})

t.test('per-client rate limit over TCP: the excess answered REFUSED at once (a TCP client does not ask again), counted the same', async t => {
  const ub = await startUnbound(t)
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { dns: { upstreams: [ub.url], rateLimit: { qps: 0.01, burst: 2 } } } })
  const dns = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev })
  t.teardown(() => dns.close())
  const server = { address: '127.0.0.1', port: dns.addresses[0]!.port }
  const statuses: string[] = []
  for (let i = 0; i < 4; i++) {
    const started = Date.now()
    const r = await kdig(server, `t${i}.a.test`, 'A', ['+tcp', '+time=5'])
    statuses.push(r.status)
    if (i >= 2) t.ok(Date.now() - started < 3000, `query ${i} answered at once, not at the client's timeout`)
    if (i >= 2) t.match(r.raw, new RegExp(`;; QUESTION SECTION:\\n;; t${i}\\.a\\.test\\.\\s+IN\\s+A`), 'the question echoed')
  }
  t.same(statuses, ['NXDOMAIN', 'NXDOMAIN', 'REFUSED', 'REFUSED'], 'the burst answered (names the upstream does not have), the rest refused')
  t.equal(ev.counts['dropped.ratelimit'], 2)
  t.same(ev.messages.filter(m => m.msg === 'dns client rate limited').map(m => m.fields?.['client.ip']), ['127.0.0.1'], 'one log line')
})

t.test('queries in flight are bounded: the excess gets SERVFAIL at once', async t => {
  const slow = await slowUpstream(t, 200)
  const ev = memoryEvidence()
  const config: ConfigInput = { dns: { upstreams: [slow.url], maxInFlight: 2 } }
  const snap = makeSnapshot({ config })
  const dns = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev })
  t.teardown(() => dns.close())
  const got = await burst(dns.addresses[0]!.port, 5, 1500)
  t.same(got.sort(), [0, 0, 2, 2, 2])
  t.equal(ev.counts['dropped.overload'], 3)
})

/** One query per entry, each from its own UDP socket bound to that loopback address (127/8 is all local on Linux). */
async function fromSources(port: number, sources: readonly string[], name = 'use-application-dns.net'): Promise<void> {
  for (const [i, src] of sources.entries()) {
    const s = createSocket('udp4')
    await new Promise<void>(r => s.bind(0, src, () => r()))
    await new Promise<void>(r => s.send(dnsPacket.encode({ type: 'query', id: i, questions: [{ type: 'A', name }] }), port, '127.0.0.1', () => r()))
    s.close()
  }
}

t.test('refused and rate-limited clients: at most 100 named per window, the rest summed in one line', async t => {
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { dns: { allowClients: ['127.0.1.0/24'], rateLimit: { qps: 0.001, burst: 1 } } } })
  let skew = 0n                                            // the handler's clock, moved on past the 10 s window below
  const dns = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev, clock: () => process.hrtime.bigint() + skew })
  t.teardown(() => dns.close())
  const port = dns.addresses[0]!.port
  const limited = Array.from({ length: 250 }, (_, i) => `127.0.1.${i + 1}`)
  const strangers = Array.from({ length: 250 }, (_, i) => `127.0.2.${i + 1}`)
  await fromSources(port, [...limited, ...limited, ...strangers])  // allowed: the second query is over the limit; others: refused
  const settled = async (key: string, n: number): Promise<void> => {
    for (let i = 0; i < 1000 && (ev.counts[key] ?? 0) < n; i++) await new Promise(r => setTimeout(r, 10))
  }
  await settled('dropped.ratelimit', 250)
  await settled('dropped.refused', 250)
  t.equal(ev.counts['dropped.ratelimit'], 250)
  t.equal(ev.counts['dropped.refused'], 250)
  const lines = (msg: string): Record<string, unknown>[] => ev.messages.filter(m => m.msg === msg).map(m => m.fields!)
  t.equal(lines('dns client rate limited').length, 100, '100 rate-limited clients named, not 250')
  t.equal(lines('dns client refused').length, 100, '100 refused clients named, not 250')
  t.ok(lines('dns client refused').every(f => typeof f['client.ip'] === 'string'))
  skew = 11_000_000_000n
  await fromSources(port, ['127.0.1.1', '127.0.3.1'])
  await settled('dropped.ratelimit', 251)
  await settled('dropped.refused', 251)
  t.same(lines('dns client rate limited').slice(100), [
    { clients: 150, dropped: 150, qps: 0.001 },
    { 'client.ip': '127.0.1.1', dropped: 1, qps: 0.001 },
  ], 'the window\'s other 150 clients in one line, before the next window\'s first')
  t.same(lines('dns client refused').slice(100), [
    { clients: 150, refused: 150, reason: 'not in dns.allowClients' },
    { 'client.ip': '127.0.3.1', refused: 1, reason: 'not in dns.allowClients' },
  ])
})

t.test('one client cannot take all of maxInFlight: past maxInFlightPerClient its queries get SERVFAIL, others are still forwarded', async t => {
  let forwarded = 0
  const slow = await slowUpstream(t, 300, {
    onQuery: () => { forwarded++ },
    answers: q => [{ type: 'A', name: q.questions![0]!.name, ttl: 60, data: '192.0.2.7' }],
  })
  const ev = memoryEvidence()
  const config: ConfigInput = { dns: { upstreams: [slow.url], maxInFlight: 10, maxInFlightPerClient: 4 } }
  const snap = makeSnapshot({ config })
  const dns = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev })
  t.teardown(() => dns.close())
  const port = dns.addresses[0]!.port
  const [attacker, victim] = await Promise.all([burstFrom('127.0.0.9', port, 20, 'x', 2500), (async () => {
    for (let i = 0; i < 200 && forwarded < 4; i++) await new Promise(r => setTimeout(r, 5))   // the attacker's queries are in flight
    return burstFrom('127.0.0.1', port, 3, 'v', 2500)
  })()])
  t.same(attacker.sort(), [...new Array<number>(4).fill(0), ...new Array<number>(16).fill(2)], 'the attacker: 4 forwarded, 16 SERVFAIL at once')
  t.same(victim, [0, 0, 0], 'another client is still served')
  t.equal(ev.counts['dropped.overload'], 16)
  t.same(ev.messages.filter(m => m.msg === 'dns client over its in-flight limit').map(m => m.fields), [
    { 'client.ip': '127.0.0.9', servfail: 1, maxInFlightPerClient: 4 },
  ], 'named once per window')
  t.same(await burstFrom('127.0.0.9', port, 4, 'y', 2500), [0, 0, 0, 0], 'its share is back once its answers came')
})
