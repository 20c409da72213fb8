import t, { type Test } from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createReloadableAlerts, dedupAlerts, dedupKey, type AlertOutput, type AlertOutputName, type AlertResult } from '../../src/observe/alerts.js'
import { alertFields, errorText } from '../../src/observe/alert-output.js'
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
  const out: AlertOutput = { name: 'webhook', send: e => { sent.push(`${e.client.ip} ${e.decision.name}`) }, close: async () => { sent.push('closed') } }
  const sink = dedupAlerts(() => [out], () => 60_000, () => now)
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

t.test('dedup: an alert an output gave up does not hold that output\'s window; results are counted per output', async t => {
  let window = 60_000
  const reports: { name: string; ip: string; report: (r: AlertResult) => void }[] = []
  const output = (name: AlertOutputName): AlertOutput => ({
    name, send: (e, _r, report) => { reports.push({ name, ip: e.client.ip, report }) }, close: async () => {},
  })
  const counted: string[] = []
  const sink = dedupAlerts(() => [output('webhook'), output('syslog')], () => window, () => 0, (o, r) => counted.push(`${o} ${r}`))
  const sentTo = () => reports.map(r => `${r.name} ${r.ip}`)
  sink.alert(ev('10.0.0.1', 'a.ngrok.io'), {})
  t.same(sentTo(), ['webhook 10.0.0.1', 'syslog 10.0.0.1'])
  reports[0]!.report('failed')
  reports[0]!.report('dropped')                          // the webhook gave it up
  reports[1]!.report('sent')                             // syslog delivered it
  sink.alert(ev('10.0.0.1', 'b.ngrok.io'), {})
  t.same(sentTo().slice(2), ['webhook 10.0.0.1'], 'the same client and entry again: to the webhook, which dropped it, only')
  reports[2]!.report('sent')
  sink.alert(ev('10.0.0.1', 'c.ngrok.io'), {})
  t.equal(reports.length, 3, 'delivered now: the webhook\'s window holds too')
  t.same(counted, ['webhook failed', 'webhook dropped', 'syslog sent', 'webhook sent'])

  // a late result for an alert whose window was taken over by a newer one leaves the newer one's
  window = 0
  sink.alert(ev('10.0.0.2', 'a.ngrok.io'), {})            // reports 3, 4
  sink.alert(ev('10.0.0.2', 'a.ngrok.io'), {})            // reports 5, 6: the window is 0
  window = 60_000
  reports[3]!.report('dropped')
  sink.alert(ev('10.0.0.2', 'a.ngrok.io'), {})
  t.equal(reports.length, 7, 'the newer alert still holds the window')
  reports[5]!.report('dropped')
  sink.alert(ev('10.0.0.2', 'a.ngrok.io'), {})
  t.same(sentTo().slice(7), ['webhook 10.0.0.2'], 'the newer one given up: the next goes out')
})

t.test('dedup: alerts that came while the first was still being tried are not lost when it is given up: the latest goes out then', async t => {
  const reports: { ip: string; name: string; report: (r: AlertResult) => void }[] = []
  const out: AlertOutput = { name: 'webhook', send: (e, _r, report) => { reports.push({ ip: e.client.ip, name: e.decision.name, report }) }, close: async () => {} }
  let now = 0
  const sink = dedupAlerts(() => [out], () => 60_000, () => now)
  sink.alert(ev('10.0.0.1', 'a.ngrok.io'), {})
  reports[0]!.report('failed')                           // tried; a retry is pending
  now = 100
  sink.alert(ev('10.0.0.1', 'b.ngrok.io'), {})
  sink.alert(ev('10.0.0.1', 'c.ngrok.io'), {})
  t.equal(reports.length, 1, 'held by the window while the first is tried')
  now = 200
  reports[0]!.report('dropped')                          // given up
  t.same(reports.map(r => r.name), ['a.ngrok.io', 'c.ngrok.io'], 'at the give-up, the latest held one is sent')
  reports[1]!.report('sent')
  sink.alert(ev('10.0.0.1', 'd.ngrok.io'), {})
  t.equal(reports.length, 2, 'delivered: the window holds')
  // one that came while the first was tried and delivered: held, and dropped with the window (it was delivered once)
  sink.alert(ev('10.0.0.3', 'a.ngrok.io'), {})
  reports[2]!.report('failed')
  sink.alert(ev('10.0.0.3', 'b.ngrok.io'), {})
  reports[2]!.report('sent')
  t.equal(reports.length, 3, 'the first delivered: nothing more for its window')
  // a given-up alert with nothing held sends nothing
  sink.alert(ev('10.0.0.4', 'a.ngrok.io'), {})
  reports[3]!.report('dropped')
  t.equal(reports.length, 4)
})

t.test('dedupAlerts counts nothing when no counter is given', async t => {
  const results: AlertResult[] = []
  const sink = dedupAlerts(() => [{ name: 'syslog', send: (_e, _r, report) => { report('sent'); results.push('sent') }, close: async () => {} }], () => 0, () => 0)
  sink.alert(ev('10.0.0.1', 'a.ngrok.io'), {})
  t.same(results, ['sent'])
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

/** A port nothing listens on: connecting to it is refused. */
async function closedPort(): Promise<number> {
  const s = createServer()
  await new Promise<void>(r => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>(r => s.close(() => r()))
  return port
}

/** Every result `report` hears, per alert (by its client). */
function results() {
  const by: Record<string, AlertResult[]> = {}
  return { by, report: (ip: string) => (r: AlertResult) => { (by[ip] ??= []).push(r) } }
}

t.test('webhook: one JSON POST per alert, in order, with retries on 5xx', async t => {
  const hook = await hookServer(t, (n, _req, res) => { res.writeHead(n === 2 ? 503 : 204); res.end() })
  const errors: unknown[] = []
  const rs = results()
  const w = createWebhook({ url: `http://127.0.0.1:${hook.port}/alerts`, backoff: 1, headers: { 'x-token': 'k' } }, (m, f) => errors.push({ m, ...f }), () => Date.UTC(2026, 0, 1))
  t.equal(w.name, 'webhook')
  w.send(ev('10.0.0.1', 'a.ngrok.io'), { message: 'dns.query', client: { ip: '10.0.0.1' } }, rs.report('10.0.0.1'))
  w.send(ev('10.0.0.2', 'b.ngrok.io'), { message: 'dns.query', client: { ip: '10.0.0.2' } }, rs.report('10.0.0.2'))
  await w.idle()
  t.same(hook.bodies.map(b => (b.client as { ip: string }).ip), ['10.0.0.1', '10.0.0.2', '10.0.0.2'], 'the 503 was retried')
  t.match(hook.bodies[0], { method: 'POST', type: 'application/json', '@timestamp': '2026-01-01T00:00:00.000Z', 'ecs.version': '8.11.0', message: 'dns.query' })
  t.same(errors, [{
    m: 'alert webhook failed', url: `http://127.0.0.1:${hook.port}/alerts`, 'client.ip': '10.0.0.2', 'rule.ruleset': 'ngrok', 'rule.name': 'ngrok.io',
    attempt: 1, attempts: 4, error: 'HTTP 503', status: 503,
  }], 'the failed attempt says what failed, for which alert, and which attempt of how many')
  t.same(rs.by, { '10.0.0.1': ['sent'], '10.0.0.2': ['failed', 'sent'] })
  t.equal(w.dropped, 0)
  await w.close()
  await w.idle()
})

t.test('webhook: user:password in the URL is sent as Basic authorization, and never shown', async t => {
  const auths: (string | undefined)[] = []
  const hook = await hookServer(t, (n, req, res) => { auths.push(req.headers.authorization); res.writeHead(n === 1 ? 503 : 204); res.end() })
  const errors: Record<string, unknown>[] = []
  const w = createWebhook({ url: `http://siem%40corp:s3cr%3At@127.0.0.1:${hook.port}/hook?token=abc&x=1`, backoff: 1 }, (m, f) => errors.push({ m, ...f }))
  w.send(ev('10.0.0.1', 'a.ngrok.io'), {}, () => {})
  await w.idle()
  await w.close()
  t.same(auths, [1, 2].map(() => `Basic ${Buffer.from('siem@corp:s3cr:t').toString('base64')}`), 'decoded user and password, on every attempt')
  t.equal(hook.bodies.length, 2, 'delivered on the retry')
  t.equal(errors.length, 1)
  t.equal(errors[0]!.url, `http://siem%40corp:***@127.0.0.1:${hook.port}/hook?token=***&x=***`, 'the failure line hides the password and the query values')
  t.notMatch(JSON.stringify(errors), /s3cr|abc/)
  // an Authorization header of the config's own wins over the URL's credentials
  const seen: (string | undefined)[] = []
  const hook2 = await hookServer(t, (_n, req, res) => { seen.push(req.headers.authorization); res.writeHead(204); res.end() })
  const w2 = createWebhook({ url: `http://u:p@127.0.0.1:${hook2.port}/`, headers: { Authorization: 'Bearer tok' } }, () => {})
  w2.send(ev('10.0.0.1', 'a.ngrok.io'), {}, () => {})
  await w2.idle()
  await w2.close()
  t.same(seen, ['Bearer tok'])
})

t.test('webhook: 4xx is not retried; retries run out; queue bound; each alert given up is a line', async t => {
  const hook = await hookServer(t, (n, _req, res) => { res.writeHead(n === 1 ? 400 : 500); res.end() })
  const errors: Record<string, unknown>[] = []
  const rs = results()
  const w = createWebhook({ url: `http://127.0.0.1:${hook.port}/`, backoff: 1, retries: 2, maxQueue: 2 }, (m, f) => errors.push({ m, ...f }))
  for (let i = 0; i < 4; i++) w.send(ev(`10.0.0.${i}`, 'a.ngrok.io'), { i }, rs.report(`10.0.0.${i}`))
  t.equal(w.dropped, 1, 'alert 3 is dropped at once: 0 in flight, 1 and 2 queued')
  t.match(errors, [{ m: 'alert webhook gave up', 'client.ip': '10.0.0.3', reason: 'queue full (2)', attempts: 0, dropped: 1 }])
  await w.idle()
  t.same(hook.bodies.map(b => b.i), [0, 1, 1, 1, 2, 2, 2], '0 refused once; 1 and 2 tried 3 times each')
  t.equal(w.dropped, 4)
  const gaveUp = errors.filter(e => e.m === 'alert webhook gave up')
  t.match(gaveUp, [
    { 'client.ip': '10.0.0.3' },
    { 'client.ip': '10.0.0.0', reason: 'refused', error: 'HTTP 400', attempts: 1, dropped: 2 },
    { 'client.ip': '10.0.0.1', reason: 'retries exhausted', error: 'HTTP 500', attempts: 3, dropped: 3 },
    { 'client.ip': '10.0.0.2', reason: 'retries exhausted', error: 'HTTP 500', attempts: 3, dropped: 4 },
  ])
  t.same(errors.filter(e => e.m === 'alert webhook failed' && e['client.ip'] === '10.0.0.1').map(e => `${e.attempt}/${e.attempts}`), ['1/3', '2/3', '3/3'])
  t.same(rs.by, {
    '10.0.0.0': ['failed', 'dropped'], '10.0.0.1': ['failed', 'failed', 'failed', 'dropped'],
    '10.0.0.2': ['failed', 'failed', 'failed', 'dropped'], '10.0.0.3': ['dropped'],
  })
  await w.close()
  w.send(ev('10.0.0.9', 'a.ngrok.io'), {}, rs.report('10.0.0.9'))
  t.equal(hook.bodies.length, 7, 'nothing sent after close')
  t.same(rs.by['10.0.0.9'], ['dropped'], 'an alert sent after close is given up')
  t.match(errors.at(-1), { m: 'alert webhook gave up', 'client.ip': '10.0.0.9', reason: 'closed', dropped: 5 })
})

t.test('webhook: connection refused names its cause; close during backoff gives the alert up', async t => {
  const port = await closedPort()
  const errors: Record<string, unknown>[] = []
  const rs = results()
  const w = createWebhook({ url: `http://127.0.0.1:${port}/`, backoff: 60_000, timeout: 2000 }, (m, f) => errors.push({ m, ...f }))
  w.send(ev('10.0.0.1', 'a.ngrok.io'), {}, rs.report('10.0.0.1'))
  for (let i = 0; i < 100 && errors.length === 0; i++) await new Promise(r => setTimeout(r, 20))
  t.same(errors, [{
    m: 'alert webhook failed', url: `http://127.0.0.1:${port}/`, 'client.ip': '10.0.0.1', 'rule.ruleset': 'ngrok', 'rule.name': 'ngrok.io',
    attempt: 1, attempts: 4, error: `connect ECONNREFUSED 127.0.0.1:${port}`,
  }], 'the cause, not fetch\'s "fetch failed"')
  await w.close()
  t.equal(w.dropped, 1)
  t.match(errors[1], { m: 'alert webhook gave up', 'client.ip': '10.0.0.1', reason: 'closed', attempts: 1, error: `connect ECONNREFUSED 127.0.0.1:${port}`, dropped: 1 })
  t.same(rs.by, { '10.0.0.1': ['failed', 'dropped'] })
})

t.test('webhook: a timeout is a failed attempt', async t => {
  const hook = await hookServer(t, () => {})   // never answers
  const errors: Record<string, unknown>[] = []
  const w = createWebhook({ url: `http://127.0.0.1:${hook.port}/`, retries: 0, timeout: 100 }, (m, f) => errors.push({ m, ...f }))
  w.send(ev('10.0.0.1', 'a.ngrok.io'), {}, () => {})
  await w.idle()
  t.match(errors, [
    { m: 'alert webhook failed', attempt: 1, attempts: 1, error: /timeout/ },
    { m: 'alert webhook gave up', reason: 'retries exhausted', attempts: 1, error: /timeout/, dropped: 1 },
  ])
  await w.close()
})

t.test('webhook: close while a request is in flight', async t => {
  let release: (() => void) | undefined
  const hook = await hookServer(t, (_n, _req, res) => { release = () => res.end() })
  const errors: Record<string, unknown>[] = []
  const rs = results()
  const w = createWebhook({ url: `http://127.0.0.1:${hook.port}/` }, (m, f) => errors.push({ m, ...f }))
  w.send(ev('10.0.0.1', 'a.ngrok.io'), {}, rs.report('10.0.0.1'))
  w.send(ev('10.0.0.2', 'a.ngrok.io'), {}, rs.report('10.0.0.2'))
  for (let i = 0; i < 100 && !release; i++) await new Promise(r => setTimeout(r, 20))
  await w.close()
  release?.()
  t.equal(hook.bodies.length, 1, 'the queued one was dropped')
  t.notOk(errors.some(e => e.m === 'alert webhook failed'), 'an abort on close is not a failed attempt')
  t.match(errors, [
    { m: 'alert webhook gave up', 'client.ip': '10.0.0.2', reason: 'closed', attempts: 0 },
    { m: 'alert webhook gave up', 'client.ip': '10.0.0.1', reason: 'closed', attempts: 1 },
  ], 'both alerts given up, each a line')
  t.same(rs.by, { '10.0.0.1': ['dropped'], '10.0.0.2': ['dropped'] })
})

t.test('errorText: the innermost cause, each address of a failed connection, something for an empty message', async t => {
  t.equal(errorText(new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:9') })), 'connect ECONNREFUSED 127.0.0.1:9')
  t.equal(errorText(new Error('a', { cause: new Error('b', { cause: new Error('c') }) })), 'c')
  const both = new AggregateError([new Error('connect ECONNREFUSED ::1:9'), new Error('connect ECONNREFUSED 127.0.0.1:9')], '')
  t.equal(errorText(new TypeError('fetch failed', { cause: both })), 'connect ECONNREFUSED ::1:9; connect ECONNREFUSED 127.0.0.1:9')
  t.equal(errorText(Object.assign(new AggregateError([], ''), { code: 'ECONNREFUSED' })), 'ECONNREFUSED')
  t.equal(errorText(new RangeError('')), 'RangeError')
  t.equal(errorText(new Error('x', { cause: 'a string' })), 'a string')
  t.equal(errorText(42), '42')
})

t.test('alertFields: the client and the entry, or the name when there is none', async t => {
  t.same(alertFields(ev('10.0.0.1', 'a.ngrok.io')), { 'client.ip': '10.0.0.1', 'rule.ruleset': 'ngrok', 'rule.name': 'ngrok.io' })
  t.match(alertFields(ev('10.0.0.1', 'bad..x')), { 'client.ip': '10.0.0.1', 'rule.name': 'bad..x' })
})

t.test('alert outputs of a reloadable sink: a webhook that cannot deliver does not hold its window, syslog\'s holds; results are counted', async t => {
  const port = await closedPort()
  const got: string[] = []
  const { createSocket } = await import('node:dgram')
  const rx = createSocket('udp4').on('message', m => got.push(String(m)))
  await new Promise<void>(r => rx.bind(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => rx.close(() => r())))
  const counted: string[] = []
  const lines: string[] = []
  const a = createReloadableAlerts({ onError: m => lines.push(m), count: (o, r) => counted.push(`${o} ${r}`) })
  a.configure({ window: 60_000, webhook: { url: `http://127.0.0.1:${port}/`, retries: 0 }, syslog: { url: `udp://127.0.0.1:${rx.address().port}` } })
  const settled = async (n: number) => { for (let i = 0; i < 200 && counted.length < n; i++) await new Promise(r => setTimeout(r, 10)) }
  a.alert(ev('10.0.0.1', 'a.ngrok.io'), { client: { ip: '10.0.0.1' } })
  await settled(3)
  a.alert(ev('10.0.0.1', 'b.ngrok.io'), { client: { ip: '10.0.0.1' } })
  await settled(5)
  t.same(counted.filter(c => c.startsWith('webhook')), ['webhook failed', 'webhook dropped', 'webhook failed', 'webhook dropped'], 'the webhook tried the second alert too')
  t.same(counted.filter(c => c.startsWith('syslog')), ['syslog sent'], 'syslog delivered the first: the second was deduplicated')
  t.equal(got.length, 1)
  t.same(lines, ['alert webhook failed', 'alert webhook gave up', 'alert webhook failed', 'alert webhook gave up'])
  await a.close()
})
