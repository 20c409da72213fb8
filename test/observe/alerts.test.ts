import t, { type Test } from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createReloadableAlerts, dedupAlerts, dedupKey, type AlertOutput } from '../../src/observe/alerts.js'
import type { DecisionEvent } from '../../src/observe/types.js'
import { createWebhook } from '../../src/observe/webhook.js'
import { makeSnapshot } from '../fixtures/snapshot.js'

const snap = makeSnapshot()
const ev = (ip: string, name: string): DecisionEvent => ({
  message: 'dns.query', decision: snap.policy.decide(ip, name, 'qname'), client: { ip, port: 1 }, transport: 'udp', durationNs: 1,
})

t.test('dedup per client and entry per window', async t => {
  let now = 0
  const sent: string[] = []
  const out: AlertOutput = { send: e => { sent.push(`${e.client.ip} ${e.decision.name}`) }, close: async () => { sent.push('closed') } }
  const sink = dedupAlerts([out], () => 60_000, () => now)
  sink.alert(ev('10.0.0.1', 'a.ngrok.io'), {})
  sink.alert(ev('10.0.0.1', 'b.ngrok.io'), {})          // same entry ngrok.io: deduplicated
  sink.alert(ev('10.0.0.2', 'a.ngrok.io'), {})          // another client
  sink.alert(ev('10.0.0.1', 'x.trycloudflare.com'), {}) // another entry
  now = 60_000
  sink.alert(ev('10.0.0.1', 'c.ngrok.io'), {})          // window over
  await sink.close()
  t.same(sent, ['10.0.0.1 a.ngrok.io', '10.0.0.2 a.ngrok.io', '10.0.0.1 x.trycloudflare.com', '10.0.0.1 c.ngrok.io', 'closed'])
  t.equal(dedupKey(ev('10.0.0.1', 'bad..x')), '10.0.0.1||bad..x', 'an unparseable name keys on itself')
})

t.test('alert outputs: nothing configured is not active; each output makes it active', async t => {
  const none = createReloadableAlerts({ onError: () => {} })
  none.configure({})
  t.equal(none.active, false)
  await none.close()
  const s = createReloadableAlerts({ onError: () => {} })
  s.configure({ syslog: { url: 'udp://127.0.0.1:9' }, window: 0 })
  t.equal(s.active, true)
  await s.close()
  const w = createReloadableAlerts({ onError: () => {}, clock: () => 0 })
  w.configure({ webhook: { url: 'http://127.0.0.1:9/' } })
  t.equal(w.active, true)
  await w.close()
})

interface Hook { port: number; bodies: Record<string, unknown>[]; statuses: number[] }
async function hookServer(t: Test, respond: (n: number, req: IncomingMessage, res: ServerResponse) => void): Promise<Hook> {
  const h: Hook = { port: 0, bodies: [], statuses: [] }
  const server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', c => { body += c })
    req.on('end', () => {
      h.bodies.push({ method: req.method, type: req.headers['content-type'], ...JSON.parse(body) })
      respond(h.bodies.length, req, res)
    })
  })
  server.on('error', () => {})
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  h.port = (server.address() as AddressInfo).port
  t.teardown(() => new Promise<void>(r => { server.close(() => r()); server.closeAllConnections() }))
  return h
}

t.test('webhook: one JSON POST per alert, in order, with retries on 5xx', async t => {
  const hook = await hookServer(t, (n, _req, res) => { res.writeHead(n === 2 ? 503 : 204); res.end() })
  const errors: unknown[] = []
  const w = createWebhook({ url: `http://127.0.0.1:${hook.port}/alerts`, backoff: 1, headers: { 'x-token': 'k' } }, (m, f) => errors.push({ m, ...f }), () => Date.UTC(2026, 0, 1))
  w.send(ev('10.0.0.1', 'a.ngrok.io'), { message: 'dns.query', client: { ip: '10.0.0.1' } })
  w.send(ev('10.0.0.2', 'b.ngrok.io'), { message: 'dns.query', client: { ip: '10.0.0.2' } })
  await w.idle()
  t.same(hook.bodies.map(b => (b.client as { ip: string }).ip), ['10.0.0.1', '10.0.0.2', '10.0.0.2'], 'the 503 was retried')
  t.match(hook.bodies[0], { method: 'POST', type: 'application/json', '@timestamp': '2026-01-01T00:00:00.000Z', message: 'dns.query' })
  t.match(errors, [{ m: 'alert webhook refused', status: 503 }])
  t.equal(w.dropped, 0)
  await w.close()
  await w.idle()
})

t.test('webhook: 4xx is not retried; retries run out; queue bound', async t => {
  const hook = await hookServer(t, (n, _req, res) => { res.writeHead(n === 1 ? 400 : 500); res.end() })
  const w = createWebhook({ url: `http://127.0.0.1:${hook.port}/`, backoff: 1, retries: 2, maxQueue: 2 }, () => {})
  for (let i = 0; i < 4; i++) w.send(ev(`10.0.0.${i}`, 'a.ngrok.io'), { i })
  t.equal(w.dropped, 1, 'alert 3 is dropped at once: 0 in flight, 1 and 2 queued')
  await w.idle()
  t.same(hook.bodies.map(b => b.i), [0, 1, 1, 1, 2, 2, 2], '0 refused once; 1 and 2 tried 3 times each')
  t.equal(w.dropped, 4)
  await w.close()
  w.send(ev('10.0.0.9', 'a.ngrok.io'), {})
  t.equal(hook.bodies.length, 7, 'nothing sent after close')
})

t.test('webhook: connection refused, then close during backoff', async t => {
  const hook = await hookServer(t, (_n, _req, res) => { res.end() })
  const errors: string[] = []
  const w = createWebhook({ url: `http://127.0.0.1:1/`, backoff: 60_000, timeout: 2000 }, m => errors.push(m))
  w.send(ev('10.0.0.1', 'a.ngrok.io'), {})
  for (let i = 0; i < 100 && errors.length === 0; i++) await new Promise(r => setTimeout(r, 20))
  t.same(errors, ['alert webhook failed'])
  await w.close()
  t.equal(w.dropped, 1)
  t.equal(hook.bodies.length, 0)
})

t.test('webhook: close while a request is in flight', async t => {
  let release: (() => void) | undefined
  const hook = await hookServer(t, (_n, _req, res) => { release = () => res.end() })
  const errors: string[] = []
  const w = createWebhook({ url: `http://127.0.0.1:${hook.port}/` }, m => errors.push(m))
  w.send(ev('10.0.0.1', 'a.ngrok.io'), {})
  w.send(ev('10.0.0.2', 'a.ngrok.io'), {})
  for (let i = 0; i < 100 && !release; i++) await new Promise(r => setTimeout(r, 20))
  await w.close()
  release?.()
  t.equal(hook.bodies.length, 1, 'the queued one was dropped')
  t.same(errors, [], 'an abort on close is not reported')
})
