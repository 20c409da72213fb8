import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startDns } from '../../src/dns/server.js'
import { memoryEvidence } from '../fixtures/evidence.js'
import { makeSnapshot } from '../fixtures/snapshot.js'
import { slowUpstream } from '../fixtures/slow-upstream.js'
import { startServe } from '../fixtures/serve-process.js'
import { TEST_ZONE, startUnbound } from '../fixtures/unbound.js'
import { dig, kdig } from '../fixtures/dig.js'

// Tests written from mutation sampling of the DNS forwarder (issue 3): each one fails on a
// small regression that every other test let through.

t.test('serve --dns and --upstream replace the config file\'s listener and upstreams', async t => {
  const ub = await startUnbound(t)
  const dir = t.testdir({})
  const cfg = join(dir, 'tg.yaml')
  // the file's upstream is a port nothing answers on, and its listener one the flag replaces
  writeFileSync(cfg, 'dns: { listen: ["127.0.0.1:1"], upstreams: ["udp://127.0.0.1:9"], timeout: 1s }\nproxy: { listen: [] }\nadmin: { listen: null }\nlog: { queries: all }\n')
  const p = await startServe(t, ['--config', cfg, '--dns', '127.0.0.1:0', '--upstream', ub.url])
  const started = p.lines().find(l => l.message === 'started')!
  const addrs = started['tunnelguard.dns'] as { transport: string; address: string; port: number }[]
  t.same(addrs.map(a => [a.transport, a.address]), [['udp', '127.0.0.1'], ['tcp', '127.0.0.1']], '--dns: the listener')
  t.ok(addrs.every(a => a.port !== 1), 'not the file\'s port')
  t.same(started['tunnelguard.upstreams'], [ub.url], '--upstream: the upstreams said at start')
  const udp = addrs.find(a => a.transport === 'udp')!
  const r = await dig(udp, 'a.test')
  t.equal(r.status, 'NOERROR', 'answered by the --upstream, not SERVFAIL from the file\'s dead one')
  t.same(r.answer.map(a => a.data), ['192.0.2.1'])
  const k = await kdig(addrs.find(a => a.transport === 'tcp')!, 'a.test', 'AAAA', ['+tcp'])
  t.same(k.answer.map(a => a.data), ['2001:db8::1'])
  const line = await p.waitFor(l => (l.dns as { question?: { name?: string } } | undefined)?.question?.name === 'a.test')
  t.match(line, { tunnelguard: { upstream: ub.url } }, 'the log line names the --upstream')
  t.equal(await p.stop(), 0)
})

t.test('the log line\'s duration spans the upstream\'s answer: a query forwarded to an upstream that takes 300 ms took at least that', async t => {
  const slow = await slowUpstream(t, 300, { answers: q => [{ type: 'A', name: q.questions![0]!.name, ttl: 60, data: '192.0.2.9' }] })
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { dns: { upstreams: [slow.url], timeout: '3s' } } })
  const dns = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev })
  t.teardown(() => dns.close())
  const r = await dig(dns.addresses[0]!, 'slow.test')
  t.same(r.answer.map(a => a.data), ['192.0.2.9'])
  const hit = await dig(dns.addresses[0]!, 'slow.test')
  t.same(hit.answer.map(a => a.data), ['192.0.2.9'])
  t.equal(ev.events.length, 2)
  t.match(ev.events[0], { dns: { name: 'slow.test', upstream: slow.url, cacheHit: false } })
  t.ok(ev.events[0]!.durationNs >= 300_000_000, `forwarded: ${ev.events[0]!.durationNs} ns, not less than the upstream took`)
  t.match(ev.events[1], { dns: { cacheHit: true } })
  t.ok(ev.events[1]!.durationNs > 0, 'a cache hit takes some time too')
})

t.test('a UDP answer over 512 octets fits the client\'s EDNS buffer: whole for a client that offers 1232 or more, TC without EDNS', async t => {
  // four TXT records of 200 octets: about 900 octets, between 512 and 1232
  const mid = Array.from({ length: 4 }, (_, i) => `mid.test. 300 IN TXT "${String(i).repeat(200)}"`)
  const ub = await startUnbound(t, { zone: [...TEST_ZONE, ...mid] })
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { dns: { upstreams: [ub.url] } } })
  const dns = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev })
  t.teardown(() => dns.close())
  const server = dns.addresses[0]!
  for (const size of ['1232', '4096']) {
    const r = await dig(server, 'mid.test', 'TXT', [`+bufsize=${size}`, '+ignore'])
    t.notOk(r.flags.includes('tc'), `bufsize ${size}: no TC`)
    t.equal(r.answer.length, 4, `bufsize ${size}: the whole answer over UDP`)
  }
  const k = await kdig(server, 'mid.test', 'TXT', ['+bufsize=1232', '+ignore'])
  t.notOk(k.flags.includes('tc'), 'kdig: no TC')
  t.equal(k.answer.length, 4)
  const noEdns = await dig(server, 'mid.test', 'TXT', ['+noedns', '+ignore'])
  t.ok(noEdns.flags.includes('tc'), 'no EDNS: 512 octets, TC')
  t.equal(noEdns.answer.length, 0)
})

t.test('sinkhole answers carry EDE 15 "Blocked" naming list and entry too (A, AAAA, NODATA), when the query had EDNS', async t => {
  const ub = await startUnbound(t)
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { dns: { upstreams: [ub.url] } } })   // the built-in lists: ngrok sinkholed
  const dns = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev })
  t.teardown(() => dns.close())
  const server = dns.addresses[0]!
  const a = await dig(server, 'tunnel.ngrok.io')
  t.same(a.answer.map(x => x.data), ['0.0.0.0'])
  t.match(a.ede, /^15 \(Blocked\).*ngrok\.io in list ngrok/, 'A')
  const aaaa = await kdig(server, 'tunnel.ngrok.io', 'AAAA', ['+edns'])
  t.same(aaaa.answer.map(x => x.data), ['::'])
  t.match(aaaa.ede, /^15 \(Blocked\).*ngrok\.io in list ngrok/, 'AAAA (kdig)')
  const txt = await dig(server, 'tunnel.ngrok.io', 'TXT')
  t.same(txt.answer, [])
  t.match(txt.ede, /^15 \(Blocked\).*ngrok\.io in list ngrok/, 'NODATA')
  const plain = await dig(server, 'tunnel.ngrok.io', 'A', ['+noedns'])
  t.same(plain.answer.map(x => x.data), ['0.0.0.0'])
  t.equal(plain.ede, undefined, 'no EDE without EDNS')
  t.equal(ev.events.filter(e => e.decision.action === 'sinkhole').length, 4, 'each logged')
})
