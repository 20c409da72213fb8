import t from 'tap'
import dnsPacket from 'dns-packet'
import { arpaName, createPtrResolver, ptrFromReply } from '../../src/observe/ptr.js'
import { memoryEvidence } from '../fixtures/evidence.js'
import { startPtrServer } from '../fixtures/ptr-server.js'

const reply = (rcode: number, answers: dnsPacket.Answer[] = []) => dnsPacket.encode({
  type: 'response', id: 1, flags: rcode, questions: [{ type: 'PTR', name: '5.0.0.10.in-addr.arpa' }], answers,
})
const ptrRr = (data: string): dnsPacket.Answer => ({ type: 'PTR', name: '5.0.0.10.in-addr.arpa', ttl: 60, data })

t.test('arpaName: IPv4, IPv6 by nibbles, IPv4-mapped IPv6 as IPv4, not an address', async t => {
  t.equal(arpaName('10.0.0.5'), '5.0.0.10.in-addr.arpa')
  t.equal(arpaName('192.168.201.254'), '254.201.168.192.in-addr.arpa')
  t.equal(arpaName('2001:db8::567:89ab'), 'b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa')
  t.equal(arpaName('::1'), `1.${'0.'.repeat(31)}ip6.arpa`)
  t.equal(arpaName('::ffff:10.0.0.5'), '5.0.0.10.in-addr.arpa')
  t.equal(arpaName('laptop'), undefined)
})

t.test('ptrFromReply: the first PTR target, normalized; negative answers; errors throw', async t => {
  t.equal(ptrFromReply(reply(0, [{ type: 'CNAME', name: '5.0.0.10.in-addr.arpa', ttl: 60, data: '5.0/25.0.0.10.in-addr.arpa' }, ptrRr('Laptop-7.Corp.Example.'), ptrRr('other.example')])), 'laptop-7.corp.example')
  t.equal(ptrFromReply(reply(3)), undefined, 'NXDOMAIN')
  t.equal(ptrFromReply(reply(0)), undefined, 'NODATA')
  t.equal(ptrFromReply(reply(0, [ptrRr('bad/name.example')])), undefined, 'a target that is no host name')
  t.equal(ptrFromReply(reply(0, [ptrRr('.')])), undefined, 'the root')
  t.throws(() => ptrFromReply(reply(2)), /rcode SERVFAIL/)
  t.throws(() => ptrFromReply(Buffer.from([0, 1, 0x80, 0, 0, 1, 0, 1])), /Header must be 12 bytes/, 'cannot be decoded')
})

t.test('createPtrResolver: through the upstreams, with failover, errors and timeouts', async t => {
  const good = await startPtrServer(t, {
    '5.0.0.10.in-addr.arpa': 'laptop-7.corp.example.',
    '6.0.0.10.in-addr.arpa': 'SERVFAIL',
    '7.0.0.10.in-addr.arpa': q => {
      // the question echoed (so the pool takes it), then a record cut short
      const ok = dnsPacket.encode({ type: 'response', id: q.id, questions: q.questions, answers: [ptrRr('x.example')] })
      return ok.subarray(0, ok.length - 4)
    },
  })
  const silent = await startPtrServer(t, { '5.0.0.10.in-addr.arpa': 'SILENT' })
  const ev = memoryEvidence()
  const r = createPtrResolver({ evidence: ev, upstreams: [good.url], timeoutMs: 1000 })
  t.teardown(() => r.close())
  const ask = (ip: string) => new Promise<[Error | undefined, string | undefined]>(res => r.lookup(ip, (e, n) => res([e, n])))
  t.same(await ask('10.0.0.5'), [undefined, 'laptop-7.corp.example'])
  t.same(good.asked, ['5.0.0.10.in-addr.arpa'])
  t.same(await ask('10.0.0.9'), [undefined, undefined], 'NXDOMAIN: no name')
  const [servfail] = await ask('10.0.0.6')
  t.match(servfail, { message: /rcode SERVFAIL/ })
  const [cut] = await ask('10.0.0.7')
  t.match(cut, { message: /Cannot decode name/ }, 'a reply that cannot be decoded')
  t.same(await ask('not-an-address'), [undefined, undefined], 'nothing asked for what is no address')
  t.equal(good.asked.length, 4)
  r.update([silent.url], 200)
  const [timeout] = await ask('10.0.0.5')
  t.match(timeout, { code: 'UPSTREAM_TIMEOUT' }, 'the configured timeout bounds a lookup')
  r.update([silent.url, good.url], 400)
  t.same(await ask('10.0.0.5'), [undefined, 'laptop-7.corp.example'], 'fails over like the forwarder')
  t.ok(ev.counts['upstream.ok']! >= 1, 'counted as upstream queries')
})
