import t, { type Test } from 'tap'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { webhookHeaderProblem } from '../../src/config/webhook-headers.js'
import type { AlertResult } from '../../src/observe/alert-output.js'
import type { DecisionEvent } from '../../src/observe/types.js'
import { createWebhook } from '../../src/observe/webhook.js'
import { makeSnapshot } from '../fixtures/snapshot.js'

const snap = makeSnapshot()
const ev: DecisionEvent = { message: 'dns.query', decision: snap.policy.decide('10.0.0.1', 'a.ngrok.io', 'qname'), client: { ip: '10.0.0.1', port: 1 }, transport: 'udp', durationNs: 1 }

/** A loopback receiver: the headers of each POST it took (answered 204). */
async function receiver(t: Test) {
  const got: IncomingHttpHeaders[] = []
  const server = createServer((req, res) => { req.resume(); req.on('end', () => { got.push(req.headers); res.writeHead(204); res.end() }) })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => { server.close(() => r()); server.closeAllConnections() }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/tg`, got }
}

/** POST one alert with these headers (no retry): what became of it. */
async function deliver(url: string, headers: Record<string, string>): Promise<AlertResult> {
  let last: AlertResult = 'failed'
  const w = createWebhook({ url, headers, retries: 0, timeout: 500 }, () => {})
  w.send(ev, { client: { ip: '10.0.0.1' } }, r => { last = r })
  await w.idle()
  await w.close()
  return last
}

t.test('the header check passes exactly the names and values fetch sends: every character 0-0x17F, and one above', async t => {
  const rx = await receiver(t)
  const wrong: string[] = []
  const codes = [...Array.from({ length: 0x180 }, (_, i) => i), 0x20ac]
  for (const c of codes) {
    const ch = String.fromCharCode(c)
    for (const [name, value] of [[`x-${ch}-k`, 'v'], ['x-k', `a${ch}b`]] as const) {
      const passes = webhookHeaderProblem(name, value, new Map()) === undefined
      const sent = await deliver(rx.url, { [name]: value }) === 'sent'
      if (passes !== sent) wrong.push(`${JSON.stringify({ [name]: value })}: check ${passes ? 'passes' : 'refuses'}, fetch ${sent ? 'sends' : 'does not'}`)
    }
  }
  t.same(wrong, [], 'the check and fetch agree')
  t.ok(rx.got.length > 150, `the receiver got the ones that pass (${rx.got.length})`)
})

t.test('headers the POST sets itself: refused where fetch would not deliver or not send them; Content-Type may be replaced', async t => {
  const rx = await receiver(t)
  for (const [name, value] of [['Content-Length', '5'], ['Transfer-Encoding', 'chunked'], ['Keep-Alive', 'timeout=5'], ['Upgrade', 'websocket'], ['Expect', '100-continue'], ['Connection', 'upgrade']] as const) {
    t.match(webhookHeaderProblem(name, value, new Map()), new RegExp(`^${name} .*remove it`), `${name}: refused`)
    t.equal(await deliver(rx.url, { [name]: value }), 'dropped', `${name}: fetch would not deliver the alert`)
  }
  const before = rx.got.length
  t.match(webhookHeaderProblem('Host', 'other.example', new Map()), /^Host is set from alerts\.webhook\.url/)
  t.equal(await deliver(rx.url, { Host: 'other.example' }), 'sent')
  t.equal(rx.got[before]!.host, new URL(rx.url).host, 'fetch sent the URL\'s Host, not the one given: refused as misleading')
  for (const v of ['close', ' Keep-Alive ']) {
    t.equal(webhookHeaderProblem('Connection', v, new Map()), undefined, `Connection: ${v}`)
    t.equal(await deliver(rx.url, { Connection: v }), 'sent')
  }
  // a Content-Type of the config's own, in any case, replaces application/json (fetch would join two)
  t.equal(webhookHeaderProblem('Content-Type', 'application/json; charset=utf-8', new Map()), undefined)
  t.equal(await deliver(rx.url, { 'Content-Type': 'application/json; charset=utf-8', 'X-Key': '\tk é ' }), 'sent')
  t.equal(rx.got.at(-1)!['content-type'], 'application/json; charset=utf-8')
  t.equal(rx.got.at(-1)!['x-key'], 'k é', 'tab and obs-text pass; fetch trims the ends')
  t.equal(await deliver(rx.url, {}), 'sent')
  t.equal(rx.got.at(-1)!['content-type'], 'application/json', 'none given: application/json')
  const seen = new Map<string, string>()
  t.equal(webhookHeaderProblem('X-A', '1', seen), undefined)
  t.equal(webhookHeaderProblem('x-a', '2', seen), 'x-a is X-A again (header names are compared without case); give it once')
})
