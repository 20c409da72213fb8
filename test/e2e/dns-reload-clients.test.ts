// A reload that drops a client from dns.allowClients: its next query is REFUSED at once, over UDP
// and on a TCP connection it opened before the reload (each query is checked, not only the accept);
// a new TCP connection from it is closed at the accept; the clients still allowed are answered
// as before, from the cache. (That a name listed by a reload is blocked at once even when its
// answer is cached: dns-policy.test.ts, "policy sits above the cache"; serve.test.ts, "SIGHUP
// under steady load".)
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import dnsPacket from 'dns-packet'
import { frame, FrameReader } from '../../src/dns/framing.js'
import { decodeMsg, dig } from '../fixtures/dig.js'
import { waitFor } from '../fixtures/origin.js'
import { startServe } from '../fixtures/serve-process.js'
import { startUnbound } from '../fixtures/unbound.js'

/** A DNS-over-TCP connection from `from` (a 127/8 address); `ask` sends one query for an A record and resolves with the reply (undefined: none within 3 s). */
async function tcpClient(port: number, from: string) {
  const sock: Socket = connect({ port, host: '127.0.0.1', localAddress: from })
  sock.on('error', () => {})
  const replies: Buffer[] = []
  const reader = new FrameReader()
  sock.on('data', c => reader.push(c, m => replies.push(Buffer.from(m))))
  await new Promise<void>(r => { sock.once('connect', r); sock.once('close', () => r()) })
  let id = 0
  return {
    sock,
    async ask(name: string) {
      const n = replies.length
      sock.write(frame(dnsPacket.encode({ type: 'query', id: ++id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] })))
      await waitFor(() => replies.length > n || sock.destroyed, 3000)
      return replies[n] && decodeMsg(replies[n])
    },
  }
}

t.test('tunnelguard serve, SIGHUP: a client dropped from dns.allowClients is REFUSED at its next query (UDP, and a TCP connection already open)', async t => {
  const ub = await startUnbound(t)
  const dir = t.testdir({})
  const cfg = join(dir, 'tg.yaml')
  const config = (clients: string) => [
    `dns: { listen: ["127.0.0.1:0"], upstreams: ["${ub.url}"], allowClients: [${clients}] }`,
    'proxy: { listen: [] }', 'admin: { listen: null }', 'reload: { watch: false }', '',
  ].join('\n')
  writeFileSync(cfg, config('127.0.0.1/32, 127.0.0.5/32'))
  // a start slowed by a loaded machine is no failure of what is tested here
  const p = await startServe(t, ['--config', cfg], [], 30_000)
  const addrs = p.lines().find(l => l.message === 'started')!['tunnelguard.dns'] as { transport: string; address: string; port: number }[]
  const udp = addrs.find(a => a.transport === 'udp')!
  const tcpPort = addrs.find(a => a.transport === 'tcp')!.port

  const first = await dig(udp, 'a.test', 'A', ['-b', '127.0.0.5'])
  t.equal(first.status, 'NOERROR', 'allowed: answered (and cached)')
  t.same(first.answer.map(a => a.data), ['192.0.2.1'])
  const tcp = await tcpClient(tcpPort, '127.0.0.5')
  t.match(await tcp.ask('a.test'), { rcode: 'NOERROR', answers: [{ data: '192.0.2.1' }] }, 'over TCP too, from the cache')

  writeFileSync(cfg, config('127.0.0.1/32'))
  p.child.kill('SIGHUP')
  await p.waitFor(l => l.message === 'reloaded', 30_000)

  const after = await dig(udp, 'a.test', 'A', ['-b', '127.0.0.5'])
  t.equal(after.status, 'REFUSED', 'dropped: its next query over UDP is REFUSED')
  t.same(after.answer, [], 'nothing from the cache')
  t.notOk(tcp.sock.destroyed, 'its TCP connection opened before the reload is still open')
  t.match(await tcp.ask('a.test'), { rcode: 'REFUSED', answers: [] }, 'and its next query on it is REFUSED')
  const fresh = connect({ port: tcpPort, host: '127.0.0.1', localAddress: '127.0.0.5' })
  fresh.on('error', () => {})
  t.ok(await waitFor(() => fresh.destroyed || fresh.closed, 3000), 'a new TCP connection from it is closed at the accept')
  const kept = await dig(udp, 'a.test')
  t.equal(kept.status, 'NOERROR', 'a client still allowed is answered')
  t.same(kept.answer.map(a => a.data), ['192.0.2.1'])
  await p.waitFor(l => l.message === 'dns client refused' && l['client.ip'] === '127.0.0.5')
  t.notOk(p.lines().some(l => l.message === 'dns.query' && (l.client as { ip?: string } | undefined)?.ip === '127.0.0.5' && (l.event as { action?: string }).action !== 'pass'),
    'a refused query is no decision')
  tcp.sock.destroy()
  t.equal(await p.stop(), 0)
})
