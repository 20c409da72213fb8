import t from 'tap'
import { createSocket, type Socket } from 'node:dgram'
import { connect, createServer } from 'node:net'
import dnsPacket from 'dns-packet'
import { execFileSync } from 'node:child_process'
import { startDns } from '../../src/dns/server.js'
import { frame } from '../../src/dns/framing.js'
import { decodeMsg } from '../fixtures/dig.js'
import { memoryEvidence } from '../fixtures/evidence.js'
import { makeSnapshot } from '../fixtures/snapshot.js'
import { freePort } from '../fixtures/unbound.js'

const q = (id: number, name = 'a.test'): Buffer => dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] })

t.test('bad listen addresses and ports in use are reported, nothing left open', async t => {
  const ev = memoryEvidence()
  const snap = makeSnapshot()
  await t.rejects(startDns({ listen: ['nonsense'], getSnapshot: () => snap, evidence: ev }), { code: 'CONFIG_INVALID' })
  const port = await freePort()
  const tcp = createServer()
  await new Promise<void>(r => tcp.listen(port, '127.0.0.1', () => r()))
  await t.rejects(startDns({ listen: [`127.0.0.1:${port}`], getSnapshot: () => snap, evidence: ev }), { code: 'EADDRINUSE' })
  await new Promise<void>(r => tcp.close(() => r()))
  const udp = createSocket('udp4')
  await new Promise<void>(r => udp.bind(port, '127.0.0.1', () => r()))
  t.teardown(() => udp.close())
  await t.rejects(startDns({ listen: ['127.0.0.1:0', `127.0.0.1:${port}`], getSnapshot: () => snap, evidence: ev }), { code: 'EADDRINUSE' })
})

t.test('a listen address written as a name is resolved once, and replies go out from it', async t => {
  // `localhost` comes from /etc/hosts: no DNS traffic
  const ev = memoryEvidence()
  const snap = makeSnapshot()
  const dns = await startDns({ listen: ['localhost:0'], getSnapshot: () => snap, evidence: ev })
  t.teardown(() => dns.close())
  const port = dns.addresses[0]!.port
  const c = createSocket('udp4')
  t.teardown(() => c.close())
  const reply = new Promise<ReturnType<typeof decodeMsg>>(r => c.once('message', m => r(decodeMsg(m))))
  c.send(q(7, 'use-application-dns.net'), port, '127.0.0.1')
  const a = await reply
  t.equal(a.id, 7)
  t.equal(a.rcode, 'NXDOMAIN', 'answered on 127.0.0.1 (the canary needs no upstream)')
})

t.test('an IPv4-mapped listen address listens on its IPv4 address, UDP and TCP (it failed to bind: EINVAL)', async t => {
  const ev = memoryEvidence()
  const snap = makeSnapshot()
  const dns = await startDns({ listen: ['[::ffff:127.0.0.1]:0'], getSnapshot: () => snap, evidence: ev })
  t.teardown(() => dns.close())
  t.same(dns.addresses.map(a => `${a.transport} ${a.address}`), ['udp 127.0.0.1', 'tcp 127.0.0.1'])
  const port = dns.addresses[0]!.port
  const c = createSocket('udp4')
  t.teardown(() => c.close())
  const reply = new Promise<ReturnType<typeof decodeMsg>>(r => c.once('message', m => r(decodeMsg(m))))
  c.send(q(8, 'use-application-dns.net'), port, '127.0.0.1')
  t.equal((await reply).rcode, 'NXDOMAIN', 'answered over UDP')
  const s = connect(port, '127.0.0.1')
  t.teardown(() => s.destroy())
  const got = new Promise<Buffer>(r => s.once('data', d => r(d)))
  s.write(frame(q(9, 'use-application-dns.net')))
  t.equal(decodeMsg((await got).subarray(2)).rcode, 'NXDOMAIN', 'answered over TCP')
})

t.test('close() ends open TCP connections; a client gone before its answer is no trouble', async t => {
  const slow: Socket = createSocket('udp4')
  await new Promise<void>(r => slow.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => slow.close())
  let answered!: () => void
  const done = new Promise<void>(r => { answered = r })
  slow.on('message', (m, r) => setTimeout(() => {
    const d = dnsPacket.decode(m)
    slow.send(dnsPacket.encode({ type: 'response', id: d.id, flags: 0x8180, questions: d.questions }), r.port, r.address, () => answered())
  }, 100))
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { dns: { upstreams: [`udp://127.0.0.1:${slow.address().port}`] } } })
  const dns = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev })
  const port = dns.addresses[1]!.port
  const gone = connect(port, '127.0.0.1')
  await new Promise(r => gone.once('connect', r))
  gone.write(frame(q(1)))
  await new Promise(r => setTimeout(r, 30))
  gone.destroy()
  await done
  await new Promise(r => setTimeout(r, 30))
  t.equal(ev.events.length, 1, 'the query was still decided and logged')
  const idle = connect(port, '127.0.0.1')
  idle.on('error', () => {})
  await new Promise(r => idle.once('connect', r))
  const closed = new Promise(r => idle.once('close', r))
  await dns.close()
  await closed
  t.pass('the idle connection was closed by close()')
  t.equal(ev.counts['conn.dns-tcp'], 0, 'connections counted up and down')
})

t.test('listener errors after the start: no descriptor for an accept is counted (and said once per 10 s by the evidence); another is a warning', async t => {
  const { TcpClients, TcpListener } = await import('../../src/dns/tcp-listener.js')
  const { listenOn } = await import('../../src/proxy/listen.js')
  const ev = memoryEvidence()
  const snap = makeSnapshot()
  const l = new TcpListener({} as never, () => snap, ev, new TcpClients(ev, () => snap))
  const emfile = Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' })
  l.server.emit('error', emfile)
  l.server.emit('error', new Error('boom'))
  const p = await listenOn('127.0.0.1:0', s => s.destroy(), ev, 'proxy')
  t.teardown(() => p.close())
  p.emit('error', emfile)
  p.emit('error', new Error('bang'))
  t.equal(ev.counts['fd.listener'], 2)
  t.same(ev.messages.map(m => [m.level, m.msg, m.fields]), [
    ['warn', 'dns tcp listener error', { error: 'boom' }],
    ['error', 'proxy.listener', { 'error.message': 'bang' }],
  ])
})

/** A DNS query for `name` sent from 127.0.0.1 port 0 (a raw socket: root), to 127.0.0.1:`port`; false when it cannot be sent here. */
function sendFromPort0(port: number, name: string): boolean {
  const q = dnsPacket.encode({ type: 'query', id: 0x1234, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] })
  const py = [
    'import socket, struct, sys',
    'dns = bytes.fromhex(sys.argv[2])',
    "udp = struct.pack('>HHHH', 0, int(sys.argv[1]), 8 + len(dns), 0) + dns",
    's = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)',
    "s.sendto(udp, ('127.0.0.1', 0))",
  ].join('\n')
  try {
    execFileSync('python3', ['-c', py, String(port), q.toString('hex')], { stdio: 'ignore', timeout: 10_000 })
    return true
  } catch {
    return false
  }
}

t.test('a UDP query from port 0 is dropped as malformed (no reply can go back: dgram threw, and the process ended); the listener goes on', async t => {
  const ev = memoryEvidence()
  const snap = makeSnapshot()
  const { QueryHandler } = await import('../../src/dns/handler.js')
  const { udpListener } = await import('../../src/dns/server.js')
  const handler = new QueryHandler({ getSnapshot: () => snap, evidence: ev, clock: process.hrtime.bigint })
  t.teardown(() => handler.close())
  const l = udpListener(handler, ev, () => false)
  const s = createSocket('udp4')
  await new Promise<void>(r => s.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => s.close())
  const q = dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'use-application-dns.net' }] })
  t.doesNotThrow(() => l.onMessage(s, q, '127.0.0.1', 0))
  t.equal(ev.counts['dropped.malformed'], 1)
  const client = createSocket('udp4')
  await new Promise<void>(r => client.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => client.close())
  const got = new Promise<Buffer>(r => client.once('message', m => r(m)))
  l.onMessage(s, q, '127.0.0.1', client.address().port)
  t.equal(decodeMsg(await got).rcode, 'NXDOMAIN', 'another client is answered')

  // the same through a real listener, when this machine lets a raw socket send it (root, python3)
  const dns = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev })
  t.teardown(() => dns.close())
  const port = dns.addresses[0]!.port
  if (sendFromPort0(port, 'use-application-dns.net')) {
    await new Promise(r => setTimeout(r, 100))
    t.equal(ev.counts['dropped.malformed'], 2, 'the datagram from port 0 arrived, and was dropped')
  } else {
    // the README's test command runs as root (apt-get): there a raw socket must work
    t.not(process.getuid?.(), 0, 'a raw socket could not send the datagram from port 0, though the tests run as root')
  }
  const c2 = createSocket('udp4')
  t.teardown(() => c2.close())
  const answer = new Promise<Buffer>(r => c2.once('message', m => r(m)))
  c2.send(q, port, '127.0.0.1')
  t.equal(decodeMsg(await answer).rcode, 'NXDOMAIN', 'still answering')
})

t.test('a reply that cannot be sent is an error of the listener socket, said at most once per 10 s with the count', async t => {
  const ev = memoryEvidence()
  const { udpListener } = await import('../../src/dns/server.js')
  let now = 0
  const l = udpListener({} as never, ev, () => false, () => now)
  l.onError(new Error('send ENOBUFS'))
  l.onError(new Error('send ENOBUFS'))
  now = 9_999
  l.onError(new Error('send EHOSTUNREACH'))
  now = 10_000
  l.onError(new Error('send EPERM'))
  t.same(ev.messages.map(m => m.fields), [{ error: 'send ENOBUFS', errors: 1 }, { error: 'send EPERM', errors: 3 }])
  const ev2 = memoryEvidence()
  const clocked = udpListener({} as never, ev2, () => false)   // the real clock
  clocked.onError(new Error('send ENOBUFS'))
  clocked.onError(new Error('send ENOBUFS'))
  t.equal(ev2.messages.length, 1)
})
