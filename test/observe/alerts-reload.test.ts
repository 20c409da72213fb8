import t, { type Test } from 'tap'
import { createServer, type ServerResponse } from 'node:http'
import { createSocket } from 'node:dgram'
import type { AddressInfo } from 'node:net'
import { createReloadableAlerts } from '../../src/observe/alerts.js'
import type { DecisionEvent } from '../../src/observe/types.js'
import { makeSnapshot } from '../fixtures/snapshot.js'

const snap = makeSnapshot()
const ev = (ip: string, name: string): DecisionEvent => ({
  message: 'dns.query', decision: snap.policy.decide(ip, name, 'qname'), client: { ip, port: 1 }, transport: 'udp', durationNs: 1,
})
const until = async (f: () => boolean) => { for (let i = 0; i < 250 && !f(); i++) await new Promise(r => setTimeout(r, 20)) }

/** A webhook receiver: the client IPs it was sent; `hold` keeps responses back until released. */
async function hook(t: Test, hold = false) {
  const ips: string[] = []
  const held: ServerResponse[] = []
  const server = createServer((req, res) => {
    let b = ''
    req.on('data', d => { b += d })
    req.on('end', () => { ips.push(JSON.parse(b).client.ip); if (hold) held.push(res); else res.end() })
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => { server.close(() => r()); server.closeAllConnections() }))
  const release = () => { for (const r of held.splice(0)) r.end() }
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/tg`, ips, release, held }
}

async function syslogRx(t: Test) {
  const got: string[] = []
  const rx = createSocket('udp4')
  rx.on('message', m => got.push(String(m)))
  await new Promise<void>(r => rx.bind(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => rx.close(() => r())))
  return { url: `udp://127.0.0.1:${rx.address().port}`, got }
}

const rec = (ip: string) => ({ client: { ip } })

t.test('alerts added, kept, replaced and removed by configure; the dedup window carries over', async t => {
  const a = createReloadableAlerts({ onError: () => {} })
  t.same(a.configure({}), { webhook: false, syslog: false })
  t.equal(a.active, false)
  a.alert(ev('10.0.0.1', 'a.ngrok.io'), rec('10.0.0.1'))   // no outputs: goes nowhere
  const h1 = await hook(t)
  const sl = await syslogRx(t)
  t.same(a.configure({ window: 60_000, webhook: { url: h1.url }, syslog: { url: sl.url } }), { webhook: true, syslog: true })
  t.equal(a.active, true)
  a.alert(ev('10.0.0.2', 'a.ngrok.io'), rec('10.0.0.2'))
  await until(() => h1.ips.length === 1 && sl.got.length === 1)
  t.same(h1.ips, ['10.0.0.2'], 'the new webhook gets alerts')
  t.match(sl.got[0], /client="10\.0\.0\.2"/, 'and the new syslog')
  t.same(a.configure({ window: 60_000, webhook: { url: h1.url }, syslog: { url: sl.url } }), { webhook: false, syslog: false }, 'unchanged: kept')
  a.alert(ev('10.0.0.2', 'b.ngrok.io'), rec('10.0.0.2'))   // same client and entry: deduplicated across the reload
  a.alert(ev('10.0.0.3', 'a.ngrok.io'), rec('10.0.0.3'))
  await until(() => h1.ips.length === 2)
  t.same(h1.ips, ['10.0.0.2', '10.0.0.3'])
  t.same(a.configure({ window: 60_000, webhook: { url: h1.url } }), { webhook: false, syslog: true }, 'syslog removed')
  a.alert(ev('10.0.0.4', 'a.ngrok.io'), rec('10.0.0.4'))
  await until(() => h1.ips.length === 3)
  t.equal(sl.got.length, 2, 'the removed syslog got nothing more')
  t.same(a.configure({}), { webhook: true, syslog: false })
  t.equal(a.active, false)
  a.alert(ev('10.0.0.5', 'a.ngrok.io'), rec('10.0.0.5'))
  await new Promise(r => setTimeout(r, 50))
  t.equal(h1.ips.length, 3, 'the removed webhook got nothing more')
  await a.close()
})

t.test('a replaced webhook delivers what is in flight and queued, then closes; new alerts go to the new one', async t => {
  const old = await hook(t, true)
  const neu = await hook(t)
  const a = createReloadableAlerts({ onError: () => {}, clock: () => 0 })
  a.configure({ window: 0, webhook: { url: old.url } })
  a.alert(ev('10.0.0.1', 'a.ngrok.io'), rec('10.0.0.1'))
  a.alert(ev('10.0.0.2', 'a.ngrok.io'), rec('10.0.0.2'))
  await until(() => old.held.length === 1)
  t.same(a.configure({ window: 0, webhook: { url: neu.url } }), { webhook: true, syslog: false })
  a.alert(ev('10.0.0.3', 'a.ngrok.io'), rec('10.0.0.3'))
  await until(() => neu.ips.length === 1)
  t.same(neu.ips, ['10.0.0.3'])
  old.release()
  await until(() => old.held.length === 1 && old.ips.length === 2)
  old.release()
  t.same(old.ips, ['10.0.0.1', '10.0.0.2'], 'the in-flight and the queued alert reached the old URL, once each')
  await a.close()
})

t.test('an alert held behind one the old webhook gives up after a reload goes to the new webhook', async t => {
  // the old receiver refuses connections: its one delivery is retried once, then given up
  const dead = createServer()
  await new Promise<void>(r => dead.listen(0, '127.0.0.1', r))
  const deadUrl = `http://127.0.0.1:${(dead.address() as AddressInfo).port}/tg`
  await new Promise<void>(r => dead.close(() => r()))
  const neu = await hook(t)
  const a = createReloadableAlerts({ onError: () => {} })
  a.configure({ window: 60_000, webhook: { url: deadUrl, retries: 1, backoff: 200 } })
  a.alert(ev('10.0.0.9', 'a.ngrok.io'), rec('10.0.0.9'))        // to the old URL, failing
  t.same(a.configure({ window: 60_000, webhook: { url: neu.url } }), { webhook: true, syslog: false })
  a.alert(ev('10.0.0.9', 'b.ngrok.io'), rec('10.0.0.9'))        // the same client and entry: held behind the first
  await until(() => neu.ips.length === 1)
  t.same(neu.ips, ['10.0.0.9'], 'once the old one gave up, the held alert reached the new URL')
  await a.close()
})

t.test('close also closes a replaced webhook still delivering', async t => {
  const stuck = await hook(t, true)
  const a = createReloadableAlerts({ onError: () => {} })
  a.configure({ webhook: { url: stuck.url } })
  a.alert(ev('10.0.0.1', 'a.ngrok.io'), rec('10.0.0.1'))
  await until(() => stuck.held.length === 1)
  a.configure({})
  await a.close()
  t.equal(a.active, false)
  t.same(stuck.ips, ['10.0.0.1'])
})

t.test('close closes the configured outputs', async t => {
  const sl = await syslogRx(t)
  const a = createReloadableAlerts({ onError: () => {} })
  a.configure({ syslog: { url: sl.url } })
  await a.close()
  t.equal(a.active, false)
  a.alert(ev('10.0.0.1', 'a.ngrok.io'), rec('10.0.0.1'))
  await new Promise(r => setTimeout(r, 50))
  t.equal(sl.got.length, 0, 'nothing sent after close')
})

t.test('an output that cannot be built: configure throws and changes nothing; the old outputs keep delivering', async t => {
  const h1 = await hook(t)
  const h2 = await hook(t)
  const sl = await syslogRx(t)
  const sl2 = await syslogRx(t)
  const a = createReloadableAlerts({ onError: () => {}, clock: () => 0 })
  const good = { window: 0, webhook: { url: h1.url }, syslog: { url: sl.url } }
  a.configure(good)
  // a new webhook with a bad syslog: the webhook built first is closed again
  t.throws(() => a.configure({ window: 60_000, webhook: { url: h2.url }, syslog: { url: 'udp://127.0.0.1:99999' } }), { code: 'USAGE' })
  // a bad webhook (a user name fetch's Basic authorization cannot decode) with a new syslog
  t.throws(() => a.configure({ window: 60_000, webhook: { url: 'http://a%zz@127.0.0.1:1/' }, syslog: { url: sl2.url } }), URIError)
  t.equal(a.active, true)
  a.alert(ev('10.0.0.1', 'a.ngrok.io'), rec('10.0.0.1'))
  a.alert(ev('10.0.0.1', 'a.ngrok.io'), rec('10.0.0.1'))   // window 0 still: both go
  await until(() => h1.ips.length === 2 && sl.got.length === 2)
  t.same(h1.ips, ['10.0.0.1', '10.0.0.1'], 'the old webhook still delivers')
  t.equal(sl.got.length, 2, 'and the old syslog')
  t.same(a.configure(good), { webhook: false, syslog: false }, 'the good config again: nothing to change')
  t.same(a.configure({ window: 0, webhook: { url: h2.url }, syslog: { url: sl2.url } }), { webhook: true, syslog: true })
  a.alert(ev('10.0.0.2', 'a.ngrok.io'), rec('10.0.0.2'))
  await until(() => h2.ips.length === 1 && sl2.got.length === 1)
  t.same(h2.ips, ['10.0.0.2'], 'a good change after the bad ones applies')
  t.equal(sl2.got.length, 1)
  t.equal(h1.ips.length, 2, 'the replaced webhook got nothing more')
  t.equal(sl.got.length, 2, 'nor the replaced syslog')
  await a.close()
})
