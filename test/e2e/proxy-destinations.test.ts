// Destinations the proxy never dials: IPv4-translated IPv6 as the IPv4 it embeds; deprecated
// site-local IPv6. Loopback only: every refusal here happens before a dial.
import t from 'tap'
import { exchange, fakeResolve, testProxy } from '../fixtures/origin.js'

const GET = (authority: string, path = '/') => `GET http://${authority}${path} HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`
const CONNECT = (authority: string) => `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`
const reason = (data: string) => /X-Tunnelguard-Reason: ([^\r]*)/i.exec(data)?.[1]

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
    ['siit.example:8080', /siit\.example resolves to ::ffff:0:7f00:1 is loopback/],
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
