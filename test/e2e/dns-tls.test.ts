// DNS-over-TLS upstreams (tls://, RFC 7858) as a user runs them: tunnelguard serve forwarding to
// unbound serving DoT on 127.0.0.1 with a certificate made here by openssl (a test CA, a server
// certificate for IP:127.0.0.1 and DNS:dot.test), asked by dig and kdig. Between the two, a TCP
// relay that sees every octet: TLS records only, never a name asked, one connection for all.
import t from 'tap'
import type { Test } from 'tap'
import { createSocket } from 'node:dgram'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { connect, createServer, type Socket } from 'node:net'
import { join } from 'node:path'
import dnsPacket from 'dns-packet'
import { dig, kdig } from '../fixtures/dig.js'
import { makeDotCerts } from '../fixtures/dot-certs.js'
import { startServe, type ServeProcess } from '../fixtures/serve-process.js'
import { wireName } from '../../src/dns/build.js'
import { freePort, startUnbound } from '../fixtures/unbound.js'

type Line = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any -- log lines


interface DotServer {
  /** unbound's DoT port. */
  readonly tlsPort: number
  /** unbound's log (log-queries): every question it was asked. */
  log(): string
  readonly certs: string
}

/** unbound answering the test zone over DNS-over-TLS on 127.0.0.1 (and plain DNS on its probe port). */
async function startDot(t: Test): Promise<DotServer> {
  const certs = makeDotCerts(fn => t.teardown(fn))
  const tlsPort = await freePort()
  const logfile = join(certs, 'unbound.log')
  await startUnbound(t, {
    server: [
      `interface: 127.0.0.1@${tlsPort}`, `tls-port: ${tlsPort}`,
      `tls-service-key: "${join(certs, 'server.key')}"`, `tls-service-pem: "${join(certs, 'server.pem')}"`,
      `logfile: "${logfile}"`, 'log-queries: yes', 'local-zone: "127.in-addr.arpa." nodefault',
      'local-data-ptr: "127.0.0.2 laptop-2.lan"',
    ],
  })
  return { tlsPort, certs, log: () => existsSync(logfile) ? readFileSync(logfile, 'utf8') : '' }
}

interface Relay {
  readonly port: number
  /** Connections made through it. */
  readonly connections: number
  /** Every octet each connection sent to the server, in order. */
  readonly sent: Buffer[][]
}

/** A TCP relay to 127.0.0.1:`to` that keeps what goes through it (what a wiretap between tunnelguard and its upstream sees). */
async function startRelay(t: Test, to: number): Promise<Relay> {
  const socks = new Set<Socket>()
  const sent: Buffer[][] = []
  const srv = createServer(c => {
    const mine: Buffer[] = []
    sent.push(mine)
    const up = connect({ host: '127.0.0.1', port: to })
    for (const s of [c, up]) { socks.add(s); s.on('error', () => {}); s.on('close', () => { c.destroy(); up.destroy() }) }
    c.on('data', d => { mine.push(Buffer.from(d)); up.write(d) })
    up.on('data', d => c.write(d))
  })
  await new Promise<void>(r => srv.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => { for (const s of socks) s.destroy(); return new Promise<void>(r => srv.close(() => r())) })
  return { port: (srv.address() as { port: number }).port, get connections() { return sent.length }, sent }
}

/** `tunnelguard serve` with `dns` (a YAML flow mapping's inside), the tunnels list blocked. */
async function serve(t: Test, dns: string, extra: readonly string[] = [], admin = 'null'): Promise<{ p: ServeProcess; server: { address: string; port: number }; dir: string }> {
  const dir = t.testdir({ 'tunnels.txt': 'ngrok.io\n' })
  const port = await freePort()
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, [
    `dns: { listen: ["127.0.0.1:${port}"], timeout: 1s, ${dns} }`,
    `admin: ${admin}`,
    'lists:',
    '  tunnels: { files: [tunnels.txt], action: block }',
    'log: { queries: all }',
    ...extra,
  ].join('\n'))
  const p = await startServe(t, ['--config', cfg])
  return { p, server: { address: '127.0.0.1', port }, dir }
}

/** A CONNECT through the proxy at `port`: the head of its response. */
function connectHead(port: number, target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () => s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`))
    let got = ''
    s.setTimeout(5000, () => { s.destroy(); reject(new Error(`no answer to CONNECT ${target}`)) })
    s.on('data', d => {
      got += String(d)
      if (got.includes('\r\n\r\n')) { s.destroy(); resolve(got) }
    })
    s.on('error', reject)
  })
}

/** `names` asked over UDP all at once (one socket); resolves with each name's rcode once all have answered (bounded by `ms`). */
function burst(port: number, names: readonly string[], ms = 5000): Promise<Map<string, string>> {
  return new Promise(resolve => {
    const s = createSocket('udp4')
    const got = new Map<string, string>()
    const done = () => { clearTimeout(timer); s.close(); resolve(got) }
    const timer = setTimeout(done, ms)
    s.on('message', m => {
      const d = dnsPacket.decode(m) as { rcode?: string; questions?: { name: string }[] }
      got.set(d.questions![0]!.name, d.rcode!)
      if (got.size === names.length) done()
    })
    names.forEach((name, i) => s.send(dnsPacket.encode({ type: 'query', id: i + 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] }), port, '127.0.0.1'))
  })
}

t.test('tls:// upstream: dig and kdig get answers over UDP and TCP; the wire carries TLS only, pipelined on one connection; a listed name never reaches it', async t => {
  const dot = await startDot(t)
  // kdig speaks DoT itself: the port is unbound's TLS port, and its certificate is the one made here
  const direct = await kdig({ address: '127.0.0.1', port: dot.tlsPort }, 'a.test', 'A', ['+tls', `+tls-ca=${join(dot.certs, 'ca.pem')}`, '+tls-hostname=dot.test'])
  t.same(direct.answer.map(a => a.data), ['192.0.2.1'], 'unbound answers DoT with the test certificate')
  const relay = await startRelay(t, dot.tlsPort)
  const url = `tls://127.0.0.1:${relay.port}#dot.test`
  writeFileSync(join(dot.certs, 'ca-copy.pem'), readFileSync(join(dot.certs, 'ca.pem')))
  const proxyPort = await freePort()
  const { p, server } = await serve(t, `upstreams: ["${url}"], tlsCaFile: ${join(dot.certs, 'ca-copy.pem')}`,
    [`proxy: { listen: ["127.0.0.1:${proxyPort}"] }`, 'clients: { ptr: true }'], '{ listen: "127.0.0.1:0" }')
  t.match(p.lines().find(l => l.message === 'started'), { 'tunnelguard.upstreams': [url] }, 'the started line names the upstream by its URL')

  const a = await dig(server, 'a.test', 'A')
  t.same([a.status, a.answer.map(r => r.data)], ['NOERROR', ['192.0.2.1']], 'dig over UDP')
  const aaaa = await dig(server, 'a.test', 'AAAA', ['+tcp'])
  t.same(aaaa.answer.map(r => r.data), ['2001:db8::1'], 'dig over TCP')
  const short = await kdig(server, 'short.test', 'A')
  t.same(short.answer.map(r => r.data), ['192.0.2.5'], 'kdig over UDP')
  const big = await kdig(server, 'big.test', 'TXT', ['+tcp'])
  t.equal(big.answer.length, 12, 'kdig over TCP: an answer far bigger than a UDP one, whole')
  await p.waitFor(l => l.message === 'dns.query' && (l as Line).dns.question.name === 'big.test')
  const lines = p.lines().filter(l => l.message === 'dns.query') as Line[]
  t.same(lines.map(l => [l.dns.question.name, l.tunnelguard.upstream]), [['a.test', url], ['a.test', url], ['short.test', url], ['big.test', url]],
    'each decision line names the tls:// upstream')

  // clients.ptr: the client's PTR lookup has an upstream pool of its own (a second connection)
  t.equal(relay.connections, 2, 'one connection for the four queries, one for the PTR lookup of 127.0.0.1')
  // twenty questions at once: all answered on the one connection (written without waiting for answers)
  const names = Array.from({ length: 20 }, (_, i) => `n${i}.pipe.test`)
  const rcodes = await burst(server.port, names)
  t.same([...rcodes.values()].filter(r => r !== 'NXDOMAIN'), [], 'every one answered (NXDOMAIN: not in the zone)')
  t.equal(rcodes.size, 20)
  for (const n of names) t.match(dot.log(), `${n}. A IN`, `unbound was asked ${n}`)
  t.equal(relay.connections, 2, 'no new connection for them')

  const blocked = await dig(server, 'x.ngrok.io', 'A')
  t.equal(blocked.status, 'NXDOMAIN', 'a listed name is blocked')
  t.notMatch(dot.log(), /ngrok/, 'and never asked upstream')

  // clients.ptr: the PTR lookup of a client goes through the same upstreams
  let withPtr: Line | undefined
  for (let i = 0; i < 40 && withPtr === undefined; i++) {
    await dig(server, 'a.test', 'A', ['-b', '127.0.0.2'])
    withPtr = (p.lines() as Line[]).find(l => l.message === 'dns.query' && l.client?.domain !== undefined)
    if (withPtr === undefined) await new Promise(r => setTimeout(r, 100))
  }
  t.match(withPtr, { client: { ip: '127.0.0.2', domain: 'laptop-2.lan' } }, 'the PTR name, asked over TLS')
  t.match(dot.log(), '2.0.0.127.in-addr.arpa. PTR IN')

  // the proxy's lookups too: c1.test is a CNAME into ngrok.io, found by asking the upstream
  const head = await connectHead(proxyPort, 'c1.test:443')
  t.match(head, /^HTTP\/1\.1 403 /, 'CONNECT to a name whose CNAME chain is listed: 403')
  t.match(dot.log(), 'c1.test. A IN', 'c1.test asked over TLS')

  const admin = (p.lines().find(l => l.message === 'started') as Line)['tunnelguard.admin'] as { port: number }
  const metrics = await fetch(`http://127.0.0.1:${admin.port}/metrics`).then(r => r.text())
  t.match(metrics, `tunnelguard_upstream_requests_total{upstream="${url}",outcome="ok"}`, '/metrics labels the upstream by its URL')
  t.equal(relay.connections, 3, 'three connections in all: the proxy\'s lookups have an upstream pool of their own too')
  for (const [i, c] of relay.sent.entries()) {
    const wire = Buffer.concat(c)
    t.equal(wire[0], 0x16, `connection ${i} starts with a TLS handshake record`)
    t.ok(wire.includes('dot.test'), 'and sends the server name (SNI)')
    // each name as a DNS message in the clear would carry it (length-prefixed labels): a short
    // string alone ("c1") turns up in a few KB of ciphertext by chance now and then
    for (const n of ['short.test', 'pipe.test', 'laptop-2.lan', 'in-addr.arpa', 'c1.test']) t.notOk(wire.includes(wireName(n)), `no "${n}" in clear on it`)
  }
  t.same(p.lines().filter(l => l['log.level'] === 'warn' && l.message !== 'dns.query' && l.message !== 'proxy.connect'), [], 'no warnings (the blocked CONNECT is an alert)')
})

t.test('tls://: a wrong server name or a CA not trusted fails over to the next upstream, else SERVFAIL within the timeout, said once with the reason', async t => {
  const dot = await startDot(t)
  const port = dot.tlsPort
  const ca = join(dot.certs, 'ca.pem')

  const wrongName = await serve(t, `upstreams: ["tls://127.0.0.1:${port}#wrong.test"], tlsCaFile: ${ca}`, ['proxy: { listen: [] }'])
  for (const name of ['short.test', 'ns.test', 'zero.test']) {
    const r = await dig(wrongName.server, name, 'A')
    t.equal(r.status, 'SERVFAIL', `${name}: SERVFAIL (dig waits 3 s; dns.timeout is 1 s)`)
  }
  await wrongName.p.waitFor(l => l.message === 'dns.query' && (l as Line).dns.question.name === 'zero.test')
  const said = wrongName.p.lines().filter(l => l.message === 'dns upstream TLS error')
  t.equal(said.length, 1, 'said once for the three')
  t.match(said[0], {
    'log.level': 'warn', 'tunnelguard.upstream': `tls://127.0.0.1:${port}#wrong.test`, 'tunnelguard.code': 'ERR_TLS_CERT_ALTNAME_INVALID',
    'error.message': /^Hostname\/IP does not match certificate's altnames: Host: wrong\.test\. is not in the cert's altnames: IP Address:127\.0\.0\.1, DNS:dot\.test/,
  })
  t.match(await wrongName.p.waitFor(l => l.message === 'dns upstream down'), { 'tunnelguard.upstream': `tls://127.0.0.1:${port}#wrong.test`, 'tunnelguard.failures': 3 }, 'marked down as for any failure')

  // another CA: unbound's certificate is not trusted; the same upstream without a server name is
  // checked against its IP (the certificate carries IP:127.0.0.1) with the right CA
  const untrusted = await serve(t, `upstreams: ["tls://127.0.0.1:${port}#dot.test"], tlsCaFile: ${join(dot.certs, 'other-ca.pem')}`, ['proxy: { listen: [] }'])
  t.equal((await kdig(untrusted.server, 'ns.test', 'A', ['+tcp'])).status, 'SERVFAIL', 'untrusted: SERVFAIL')
  t.match(await untrusted.p.waitFor(l => l.message === 'dns upstream TLS error'), { 'tunnelguard.code': 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'error.message': 'unable to verify the first certificate' })

  const failover = await serve(t, `upstreams: ["tls://127.0.0.1:${port}#wrong.test", "tls://127.0.0.1:${port}"], tlsCaFile: ${ca}`, ['proxy: { listen: [] }'])
  const ok = await dig(failover.server, 'a.test', 'A')
  t.same([ok.status, ok.answer.map(a => a.data)], ['NOERROR', ['192.0.2.1']], 'the second upstream answers')
  t.match(await failover.p.waitFor(l => l.message === 'dns.query'), { dns: { question: { name: 'a.test' } }, tunnelguard: { upstream: `tls://127.0.0.1:${port}` } },
    'checked against the IP when no server name is given')
  t.match(await failover.p.waitFor(l => l.message === 'dns upstream TLS error'), { 'tunnelguard.upstream': `tls://127.0.0.1:${port}#wrong.test`, 'tunnelguard.code': 'ERR_TLS_CERT_ALTNAME_INVALID' })

  // no private CA: Node's CAs do not know the test CA
  const noCa = await serve(t, `upstreams: ["tls://127.0.0.1:${port}#dot.test"]`, ['proxy: { listen: [] }'])
  t.equal((await dig(noCa.server, 'short.test', 'A')).status, 'SERVFAIL', 'no tlsCaFile: the test CA is not trusted')
  t.match(await noCa.p.waitFor(l => l.message === 'dns upstream TLS error'), { 'tunnelguard.code': 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' })

  // the DoT port speaks TLS only: a plain tcp:// upstream to it gets no DNS answer
  const plain = await serve(t, `upstreams: ["tcp://127.0.0.1:${port}"]`, ['proxy: { listen: [] }'])
  t.equal((await dig(plain.server, 'short.test', 'A')).status, 'SERVFAIL', 'tcp:// to the DoT port: SERVFAIL')
  t.notMatch(dot.log(), /(short|ns|zero)\.test\. A IN/, 'unbound was asked none of them (each handshake failed, or no TLS at all)')
})
