// Destinations the proxy never dials: every listener of this tunnelguard (admin API, DNS over TCP,
// sinkhole capture, the proxy itself), even inside allowDestinations; IPv4-translated IPv6 as the
// IPv4 it embeds; deprecated site-local IPv6. Loopback only: every refusal here happens before a dial.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import t from 'tap'
import { serve } from '../../src/serve.js'
import { exchange, fakeResolve, freePort, startOrigin, testProxy } from '../fixtures/origin.js'

const GET = (authority: string, path = '/') => `GET http://${authority}${path} HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`
const CONNECT = (authority: string) => `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`
const reason = (data: string) => /X-Tunnelguard-Reason: ([^\r]*)/i.exec(data)?.[1]

t.test('serve: the admin API, DNS and sinkhole listeners are refused through the proxy, as the proxy\'s own is', async t => {
  const origin = await startOrigin(t)
  const [dns, proxy, admin, sink] = await Promise.all([freePort(), freePort(), freePort(), freePort()])
  const dir = t.testdir({})
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, [
    `dns: { listen: ["127.0.0.1:${dns}"], upstreams: ["udp://127.0.0.1:9"], timeout: 300ms }`,
    `proxy: { listen: ["127.0.0.1:${proxy}"], allowDestinations: [127.0.0.0/8], connectPorts: [${[dns, proxy, admin, sink, origin.port].join(', ')}] }`,
    `admin: { listen: "127.0.0.1:${admin}" }`,
    `sinkhole: { listen: ["127.0.0.1:${sink}"] }`,
    'reload: { watch: false }', '',
  ].join('\n'))
  const out = new PassThrough()
  out.resume()
  const r = await serve({ configPath: cfg, stdout: out, signals: false, watchFiles: false })
  t.teardown(() => r.stop())
  const ok = await exchange(proxy, [GET(`127.0.0.1:${origin.port}`)])
  t.match(ok.data, /^HTTP\/1\.1 200 /, 'a loopback origin inside allowDestinations is served')
  for (const path of ['/metrics', '/api/clients', '/healthz']) {
    const a = await exchange(proxy, [GET(`127.0.0.1:${admin}`, path)])
    t.match(a.data, /^HTTP\/1\.1 403 /, `admin ${path}: 403`)
    t.equal(reason(a.data), `127.0.0.1:${admin} is one of tunnelguard's own listeners`)
    t.notMatch(a.data, /tunnelguard_|clients/, 'nothing of the admin API')
  }
  for (const [what, port] of [['admin', admin], ['DNS over TCP', dns], ['sinkhole capture', sink], ['the proxy', proxy]] as const) {
    const c = await exchange(proxy, [CONNECT(`127.0.0.1:${port}`)])
    t.match(c.data, /^HTTP\/1\.1 403 [\s\S]*own listeners/, `CONNECT to ${what}: 403`)
    const h = await exchange(proxy, [GET(`127.0.0.1:${port}`)])
    t.match(h.data, /^HTTP\/1\.1 403 [\s\S]*own listeners/, `GET to ${what}: 403`)
  }
  const mapped = await exchange(proxy, [GET(`[::ffff:127.0.0.1]:${admin}`, '/metrics')])
  t.match(mapped.data, /^HTTP\/1\.1 403 [\s\S]*own listeners/, 'in IPv4-mapped form too')
  const translated = await exchange(proxy, [GET(`[::ffff:0:7f00:1]:${admin}`, '/metrics')])
  t.match(translated.data, /^HTTP\/1\.1 403 [\s\S]*own listeners/, 'and in IPv4-translated form')
})

t.test('IPv4-translated addresses are decided as the IPv4 they embed; site-local fec0::/10 is refused', async t => {
  const p = await testProxy(t, {
    config: { proxy: { connectPorts: [443, 8080] } },
    resolve: fakeResolve({ 'siit.example': ['::ffff:0:7f00:1'], 'meta.example': ['::ffff:0:a9fe:a9fe'], 'sitelocal.example': ['fec0::1'] }),
  })
  const cases: [string, RegExp][] = [
    ['[::ffff:0:7f00:1]:8080', /::ffff:0:7f00:1 is loopback \(127\.0\.0\.0\/8\)/],
    ['[0:0:0:0:ffff:0:7f00:1]:8080', /is loopback/],
    ['[::ffff:0:a9fe:a9fe]:8080', /is link-local \(cloud metadata\)/],
    ['[fec0::1]:8080', /fec0::1 is site-local \(deprecated\) \(fec0::\/10\)/],
    ['[fedc:1::5]:8080', /is site-local/],
    ['siit.example:8080', /siit\.example resolves to ::ffff:0:7f00:1, which is loopback/],
    ['meta.example:8080', /link-local/],
    ['sitelocal.example:8080', /site-local/],
  ]
  for (const [authority, why] of cases) {
    const h = await exchange(p.port, [GET(authority)])
    t.match(h.data, /^HTTP\/1\.1 403 /, `GET ${authority}`)
    t.match(reason(h.data), why)
    const c = await exchange(p.port, [CONNECT(authority.replace(/:8080$/, ':443'))])
    t.match(c.data, /^HTTP\/1\.1 403 /, `CONNECT ${authority}`)
    t.match(reason(c.data), why)
  }
  t.match(p.ev.events.at(-1), { decision: { action: 'block', policy: 'proxy.allowDestinations' } })
})
