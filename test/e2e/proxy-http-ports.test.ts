// proxy.httpPorts: plain HTTP only to the ports squid allows by default (Safe_ports, less the
// protocols not spoken here), never e.g. an SMTP server's port 25.
import { createServer } from 'node:net'
import t from 'tap'
import { exchange, fakeResolve, run, startOrigin, testProxy } from '../fixtures/origin.js'

const GET = (authority: string) => `GET http://${authority}/ HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`
const reason = (data: string) => /X-Tunnelguard-Reason: ([^\r]*)/i.exec(data)?.[1]

t.test('by default: 80, 443, 280, 488, 591, 777 and 1025-65535; port 25 is refused before any dial', async t => {
  const origin = await startOrigin(t)
  const resolve = fakeResolve({ 'mail.example': ['127.0.0.1'] })
  const p = await testProxy(t, {
    config: { proxy: { allowDestinations: ['127.0.0.0/8'] } },
    resolve,
    lists: { tunnels: { action: 'alert', patterns: ['tunnel.example'] } },
  })
  const r = await run('curl', ['-sS', '-i', '-x', `http://127.0.0.1:${p.port}`, '--data', 'HELO x', 'http://127.0.0.1:25/'])
  t.match(r.stdout, /^HTTP\/1\.1 403 /)
  const why = 'plain HTTP to port 25 is not allowed (proxy.httpPorts: 80, 443, 280, 488, 591, 777, 1025-65535)'
  t.equal(reason(r.stdout), why)
  t.match(p.ev.events.at(-1), {
    message: 'proxy.http', destination: { port: 25 },
    decision: { action: 'block', policy: 'proxy.httpPorts', reason: why, where: 'url', name: '127.0.0.1' },
  })
  const named = await exchange(p.port, [GET('mail.example:25')])
  t.match(named.data, /^HTTP\/1\.1 403 /)
  t.equal(p.ev.events.at(-1)!.decision.policy, 'proxy.httpPorts')
  t.same(resolve.calls, [], 'not even resolved')
  const listed = await exchange(p.port, [GET('x.tunnel.example:22')])
  t.match(listed.data, /^HTTP\/1\.1 403 /)
  t.match(p.ev.events.at(-1), { decision: { action: 'block', policy: 'proxy.httpPorts', list: 'tunnels', entry: { pattern: 'tunnel.example' } } },
    'an alerted name refused for its port keeps its list entry')
  for (const port of [21, 70, 210, 1024]) {
    t.match((await exchange(p.port, [GET(`127.0.0.1:${port}`)])).data, /^HTTP\/1\.1 403 [\s\S]*proxy\.httpPorts/, `port ${port}`)
  }
  const ok = await run('curl', ['-sS', '-i', '-x', `http://127.0.0.1:${p.port}`, `http://127.0.0.1:${origin.port}/`])
  t.match(ok.stdout, /^HTTP\/1\.1 200 /, `a port in 1025-65535 (${origin.port}) is served`)
  t.equal(origin.requests.length, 1)
})

t.test('proxy.httpPorts set: single ports and ranges', async t => {
  const origin = await startOrigin(t)
  let smtp = 0
  const sink = createServer(s => { smtp++; s.destroy() })
  await new Promise<void>(r => sink.listen(0, '127.0.0.1', r))
  t.teardown(() => sink.close())
  const sinkPort = (sink.address() as { port: number }).port
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'], httpPorts: [80, `${origin.port}-${origin.port}`] } } })
  const refused = await exchange(p.port, [`POST http://127.0.0.1:${sinkPort}/ HTTP/1.1\r\nHost: 127.0.0.1:${sinkPort}\r\nContent-Length: 6\r\n\r\nHELO x`])
  t.match(refused.data, /^HTTP\/1\.1 403 /)
  t.equal(reason(refused.data), `plain HTTP to port ${sinkPort} is not allowed (proxy.httpPorts: 80, ${origin.port}-${origin.port})`)
  t.equal(smtp, 0, 'never dialled')
  t.match((await exchange(p.port, [GET(`127.0.0.1:${origin.port}`)])).data, /^HTTP\/1\.1 200 /)
})
