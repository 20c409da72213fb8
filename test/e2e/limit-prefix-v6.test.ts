// An IPv6 host that rotates its addresses in its /64 is one client to the per-client limits, by
// default (limits.ipv6Prefix: 64): `tunnelguard serve`, kdig and raw connections over real
// sockets from several addresses of one /64. Loopback IPv6 is ::1 alone, so this runs in a
// network namespace of its own (unshare -rn: this host's network is not touched), with the
// addresses added to its loopback; where no namespace can be made, it fails as root and passes
// saying why otherwise.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { netns } from '../fixtures/netns.js'
import { startServe } from '../fixtures/serve-process.js'
import { parseDig } from '../fixtures/dig.js'

const SERVER = '2001:db8:1:2::1'
const HOST = ['2001:db8:1:2::a', '2001:db8:1:2::b', '2001:db8:1:2:ffff::c', '2001:db8:1:2::d']   // one host's addresses: one /64
const OTHER = '2001:db8:1:3::a'                                                               // the next /64
const CANARY = 'use-application-dns.net'                    // answered by tunnelguard itself (NXDOMAIN)
const DNS_PORT = 5300
const PROXY_PORT = 3128

/** Connect from each address in turn (each once the one before is in), hold them all for a moment; what each got. */
const CONNS = `
import { connect } from 'node:net'
const [host, port, ...froms] = process.argv.slice(2)
const out = []
for (const from of froms) {
  const r = { from, data: '', closed: false }
  out.push(r)
  const s = connect({ host, port: Number(port), localAddress: from })
  s.on('data', d => { r.data += d })
  s.on('error', () => {})
  s.on('close', () => { r.closed = true })
  await new Promise(res => { s.once('connect', res); s.once('close', res) })
  await new Promise(res => setTimeout(res, 150))
}
await new Promise(res => setTimeout(res, 300))
console.log(JSON.stringify(out))
process.exit(0)
`

const ns = await netns(t, [SERVER, ...HOST, OTHER])

t.test('rotating addresses in a /64 gets no fresh budget (the default /64); a reload to /128 counts each address', async t => {
  if (typeof ns === 'string') {
    // the README's test command runs as root (apt-get): there the namespace must be made
    t.not(process.getuid?.(), 0, `no network namespace, though the tests run as root: ${ns}`)
    return
  }
  const dir = t.testdir({ 'conns.mjs': CONNS })
  const cfg = join(dir, 'tg.yaml')
  const config = (limits: string) => [
    'dns:',
    `  listen: ["[${SERVER}]:${DNS_PORT}"]`,
    `  upstreams: ["udp://[${SERVER}]:9"]`,
    '  allowClients: ["2001:db8::/32"]',
    '  rateLimit: { qps: 0.001, burst: 2 }',
    '  tcp: { maxConnectionsPerClient: 2 }',
    `proxy: { listen: ["[${SERVER}]:${PROXY_PORT}"], maxConnectionsPerAddress: 2 }`,
    'admin: null',
    'reload: { watch: false }',
    'log: { queries: all }',
    limits,
  ].join('\n')
  writeFileSync(cfg, config(''))                              // limits: the defaults
  const tg = await startServe(t, ['--config', cfg], ns.via)
  const ask = async (from: string) =>
    parseDig((await ns.exec('kdig', [`@${SERVER}`, '-p', String(DNS_PORT), '-b', from, CANARY, 'A', '+retry=0', '+time=1'])).stdout).status
  const conns = async (port: number, froms: readonly string[]) =>
    JSON.parse((await ns.exec(process.execPath, [join(dir, 'conns.mjs'), SERVER, String(port), ...froms])).stdout) as { from: string; data: string; closed: boolean }[]
  const warned = (msg: string) => tg.lines().filter(l => l.message === msg)

  // DNS over UDP: dns.rateLimit
  const status = []
  for (const from of HOST) status.push(await ask(from))
  t.same(status, ['NXDOMAIN', 'NXDOMAIN', 'NONE', 'NONE'], 'four addresses, one burst of 2: the rest dropped')
  t.equal(await ask(OTHER), 'NXDOMAIN', 'the next /64 is another client')
  const limited = await tg.waitFor(l => l.message === 'dns client rate limited')
  t.match(limited, { 'client.ip': HOST[2], 'tunnelguard.client_prefix': '2001:db8:1:2::/64', 'tunnelguard.dropped': 1 }, 'the line names the address and its /64')
  await tg.waitFor(l => l.message === 'dns.query' && (l.client as { ip: string }).ip === OTHER)   // lines go out every few ms
  const decisions = tg.lines().filter(l => l.message === 'dns.query').map(l => (l.client as { ip: string }).ip)
  t.same(decisions, [HOST[0], HOST[1], OTHER], 'decision lines name each exact address')

  // DNS over TCP: dns.tcp.maxConnectionsPerClient
  const tcp = await conns(DNS_PORT, [...HOST.slice(0, 3), OTHER])
  t.same(tcp.map(c => c.closed), [false, false, true, false], 'the third connection of the /64 is reset at accept; the next /64 gets in')
  t.match(await tg.waitFor(l => l.message === 'dns tcp connection refused: too many from this client'), { 'client.ip': HOST[2], 'tunnelguard.client_prefix': '2001:db8:1:2::/64', 'tunnelguard.refused': 1 })

  // the proxy: proxy.maxConnectionsPerAddress
  const proxy = await conns(PROXY_PORT, [...HOST.slice(0, 3), OTHER])
  t.same(proxy.map(c => c.data.slice(0, 12)), ['', '', 'HTTP/1.1 503', ''], 'the third of the /64 gets 503')
  t.match(proxy[2]!.data, 'too many connections from 2001:db8:1:2::/64 (proxy.maxConnectionsPerAddress 2)')
  t.match(await tg.waitFor(l => l.message === 'proxy.overload'), { 'client.ip': HOST[2], 'tunnelguard.client_prefix': '2001:db8:1:2::/64', 'tunnelguard.refused': 1 })
  await tg.waitFor(l => l.message === 'proxy.close' && l['client.ip'] === HOST[0])
  t.same(tg.lines().filter(l => l.message === 'proxy.close').map(l => l['client.ip']).sort(), [HOST[0], HOST[1], OTHER].sort(), 'the close lines name each exact address')

  // a reload to /128: each address counts alone
  writeFileSync(cfg, config('limits: { ipv6Prefix: 128 }'))
  tg.child.kill('SIGHUP')
  await tg.waitFor(l => l.message === 'reloaded')
  const after = []
  for (const from of [...HOST, ...HOST]) after.push(await ask(from))
  t.same(after, new Array(8).fill('NXDOMAIN'), 'two queries from each of the four addresses: each its own burst of 2')
  const proxyAfter = await conns(PROXY_PORT, HOST.slice(0, 3))
  t.same(proxyAfter.map(c => c.data), ['', '', ''], 'three connections of the /64, each address under its own count')
  // the drop held back in the first window (HOST[3]'s, its /64 told of already) is said at the
  // window's end, in a line of its own; none after the reload
  await tg.waitFor(l => l.message === 'dns client rate limited' && l['client.ip'] === HOST[3], 15_000)
  t.same(warned('dns client rate limited').map(l => [l['client.ip'], l['tunnelguard.dropped']]), [[HOST[2], 1], [HOST[3], 1]], 'each drop in one line')
  t.equal(warned('proxy.overload').length, 1)
  t.equal(await tg.stop(), 0)
})
