import t from 'tap'
import type { Test } from 'tap'
import { createSocket } from 'node:dgram'
import { connect } from 'node:net'
import dnsPacket from 'dns-packet'
import { FrameReader, frame } from '../../src/dns/framing.js'
import { startDns, type DnsService } from '../../src/dns/server.js'
import { flushNotices } from '../../src/observe/throttle.js'
import type { ConfigInput } from '../../src/config/schema.js'
import { memoryEvidence, type MemoryEvidence } from '../fixtures/evidence.js'
import { makeSnapshot } from '../fixtures/snapshot.js'
import { freePort, startUnbound, type Unbound } from '../fixtures/unbound.js'
import { decodeMsg, dig, kdig } from '../fixtures/dig.js'
import { slowUpstream } from '../fixtures/slow-upstream.js'

interface Stack { ub: Unbound; dns: DnsService; ev: MemoryEvidence; v4: { address: string; port: number }; v6: { address: string; port: number }; clock: { advance(s: number): void } }

async function stack(t: Test, dnsConfig: (ub: Unbound) => NonNullable<ConfigInput['dns']> = ub => ({ upstreams: [ub.url] })): Promise<Stack> {
  const ub = await startUnbound(t)
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { dns: { timeout: '500ms', ...dnsConfig(ub) } } })
  let offset = 0n
  const clock = (): bigint => process.hrtime.bigint() + offset
  const dns = await startDns({ listen: ['127.0.0.1:0', '[::1]:0'], getSnapshot: () => snap, evidence: ev, clock })
  t.teardown(() => dns.close())
  return { ub, dns, ev, v4: dns.addresses[0]!, v6: dns.addresses[2]!, clock: { advance: s => { offset += BigInt(s) * 1_000_000_000n } } }
}

t.test('answers over UDP and TCP, IPv4 and IPv6, to dig and kdig', async t => {
  const s = await stack(t)
  t.same(s.dns.cacheStats(), { entries: 0, bytes: 0 }, 'no cache before the first query')
  t.same(s.dns.addresses.map(a => [a.transport, a.address]), [['udp', '127.0.0.1'], ['tcp', '127.0.0.1'], ['udp', '::1'], ['tcp', '::1']])
  t.equal(s.dns.addresses[0]!.port, s.dns.addresses[1]!.port, 'UDP and TCP share the port')
  for (const server of [s.v4, s.v6]) {
    for (const tool of [dig, kdig]) {
      for (const tcp of [false, true]) {
        const r = await tool(server, 'a.test', 'A', tcp ? ['+tcp'] : [])
        t.equal(r.status, 'NOERROR')
        t.same(r.answer.map(a => a.data), ['192.0.2.1'], `${tool.name} ${server.address} ${tcp ? 'tcp' : 'udp'}`)
      }
    }
  }
  t.same(s.ev.events.map(e => [e.client.ip, e.transport]), [
    ['127.0.0.1', 'udp'], ['127.0.0.1', 'tcp'], ['127.0.0.1', 'udp'], ['127.0.0.1', 'tcp'],
    ['::1', 'udp'], ['::1', 'tcp'], ['::1', 'udp'], ['::1', 'tcp'],
  ])
  t.ok(s.ev.events.every(e => e.client.port > 0 && e.decision.action === 'pass' && e.dns?.name === 'a.test' && e.dns.type === 'A'))
  t.match(s.ev.events[0], { dns: { rcode: 'NOERROR', upstream: s.ub.url, cacheHit: false } })
  t.match(s.ev.events[1], { dns: { cacheHit: true } })
  // dig asks with EDNS and kdig without: the two are different keys
  t.equal(s.dns.cacheStats().entries, 2, 'two answers cached, for eight queries')
  t.ok(s.dns.cacheStats().bytes > 0, 'and the memory they take')
})

t.test('EDNS passes through: the DO bit comes back', async t => {
  const s = await stack(t)
  const r = await dig(s.v4, 'a.test', 'A', ['+dnssec'])
  t.match(r.raw, /EDNS: version: 0, flags: do;/)
  const k = await kdig(s.v4, 'a.test', 'AAAA', ['+dnssec'])
  t.match(k.raw, /flags: do;/)
  t.same(k.answer.map(a => a.data), ['2001:db8::1'])
})

t.test('a truncated upstream answer is asked again over TCP', async t => {
  const s = await stack(t)
  // unbound truncates at 1232: tunnelguard gets the whole answer over TCP, and caches it
  const overTcp = await dig(s.v4, 'big.test', 'TXT', ['+tcp'])
  t.notOk(overTcp.flags.includes('tc'))
  t.equal(overTcp.answer.length, 12)
  const small = await dig(s.v4, 'big.test', 'TXT', ['+ignore', '+bufsize=1232'])
  t.ok(small.flags.includes('tc'), 'too big for what this client takes over UDP: TC')
  t.equal(small.answer.length, 0)
  const noEdns = await dig(s.v4, 'big.test', 'TXT', ['+ignore', '+noedns'])
  t.ok(noEdns.flags.includes('tc'), 'no EDNS: 512 octets')
  const retried = await dig(s.v4, 'big.test', 'TXT', ['+bufsize=1232'])
  t.equal(retried.answer.length, 12, 'dig retries over TCP itself')
  // whatever a client offers, a UDP reply is at most 1232 octets (no fragments; a datagram over
  // 65,507 octets could not even be sent: the client heard nothing)
  for (const size of ['4096', '65535']) {
    const big = await kdig(s.v4, 'big.test', 'TXT', [`+bufsize=${size}`, '+ignore'])
    t.ok(big.flags.includes('tc'), `bufsize ${size}: TC`)
    t.equal(big.answer.length, 0)
    t.ok(big.edns, 'the TC reply keeps its OPT record (RFC 6891 §7)')
  }
  t.match(small.raw, /EDNS: version: 0/, 'dig sees EDNS in the TC reply too')
})

t.test('a one-label name that reads as a.test is cached apart from a.test', async t => {
  const s = await stack(t)
  const odd = await dig(s.v4, 'a\\.test', 'A')
  t.equal(odd.status, 'NXDOMAIN', 'the single label "a.test" is not in the root zone')
  const again = await dig(s.v4, 'a\\.test', 'A')
  t.equal(again.status, 'NXDOMAIN')
  const r = await dig(s.v4, 'a.test', 'A')
  t.equal(r.status, 'NOERROR', 'the name a.test is not served the one label\'s NXDOMAIN')
  t.same(r.answer.map(a => a.data), ['192.0.2.1'])
  t.same(s.ev.events.map(e => e.dns?.cacheHit), [false, true, false], 'each name has its own entry')
})

t.test('tcp:// upstream', async t => {
  const s = await stack(t, ub => ({ upstreams: [`tcp://127.0.0.1:${ub.port}`] }))
  const r = await dig(s.v4, 'a.test', 'AAAA')
  t.equal(r.answer[0]!.data, '2001:db8::1')
  t.equal(s.ev.events[0]!.dns!.upstream, `tcp://127.0.0.1:${s.ub.port}`)
})

t.test('a dead upstream gives SERVFAIL (not cached); failover to the next', async t => {
  const deadPort = await freePort()
  const s = await stack(t, () => ({ upstreams: [`udp://127.0.0.1:${deadPort}`] }))
  for (let i = 0; i < 2; i++) {
    const r = await dig(s.v4, 'a.test')
    t.equal(r.status, 'SERVFAIL')
  }
  t.match(s.ev.events, [{ dns: { rcode: 'SERVFAIL', cacheHit: undefined } }, { dns: { rcode: 'SERVFAIL' } }])
  t.equal(s.ev.counts['cache.miss'], 2, 'SERVFAIL is not cached')
  const f = await stack(t, ub => ({ upstreams: [`udp://127.0.0.1:${deadPort}`, ub.url], timeout: '1s' }))
  const r = await dig(f.v4, 'a.test')
  t.equal(r.status, 'NOERROR')
  t.equal(f.ev.events[0]!.dns!.upstream, f.ub.url)
})

t.test('an upstream that refuses: the next one is asked at once, whether its REFUSED carries the question or not', async t => {
  // unbound's access-control refuse answers with the header alone; a refuse local-zone with the question
  const acl = await startUnbound(t, { server: ['access-control: 127.0.0.1/32 refuse'], readyRcode: 5 })
  const zone = await startUnbound(t, { server: ['local-zone: "a.test." refuse'], readyRcode: 5 })
  const s = await stack(t, ub => ({ upstreams: [acl.url, zone.url, ub.url], timeout: '6s' }))
  const bare = await new Promise<Buffer>(resolve => {
    const c = createSocket('udp4')
    c.on('message', m => { c.close(); resolve(m) })
    c.send(dnsPacket.encode({ type: 'query', id: 9, questions: [{ type: 'A', name: 'a.test' }] }), acl.port, '127.0.0.1')
  })
  t.same([bare.readUInt16BE(2) & 0xf, bare.readUInt16BE(4)], [5, 0], 'the first refuses with the header alone')
  const t0 = Date.now()
  const r = await dig(s.v4, 'a.test')
  t.equal(r.status, 'NOERROR')
  t.equal(r.answer[0]?.data, '192.0.2.1')
  t.ok(Date.now() - t0 < 1500, 'no wait for the first upstream\'s share of the timeout (2 s)')
  t.equal(s.ev.events[0]!.dns!.upstream, s.ub.url)
  t.equal(s.ev.counts['upstream.error'], 2)
  // the refusals are not cached answers: the next asker gets the good one from the cache
  t.equal((await dig(s.v4, 'a.test')).status, 'NOERROR')
  t.equal(s.ev.events[1]!.dns!.cacheHit, true)
  // with only refusing upstreams, the client gets the last one's REFUSED, not a timeout
  const only = await stack(t, () => ({ upstreams: [acl.url, zone.url], timeout: '6s' }))
  const t1 = Date.now()
  t.equal((await dig(only.v4, 'a.test')).status, 'REFUSED')
  t.ok(Date.now() - t1 < 1500, 'at once, not after a share of the timeout (3 s)')
})

t.test('EDNS version 1: BADVERS, cached answer or not (RFC 6891 §6.1.3); version 0 answered as before', async t => {
  const s = await stack(t)
  t.equal((await dig(s.v4, 'a.test')).status, 'NOERROR', 'a.test in the cache')
  for (const tool of [dig, kdig]) {
    const r = await tool(s.v4, 'a.test', 'A', ['+edns=1', '+noednsnegotiation'].filter(o => tool === dig || o === '+edns=1'))
    t.equal(r.status, 'BADVERS', `${tool.name}: BADVERS`)
    t.equal(r.answer.length, 0)
  }
  t.equal((await dig(s.v4, 'a.test', 'A', ['+edns=0'])).status, 'NOERROR')
  t.match(s.ev.events.slice(1, 3), [{ dns: { rcode: 'BADVERS' } }, { dns: { rcode: 'BADVERS' } }], 'each logged, as BADVERS')
  // a listed name is decided first, whatever the version: sinkholed and logged as such
  const listed = await dig(s.v4, 'x.ngrok.io', 'A', ['+edns=1', '+noednsnegotiation'])
  t.equal(listed.answer[0]?.data, '0.0.0.0')
  t.match(s.ev.events.at(-1), { decision: { action: 'sinkhole' }, dns: { name: 'x.ngrok.io' } })
  // the names tunnelguard answers itself (the DoH canary, DDR) are no listed names: BADVERS, then their answer at version 0
  for (const [name, type, at0] of [['use-application-dns.net', 'A', 'NXDOMAIN'], ['_dns.resolver.arpa', 'SVCB', 'NOERROR']] as const) {
    t.equal((await dig(s.v4, name, type, ['+edns=1', '+noednsnegotiation'])).status, 'BADVERS', `${name}, version 1`)
    t.equal((await dig(s.v4, name, type, ['+edns=0'])).status, at0, `${name}, version 0`)
  }
})

t.test('AXFR and IXFR are refused: a forwarder relays no zone transfer', async t => {
  const s = await stack(t)
  t.match((await dig(s.v4, 'test', 'AXFR')).raw, /Transfer failed/, 'dig: the transfer fails')
  // the rcode each gets: AXFR over TCP, IXFR over UDP
  const axfr = dnsPacket.encode({ type: 'query', id: 5, questions: [{ type: 'AXFR', name: 'test' }] })
  const tcpReply = await new Promise<Buffer>((resolve, reject) => {
    const c = connect(s.v4.port, '127.0.0.1', () => c.write(frame(axfr)))
    const reader = new FrameReader()
    c.on('data', d => reader.push(d, m => { c.destroy(); resolve(Buffer.from(m)) }))
    c.on('error', reject)
  })
  t.equal(decodeMsg(tcpReply).rcode, 'REFUSED')
  const ixfr = dnsPacket.encode({ type: 'query', id: 6, questions: [{ type: 'IXFR', name: 'test' }] })
  const udpReply = await new Promise<Buffer>(resolve => {
    const c = createSocket('udp4')
    c.on('message', m => { c.close(); resolve(m) })
    c.send(ixfr, s.v4.port, '127.0.0.1')
  })
  t.equal(decodeMsg(udpReply).rcode, 'REFUSED')
  // a real IXFR carries the SOA of the version it has (RFC 1995): refused and logged all the same
  const soa = { type: 'SOA' as const, name: 'test', ttl: 0, data: { mname: 'ns.test', rname: 'host.test', serial: 1, refresh: 0, retry: 0, expire: 0, minimum: 0 } }
  const ask = (m: Buffer) => new Promise<Buffer>(resolve => {
    const c = createSocket('udp4')
    c.on('message', r => { c.close(); resolve(r) })
    c.send(m, s.v4.port, '127.0.0.1')
  })
  const withSoa = await ask(dnsPacket.encode({ type: 'query', id: 7, questions: [{ type: 'IXFR', name: 'test' }], authorities: [soa] }))
  t.equal(decodeMsg(withSoa).rcode, 'REFUSED', 'an IXFR with its SOA: REFUSED (it was FORMERR, unlogged)')
  t.match((await dig(s.v4, 'test', 'ixfr=1')).raw, /Transfer failed|REFUSED/, 'dig ixfr=1: the transfer fails')
  t.match(s.ev.events.map(e => [e.dns!.type, e.dns!.rcode]), [['AXFR', 'REFUSED'], ['AXFR', 'REFUSED'], ['IXFR', 'REFUSED'], ['IXFR', 'REFUSED'], ['IXFR', 'REFUSED']])
  // but only that: two records, or a record with another type, are FORMERR as before
  const two = await ask(dnsPacket.encode({ type: 'query', id: 8, questions: [{ type: 'IXFR', name: 'test' }], authorities: [soa, soa] }))
  t.equal(decodeMsg(two).rcode, 'FORMERR')
  const other = await ask(dnsPacket.encode({ type: 'query', id: 9, questions: [{ type: 'A', name: 'test' }], authorities: [soa] }))
  t.equal(decodeMsg(other).rcode, 'FORMERR')
  t.equal(s.ev.counts['cache.miss'], undefined, 'never asked upstream')
  // said whatever log.queries is: once for the client at first, the rest summed at the window's end
  const warned = () => s.ev.messages.filter(m => m.msg === 'dns zone transfer refused')
  t.same(warned().map(m => [m.level, m.fields?.['client.ip'], m.fields?.refused]), [['warn', '127.0.0.1', 1]], 'one warn line so far, naming the client')
  flushNotices()
  t.same(warned().map(m => m.fields?.refused), [1, 4], 'then the other four, counted in one line')
})

t.test('NSID is not asked upstream: no client gets the upstream\'s NSID from another\'s cached answer (RFC 5001)', async t => {
  const ub = await startUnbound(t, { server: ['nsid: "ascii_upstream-one"'] })
  const s = await stack(t, () => ({ upstreams: [ub.url] }))
  t.match((await dig({ address: '127.0.0.1', port: ub.port }, 'a.test', 'A', ['+nsid'])).raw, /NSID: .*upstream-one/, 'unbound does answer NSID')
  const asked = await dig(s.v4, 'a.test', 'A', ['+nsid'])
  t.equal(asked.status, 'NOERROR')
  t.notMatch(asked.raw, /NSID/, 'not for the client that asked')
  const other = await dig(s.v4, 'a.test', 'A')
  t.notMatch(other.raw, /NSID/, 'nor for the next, from the cache')
  t.equal(s.ev.events[1]!.dns!.cacheHit, true)
})

t.test('cache: TTLs count down; negative answers cached by SOA; expiry', async t => {
  const s = await stack(t)
  t.equal((await dig(s.v4, 'a.test')).answer[0]!.ttl, 300)
  s.clock.advance(100)
  // the clock also runs for real: a loaded box can take over a second to start dig, and a whole second more counts
  const within = (ttl: number, want: number): boolean => ttl <= want && ttl >= want - 5
  const later = (await dig(s.v4, 'a.test')).answer[0]!.ttl
  t.ok(within(later, 200), `served from the cache 100 s later: TTL ${later}, 200 but for the seconds dig took`)
  t.equal(s.ev.counts['upstream.ok'], 1)
  t.equal((await dig(s.v4, 'zz.test')).status, 'NXDOMAIN')
  s.clock.advance(20)
  const neg = await dig(s.v4, 'zz.test')
  t.equal(neg.status, 'NXDOMAIN')
  t.ok(within(neg.authority[0]!.ttl, 10), `SOA TTL counted down too: ${neg.authority[0]!.ttl}`)
  t.equal(s.ev.events.at(-1)!.dns!.cacheHit, true)
  s.clock.advance(11)
  await dig(s.v4, 'zz.test')
  t.equal(s.ev.events.at(-1)!.dns!.cacheHit, false, 'expired after the SOA MINIMUM (30 s)')
  s.clock.advance(200)
  await dig(s.v4, 'a.test')
  t.equal(s.ev.events.at(-1)!.dns!.cacheHit, false, 'expired after its TTL')
})

t.test('close() drains queries in flight, then stops answering', async t => {
  let arrived!: () => void
  const upstreamGotIt = new Promise<void>(r => { arrived = r })
  const slow = await slowUpstream(t, 300, { onQuery: () => arrived(), answers: () => [{ type: 'A', name: 'a.test', ttl: 9, data: '192.0.2.77' }] })
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { dns: { upstreams: [slow.url] } } })
  const dns = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev })
  const pending = dig(dns.addresses[0]!, 'a.test')
  await upstreamGotIt
  await dns.close()
  const r = await pending
  t.same(r.answer.map(a => a.data), ['192.0.2.77'], 'the query in flight was answered')
  const after = await dig(dns.addresses[0]!, 'a.test', 'A', ['+time=1'])
  t.equal(after.status, 'NONE', 'nothing answers after close')
  await dns.close()
})

t.test('identical queries in flight are forwarded once; each client gets its own ID and question back', async t => {
  const seen: string[] = []
  const slow = await slowUpstream(t, 300, {
    onQuery: q => { seen.push(q.questions![0]!.name) },
    answers: q => [{ type: 'A', name: q.questions![0]!.name, ttl: 9, data: '192.0.2.78' }],
  })
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { dns: { upstreams: [slow.url] } } })
  const dns = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev })
  t.teardown(() => dns.close())
  const client = createSocket('udp4')
  await new Promise<void>(r => client.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => client.close())
  const replies = new Map<number, dnsPacket.Packet>()
  const all = new Promise<void>(resolve => client.on('message', m => {
    const p = dnsPacket.decode(m)
    replies.set(p.id!, p)
    if (replies.size === 200) resolve()
  }))
  const cased = (i: number): string => [...'birthday.test'].map((c, k) => (i >> (k % 8)) & 1 ? c.toUpperCase() : c).join('')
  const server = dns.addresses[0]!
  for (let i = 0; i < 200; i++) {
    client.send(dnsPacket.encode({ type: 'query', id: 5000 + i, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: cased(i) }] }), server.port, server.address)
  }
  await all
  t.equal(seen.length, 1, '200 identical questions in flight, one upstream query')
  for (let i = 0; i < 200; i++) {
    const p = replies.get(5000 + i)!
    if (p.questions![0]!.name !== cased(i) || (p.answers![0] as { data?: unknown } | undefined)?.data !== '192.0.2.78') t.fail(`reply ${i}: ${JSON.stringify(p.questions)}`)
  }
  t.equal(replies.size, 200, 'every client ID answered, in its own letter case')
  t.equal(ev.counts['upstream.ok'], 1)
})

t.test('unbound keeps the letter case of questions: queries go out with 0x20, and no answer is dropped', async t => {
  const s = await stack(t)
  for (const name of ['a.test', 'Mixed.Case.TEST', 'zz.test', 'big.test']) {
    const r = await dig(s.v4, name, 'A', ['+tries=1'])
    t.match(r.raw, new RegExp(`^;${name.replace(/\./g, '\\.')}\\.\\s`, 'm'), `the question comes back as ${name}`)
  }
  t.equal(s.ev.counts['dropped.mismatch'], undefined, 'no reply in another letter case')
  t.notOk(s.ev.messages.some(m => m.msg.includes('letter case')))
  t.equal(s.ev.counts['upstream.ok'], 4)
})

t.test('a DNAME\'s CNAME comes back in the client\'s letter case, not the random one sent upstream', async t => {
  const s = await stack(t)
  // 26 letters in the first label: the random case sent upstream is the client's by chance once in
  // 2^26. unbound writes that label out in the CNAME it makes (the rest points into the question),
  // with TTL 0: every query goes upstream
  for (const first of ['abcdefghijklmnopqrstuvwxyz', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'aBCDEFGHIJKLMNOPQRSTUVWXYz']) {
    const r = await dig(s.v4, `${first}.DN2.test`, 'A')
    const cname = r.answer.find(a => a.type === 'CNAME')
    t.equal(cname?.name, `${first}.DN2.test.`, 'the CNAME\'s owner')
    t.equal(cname?.data, `${first}.dtarget.test.`, 'its target: the first label as the client wrote it')
  }
  t.equal(s.ev.counts['upstream.ok'], 3)
  t.equal(s.ev.counts['dropped.mismatch'], undefined)
})

t.test('a client\'s own EDNS options (COOKIE, Client Subnet) never go upstream, so no other client gets them back', async t => {
  // an upstream that echoes every EDNS option it is sent, as BIND does a COOKIE and a Client Subnet
  const echo = createSocket('udp4')
  await new Promise<void>(r => echo.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => echo.close())
  const seen: number[][] = []
  echo.on('message', (m, r) => {
    const q = dnsPacket.decode(m)
    const opt = q.additionals!.find(a => a.type === 'OPT') as { options?: { code: number; data: Buffer }[] } | undefined
    const options = (opt?.options ?? []).map(o => ({ code: o.code, data: o.data }))
    seen.push(options.map(o => o.code))
    echo.send(dnsPacket.encode({
      type: 'response', id: q.id, flags: 0x8180, questions: q.questions,
      answers: [{ type: 'A', name: q.questions![0]!.name, ttl: 60, data: '192.0.2.9' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0, options } as unknown as dnsPacket.Answer],
    }), r.port, r.address)
  })
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { dns: { upstreams: [`udp://127.0.0.1:${echo.address().port}`] } } })
  const dns = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev })
  t.teardown(() => dns.close())
  const server = dns.addresses[0]!
  const a = await dig(server, 'c.test', 'A', ['+cookie=0102030405060708', '+subnet=198.51.100.0/24', '+ednsopt=65001:02005e10000a', '+ednsopt=65002:abcd'])
  t.same(a.answer.map(x => x.data), ['192.0.2.9'])
  t.same(seen, [[65002]], 'only the option that is not the client\'s own (nor its MAC) went upstream')
  t.notMatch(a.raw, /COOKIE|CLIENT-SUBNET/, 'none came back')
  const b = await dig(server, 'c.test', 'A', ['+cookie=1112131415161718'])
  t.same(b.answer.map(x => x.data), ['192.0.2.9'])
  t.match(ev.events.at(-1), { dns: { cacheHit: true } })
  t.notMatch(b.raw, /0102030405060708|mismatch/i, 'the next client is not handed the first one\'s cookie')
  const plain = await dig(server, 'd.test', 'A', ['+nocookie', '+ednsopt=65002:ef'])
  t.same(plain.answer.map(x => x.data), ['192.0.2.9'])
  t.same(seen.at(-1), [65002], 'a query without them goes as it came')
})
