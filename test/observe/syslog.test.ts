import t from 'tap'
import { createSocket, type Socket as Socket4 } from 'node:dgram'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { createSyslog, formatSyslog } from '../../src/observe/syslog.js'
import { parseSyslogUrl } from '../../src/config/endpoints.js'
import type { AlertResult } from '../../src/observe/alert-output.js'
import type { DecisionEvent } from '../../src/observe/types.js'
import { makeSnapshot, simpleMatcher, testEntries } from '../fixtures/snapshot.js'

const lists = { ngrok: { action: 'sinkhole' as const, patterns: ['ngrok.io'] }, tunnels: { action: 'alert' as const, patterns: ['trycloudflare.com'] } }
const entries = testEntries(lists)
entries[0] = { ...entries[0]!, sigma: { id: 'abc-1', title: 'T', author: 'A "q" [x]' } }
const snap = makeSnapshot({ lists, matcher: simpleMatcher(entries) })
const ev = (ip: string, name: string): DecisionEvent => ({
  message: 'dns.query', decision: snap.policy.decide(ip, name, 'qname'), client: { ip, port: 1 }, transport: 'udp', durationNs: 1,
})
const fmt = { appName: 'tunnelguard', facility: 16, hostname: 'gw1', time: Date.UTC(2026, 10, 21, 10, 0, 0), pid: 42 }
const until = async (cond: () => boolean) => { for (let i = 0; i < 200 && !cond(); i++) await new Promise(r => setTimeout(r, 10)) }

t.test('RFC 5424 message', async t => {
  const msg = formatSyslog(ev('10.0.0.5', 'a.ngrok.io'), fmt)
  t.equal(msg, '<132>1 2026-11-21T10:00:00.000Z gw1 tunnelguard 42 dns.query '
    + '[tunnelguard@32473 action="sinkhole" client="10.0.0.5" name="a.ngrok.io" where="qname" list="ngrok" rule="ngrok.io" group="default" sigma="abc-1"] '
    + `10.0.0.5 ${ev('10.0.0.5', 'a.ngrok.io').decision.reason}`)
  const alert = formatSyslog(ev('10.0.0.5', 'x.trycloudflare.com'), { ...fmt, hostname: '' })
  t.match(alert, /^<133>1 \S+ - tunnelguard 42 dns\.query \[tunnelguard@32473 action="alert" /)
  t.notMatch(alert, 'sigma=')
  const esc = formatSyslog({ ...ev('10.0.0.5', 'a.ngrok.io'), decision: { ...ev('10.0.0.5', 'a.ngrok.io').decision, group: 'a"b\\c]d' } }, fmt)
  t.match(esc, 'group="a\\"b\\\\c\\]d"')
})

t.test('a CONNECT to an address: the address (destination.ip, no destination.domain) is the name asked', async t => {
  const e: DecisionEvent = { message: 'proxy.connect', decision: snap.policy.decide('10.0.0.5', 'a.ngrok.io', 'sni'), client: { ip: '10.0.0.5', port: 1 },
    transport: 'tcp', durationNs: 1, destination: { ip: '203.0.113.5', port: 443 }, sni: 'a.ngrok.io' }
  t.match(formatSyslog(e, fmt), ' name="a.ngrok.io" asked="203.0.113.5" where="sni" ')
})

t.test('urls', async t => {
  t.same(parseSyslogUrl('udp://127.0.0.1:514'), { transport: 'udp', host: '127.0.0.1', port: 514 })
  t.same(parseSyslogUrl('tcp://[::1]:6514'), { transport: 'tcp', host: '::1', port: 6514 })
  t.same(parseSyslogUrl('tcp://logs.example:601'), { transport: 'tcp', host: 'logs.example', port: 601 })
  const forms = 'write udp://HOST:PORT or tcp://HOST:PORT (port 1-65535, IPv6 in brackets), e.g. udp://127.0.0.1:514'
  for (const bad of ['http://x:1', 'udp://x', 'udp://[::1:514', 'udp://x:-1']) t.equal(parseSyslogUrl(bad), `"${bad}" is not a syslog URL; ${forms}`, bad)
  for (const [bad, p, fix] of [['udp://x:70000', '70000', 'udp://x:514'], ['udp://x:0', '0', 'udp://x:514'], ['tcp://[::1]:00000', '00000', 'tcp://[::1]:514']]) {
    t.equal(parseSyslogUrl(bad!), `${p} is not a port (1-65535); write e.g. ${fix}`, bad)
  }
  // the output checks it by the same rule (the config's schema has, before it)
  t.throws(() => createSyslog({ url: 'udp://127.0.0.1:99999' }, () => {}, Date.now),
    { code: 'USAGE', message: 'alerts.syslog.url: 99999 is not a port (1-65535); write e.g. udp://127.0.0.1:514' })
})

/** Every result `report` hears, per alert (by its client). */
function results() {
  const by: Record<string, AlertResult[]> = {}
  return { by, report: (ip: string) => (r: AlertResult) => { (by[ip] ??= []).push(r) } }
}

t.test('UDP: one datagram per alert', async t => {
  const rx = createSocket('udp4')
  const got: string[] = []
  rx.on('message', m => got.push(String(m)))
  await new Promise<void>(r => rx.bind(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => rx.close(() => r())))
  const rs = results()
  const out = createSyslog({ url: `udp://127.0.0.1:${rx.address().port}`, appName: 'tg', hostname: 'gw1' }, () => {}, () => fmt.time)
  t.equal(out.name, 'syslog')
  out.send(ev('10.0.0.5', 'a.ngrok.io'), {}, rs.report('10.0.0.5'))
  out.send(ev('10.0.0.6', 'x.trycloudflare.com'), {}, rs.report('10.0.0.6'))
  await until(() => got.length === 2)
  t.equal(got.length, 2)
  t.match(got[0], /^<132>1 2026-11-21T10:00:00\.000Z gw1 tg \d+ dns\.query \[tunnelguard@32473 action="sinkhole" client="10\.0\.0\.5"/)
  t.match(got[1], 'client="10.0.0.6"')
  t.same(rs.by, { '10.0.0.5': ['sent'], '10.0.0.6': ['sent'] })
  await out.close()
  await out.close()
})

t.test('UDP over IPv6; a send error is reported and the alert given up; nothing is sent after close', async t => {
  const rx = createSocket('udp6')
  const got: string[] = []
  rx.on('message', m => got.push(String(m)))
  await new Promise<void>(r => rx.bind(0, '::1', r))
  t.teardown(() => new Promise<void>(r => rx.close(() => r())))
  const errors: Record<string, unknown>[] = []
  const rs = results()
  const url = `udp://[::1]:${rx.address().port}`
  const out = createSyslog({ url }, (m, f) => errors.push({ m, ...f }), Date.now)
  out.send(ev('10.0.0.5', 'a.ngrok.io'), {}, rs.report('10.0.0.5'))
  await until(() => got.length === 1)
  t.match(got, [/client="10\.0\.0\.5"/])
  const e = ev('10.0.0.6', 'a.ngrok.io')
  out.send({ ...e, decision: { ...e.decision, reason: 'x'.repeat(70_000) } }, {}, rs.report('10.0.0.6'))   // larger than any datagram
  await until(() => errors.length > 1)
  t.match(errors, [
    { m: 'alert syslog failed', url, error: /EMSGSIZE/ },
    { m: 'alert syslog gave up', url, 'client.ip': '10.0.0.6', 'rule.ruleset': 'ngrok', 'rule.name': 'ngrok.io', reason: 'send failed', error: /EMSGSIZE/, dropped: 1 },
  ])
  t.same(rs.by, { '10.0.0.5': ['sent'], '10.0.0.6': ['failed', 'dropped'] })
  await out.close()
  out.send(ev('10.0.0.7', 'a.ngrok.io'), {}, rs.report('10.0.0.7'))
  t.same(rs.by['10.0.0.7'], ['dropped'])
  t.match(errors.at(-1), { m: 'alert syslog gave up', 'client.ip': '10.0.0.7', reason: 'closed', dropped: 2 })
  await new Promise(r => setTimeout(r, 50))
  t.equal(got.length, 1)
})

t.test('TCP: octet-counted frames, queued until connected', async t => {
  let data = ''
  const conns: Socket[] = []
  const server = createServer(s => { conns.push(s); s.setEncoding('utf8'); s.on('data', d => { data += d }); s.on('error', () => {}) })
  server.on('error', () => {})
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => server.close(() => r())))
  const port = (server.address() as AddressInfo).port
  const errors: string[] = []
  const rs = results()
  const out = createSyslog({ url: `tcp://127.0.0.1:${port}`, hostname: 'gw1' }, m => errors.push(m), () => fmt.time)
  out.send(ev('10.0.0.5', 'a.ngrok.io'), {}, rs.report('10.0.0.5'))
  out.send(ev('10.0.0.6', 'a.ngrok.io'), {}, rs.report('10.0.0.6'))
  await until(() => (data.match(/<132>/g) ?? []).length === 2)
  out.send(ev('10.0.0.7', 'a.ngrok.io'), {}, rs.report('10.0.0.7'))
  await until(() => (data.match(/<132>/g) ?? []).length === 3)
  const frames: string[] = []
  let rest = data
  while (rest.length > 0) {
    const sp = rest.indexOf(' ')
    const len = Number(rest.slice(0, sp))
    frames.push(Buffer.from(rest.slice(sp + 1)).subarray(0, len).toString())
    rest = Buffer.from(rest.slice(sp + 1)).subarray(len).toString()
  }
  t.equal(frames.length, 3)
  t.match(frames[2], /^<132>1 .* client="10\.0\.0\.7"/)
  // the receiver drops the connection: the next alert reconnects
  conns[0]!.destroy()
  await until(() => conns[0]!.destroyed)
  await new Promise(r => setTimeout(r, 50))
  out.send(ev('10.0.0.8', 'a.ngrok.io'), {}, rs.report('10.0.0.8'))
  await until(() => data.includes('client="10.0.0.8"'))
  t.match(data, 'client="10.0.0.8"')
  await until(() => rs.by['10.0.0.8'] !== undefined)
  t.same(rs.by, { '10.0.0.5': ['sent'], '10.0.0.6': ['sent'], '10.0.0.7': ['sent'], '10.0.0.8': ['sent'] })
  t.same(errors, [])
  await out.close()
})

t.test('TCP: a refused connection gives up the alerts that waited for it; the next waits at most a second, then reconnects', async t => {
  const server = createServer()
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as AddressInfo).port
  await new Promise<void>(r => server.close(() => r()))
  const errors: Record<string, unknown>[] = []
  const rs = results()
  const url = `tcp://127.0.0.1:${port}`
  const out = createSyslog({ url, maxQueue: 1 }, (m, f) => errors.push({ m, ...f }), Date.now)
  out.send(ev('10.0.0.5', 'a.ngrok.io'), {}, rs.report('10.0.0.5'))
  await until(() => errors.length === 2)
  t.same(errors, [
    { m: 'alert syslog failed', url, error: `connect ECONNREFUSED 127.0.0.1:${port}` },
    { m: 'alert syslog gave up', url, 'client.ip': '10.0.0.5', 'rule.ruleset': 'ngrok', 'rule.name': 'ngrok.io', reason: 'connect failed', error: `connect ECONNREFUSED 127.0.0.1:${port}`, dropped: 1 },
  ])
  t.same(rs.by, { '10.0.0.5': ['failed', 'dropped'] })
  out.send(ev('10.0.0.6', 'a.ngrok.io'), {}, rs.report('10.0.0.6'))   // within a second of the failure: waits
  out.send(ev('10.0.0.7', 'a.ngrok.io'), {}, rs.report('10.0.0.7'))   // the queue (1) is full: given up at once
  t.same(rs.by['10.0.0.7'], ['dropped'])
  t.match(errors[2], { m: 'alert syslog gave up', 'client.ip': '10.0.0.7', reason: 'queue full (1)', dropped: 2 })
  await new Promise(r => setTimeout(r, 50))
  t.equal(errors.length, 3, 'no reconnect within the second')
  // the receiver is back: the waiting alert goes out when the second is over
  let data = ''
  const back = createServer(s => { s.setEncoding('utf8'); s.on('data', d => { data += d }) })
  await new Promise<void>(r => back.listen(port, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => back.close(() => r())))
  await until(() => data.includes('client="10.0.0.6"'))
  t.match(data, 'client="10.0.0.6"')
  await until(() => rs.by['10.0.0.6'] !== undefined)
  t.same(rs.by['10.0.0.6'], ['sent'])
  t.equal(errors.length, 3)
  await out.close()
})

t.test('TCP: a frame being written when the receiver resets the connection is given up', async t => {
  const server = createServer({ pauseOnConnect: true }, s => { s.on('error', () => {}); setTimeout(() => s.resetAndDestroy(), 100) })   // reads nothing
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => server.close(() => r())))
  const errors: Record<string, unknown>[] = []
  const rs = results()
  const out = createSyslog({ url: `tcp://127.0.0.1:${(server.address() as AddressInfo).port}` }, (m, f) => errors.push({ m, ...f }), Date.now)
  const e = ev('10.0.0.5', 'a.ngrok.io')
  out.send({ ...e, decision: { ...e.decision, reason: 'x'.repeat(16 << 20) } }, {}, rs.report('10.0.0.5'))   // more than the socket buffers take
  await until(() => rs.by['10.0.0.5']?.includes('dropped') === true)
  t.same(rs.by, { '10.0.0.5': ['failed', 'dropped'] })
  t.match(errors, [{ m: 'alert syslog failed', error: 'read ECONNRESET' }, { m: 'alert syslog gave up', 'client.ip': '10.0.0.5', reason: 'send failed', error: 'read ECONNRESET', dropped: 1 }])
  await out.close()
})

t.test('TCP: close while connecting gives up the waiting alert', async t => {
  let data = ''
  const server = createServer(s => { s.on('data', d => { data += d }); s.on('error', () => {}) })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => server.close(() => r())))
  const errors: Record<string, unknown>[] = []
  const rs = results()
  const out = createSyslog({ url: `tcp://127.0.0.1:${(server.address() as AddressInfo).port}` }, (m, f) => errors.push({ m, ...f }), Date.now)
  out.send(ev('10.0.0.5', 'a.ngrok.io'), {}, rs.report('10.0.0.5'))
  await out.close()
  await new Promise(r => setTimeout(r, 50))
  t.equal(data, '', 'the pending alert is not sent, the socket closed')
  t.same(rs.by, { '10.0.0.5': ['dropped'] })
  t.match(errors, [{ m: 'alert syslog gave up', 'client.ip': '10.0.0.5', reason: 'closed', dropped: 1 }])
  t.equal(errors.length, 1)
})

t.test('UDP: a socket whose bind fails (no descriptor free: EMFILE) gives up the alerts sent on it, each counted; the next alert opens another', async t => {
  const rx = createSocket('udp4')
  const got: string[] = []
  rx.on('message', m => got.push(String(m)))
  await new Promise<void>(r => rx.bind(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => rx.close(() => r())))
  const errors: Record<string, unknown>[] = []
  const rs = results()
  const url = `udp://127.0.0.1:${rx.address().port}`
  const made: Socket4[] = []
  const out = createSyslog({ url }, (m, f) => errors.push({ m, ...f }), Date.now, type => { const s = createSocket(type); made.push(s); return s })
  t.teardown(() => out.close())
  out.send(ev('10.0.0.5', 'a.ngrok.io'), {}, rs.report('10.0.0.5'))
  out.send(ev('10.0.0.6', 'a.ngrok.io'), {}, rs.report('10.0.0.6'))
  // what dgram emits when the implicit bind of the first send finds no descriptor free; it drops the queued sends
  made[0]!.emit('error', Object.assign(new Error('bind EMFILE 0.0.0.0'), { code: 'EMFILE' }))
  t.same(rs.by, { '10.0.0.5': ['failed', 'dropped'], '10.0.0.6': ['failed', 'dropped'] }, 'each counted, none lost')
  t.match(errors, [
    { m: 'alert syslog failed', url, error: /EMFILE/ },
    { m: 'alert syslog gave up', 'client.ip': '10.0.0.5', reason: 'send failed', error: /EMFILE/, dropped: 1 },
    { m: 'alert syslog gave up', 'client.ip': '10.0.0.6', reason: 'send failed', dropped: 2 },
  ])
  out.send(ev('10.0.0.7', 'a.ngrok.io'), {}, rs.report('10.0.0.7'))
  await until(() => got.length === 1)
  t.equal(made.length, 2, 'a new socket')
  t.match(got, [/client="10\.0\.0\.7"/])
  t.same(rs.by['10.0.0.7'], ['sent'])
  made[1]!.emit('error', new Error('a later error on a bound socket'))
  t.match(errors.at(-1), { m: 'alert syslog failed', error: /a later error/ })
  out.send(ev('10.0.0.8', 'a.ngrok.io'), {}, rs.report('10.0.0.8'))
  await until(() => got.length === 2)
  t.equal(made.length, 2, 'the bound socket is kept')
})

t.test('an alert is stamped with its line\'s @timestamp, not the time it is sent; a CNAME match names the name asked too', async t => {
  const { Writable } = await import('node:stream')
  const { createLogger } = await import('../../src/observe/logger.js')
  const { createEvidence } = await import('../../src/observe/evidence.js')
  const { createMetrics } = await import('../../src/observe/metrics.js')
  const { createClientTable } = await import('../../src/observe/client-table.js')
  const { createReloadableAlerts } = await import('../../src/observe/alerts.js')
  const rx = createSocket('udp4')
  const got: string[] = []
  rx.on('message', m => got.push(String(m)))
  await new Promise<void>(r => rx.bind(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => rx.close(() => r())))
  const lines: string[] = []
  const eventAt = Date.UTC(2026, 10, 21, 10, 0, 0, 123)
  const logger = createLogger({ level: 'info', clock: () => eventAt, destination: new Writable({ write(c, _e, cb) { lines.push(String(c)); cb() } }) })
  // the outputs' clock is minutes later: a queue, a reconnect, or a clock read after the line
  const alerts = createReloadableAlerts({ onError: () => {}, clock: () => eventAt + 180_000 })
  alerts.configure({ syslog: { url: `udp://127.0.0.1:${rx.address().port}`, hostname: 'gw1' } })
  t.teardown(() => alerts.close())
  const evidence = createEvidence({ logger, getSnapshot: () => snap, metrics: createMetrics(), clients: createClientTable(), alerts })
  evidence.decision({
    message: 'dns.query', decision: snap.policy.decide('10.0.0.7', 'x.ngrok.io', 'cname'), client: { ip: '10.0.0.7', port: 1 },
    transport: 'udp', durationNs: 1, dns: { name: 'c1.test', type: 'A', rcode: 'NXDOMAIN' },
  })
  await until(() => got.length === 1)
  t.equal(JSON.parse(lines[0]!)['@timestamp'], '2026-11-21T10:00:00.123Z')
  t.match(got[0], /^<132>1 2026-11-21T10:00:00\.123Z gw1 tunnelguard \d+ dns\.query /, 'TIMESTAMP: the line\'s @timestamp')
  t.match(got[0], 'name="x.ngrok.io" asked="c1.test" where="cname"', 'the name decided on and the name the client asked')
  // with the line not written (level error), the alert is stamped when it is made
  const quiet = createEvidence({ logger: createLogger({ level: 'error', clock: () => eventAt, destination: new Writable({ write(_c, _e, cb) { cb() } }) }),
    getSnapshot: () => snap, metrics: createMetrics(), clients: createClientTable(), alerts })
  const before = Date.now()
  quiet.decision({ ...ev('10.0.0.8', 'a.ngrok.io'), dns: { name: 'a.ngrok.io', type: 'A', rcode: 'NXDOMAIN' } })
  await until(() => got.length === 2)
  const stamp = Date.parse(/^<\d+>1 (\S+)/.exec(got[1]!)![1]!)
  t.ok(stamp >= before && stamp <= Date.now(), 'now, not the outputs\' clock')
  t.match(got[1], 'name="a.ngrok.io" asked="a.ngrok.io"')
})

t.test('syslog: a record whose @timestamp cannot be read is stamped by the output\'s clock', async t => {
  const rx = createSocket('udp4')
  const got: string[] = []
  rx.on('message', m => got.push(String(m)))
  await new Promise<void>(r => rx.bind(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => rx.close(() => r())))
  const out = createSyslog({ url: `udp://127.0.0.1:${rx.address().port}`, hostname: 'gw1' }, () => {}, () => fmt.time)
  t.teardown(() => out.close())
  out.send({ ...ev('10.0.0.5', 'a.ngrok.io'), decision: snap.policy.decide('10.0.0.5', 'a.ngrok.io', 'sni'), sni: 'a.ngrok.io' }, { '@timestamp': 'soon' }, () => {})
  await until(() => got.length === 1)
  t.match(got[0], /^<132>1 2026-11-21T10:00:00\.000Z /)
  t.match(got[0], 'asked="a.ngrok.io"', 'the SNI asked')
  const proxied = { ...ev('10.0.0.5', 'a.ngrok.io'), message: 'proxy.http' as const, decision: snap.policy.decide('10.0.0.5', 'a.ngrok.io', 'host') }
  t.match(formatSyslog({ ...proxied, destination: { domain: 'innocent.example', port: 80 }, urlDomain: 'innocent.example' }, fmt), 'name="a.ngrok.io" asked="innocent.example"', 'the URL host asked, the Host header decided on')
  t.match(formatSyslog({ ...proxied, urlDomain: 'u.example' }, fmt), 'asked="u.example"')
  t.notMatch(formatSyslog(proxied, fmt), 'asked=', 'nothing asked by name: no asked')
})
