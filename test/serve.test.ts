import t from 'tap'
import { PassThrough } from 'node:stream'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { get } from 'node:http'
import { listenError, serve } from '../src/serve.js'
import { applyOverrides } from '../src/overrides.js'
import { createReloader } from '../src/reload.js'
import { loadConfig } from '../src/config/load.js'
import { buildSnapshot } from '../src/snapshot.js'
import { memoryEvidence } from './fixtures/evidence.js'
import { dig } from './fixtures/dig.js'
import { startUnbound } from './fixtures/unbound.js'
import { startSyslogReceiver, startWebhookReceiver } from './fixtures/alert-receivers.js'
import { httpServer } from './fixtures/http-server.js'
import { connect, type AddressInfo } from 'node:net'
import { createServer } from 'node:http'

function fetchText(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, res => {
      let body = ''
      res.on('data', d => { body += d })
      res.on('end', () => resolve({ status: res.statusCode!, body }))
    }).on('error', reject)
  })
}

t.test('serve in-process: every listener, overrides, reload, stop', async t => {
  const dir = t.testdir({ 'l.txt': 'ngrok.io\n' })
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, 'dns: { upstreams: ["udp://127.0.0.1:9"], timeout: 300ms, forwardZones: { Corp.Example: ["udp://127.0.0.1:7"] } }\nlists:\n  l: { files: [l.txt], action: block }\nsinkhole: { listen: ["127.0.0.1:0"] }\nreload: { watch: false }\n')
  const out = new PassThrough()
  let log = ''
  out.on('data', d => { log += d })
  const r = await serve({
    configPath: cfg, stdout: out, signals: false,
    overrides: { dns: ['127.0.0.1:0'], proxy: ['127.0.0.1:0'], admin: '127.0.0.1:0', upstreams: ['udp://127.0.0.1:9'] },
  })
  t.teardown(() => r.stop())
  t.equal(r.addresses.dns.length, 2, 'UDP and TCP')
  t.equal(r.addresses.proxy.length, 1)
  t.ok(r.addresses.admin!.port > 0)
  t.equal(r.addresses.sinkhole.length, 1, 'the sinkhole capture listener')
  const started = JSON.parse(log.split('\n').find(l => l.includes('"message":"started"'))!)
  t.same(started['tunnelguard.sinkhole'], [{ address: '127.0.0.1', port: r.addresses.sinkhole[0]!.port }], 'the started line lists the capture listeners beside dns, proxy and admin')
  t.ok(started['tunnelguard.sinkhole'][0].port > 0)
  t.same(started['tunnelguard.forward_zones'], [{ zone: 'corp.example', upstreams: ['udp://127.0.0.1:7'] }], 'and the forward zones, as objects')
  t.match(log, /"tunnelguard\.source":"[^"]*tg\.yaml:4","tunnelguard\.warning":"sinkhole\.listen: nothing will reach the capture listener on 127\.0\.0\.1:0: [^"]*","message":"config warning"/,
    'a capture listener the sinkhole answers do not lead to: warned at start')
  const udp = r.addresses.dns.find(a => a.transport === 'udp')!
  const blocked = await dig(udp, 'x.ngrok.io')
  t.equal(blocked.status, 'NXDOMAIN', 'block → NXDOMAIN')
  t.equal((await fetchText(r.addresses.admin!.port, '/readyz')).status, 200)
  t.match((await fetchText(r.addresses.admin!.port, '/metrics')).body, /tunnelguard_list_entries\{list="l"\} 1/)
  writeFileSync(join(dir, 'l.txt'), 'ngrok.io\nngrok.app\n')
  t.equal(await r.reload('test'), true)
  t.equal(r.snapshot().lists[0]!.entries, 2)
  writeFileSync(cfg, 'dns: { listen: 3 }\n')
  t.equal(await r.reload('test'), false, 'an invalid config is rejected')
  t.equal(r.snapshot().lists[0]!.entries, 2, 'the old snapshot stays')
  t.match(log, /reload rejected/)
  t.match((await fetchText(r.addresses.admin!.port, '/metrics')).body, /tunnelguard_reloads_total\{result="error"\} 1/)
  await r.stop()
  await r.done
  t.match(log, /"message":"stopped"/)
})

t.test('serve: alerts configured in the config go to the webhook, deduplicated', async t => {
  const { port, posts } = await startWebhookReceiver(t)
  const dir = t.testdir({ 'l.txt': 'ngrok.io\n' })
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, `lists:\n  l: { files: [l.txt], action: block }\nalerts: { window: 1m, webhook: { url: "http://127.0.0.1:${port}/hook" } }\n`)
  const out = new PassThrough()
  out.resume()
  const r = await serve({ configPath: cfg, stdout: out, signals: false, watchFiles: false, overrides: { dns: ['127.0.0.1:0'], proxy: [], admin: '127.0.0.1:0', upstreams: ['udp://127.0.0.1:9'] } })
  t.teardown(() => r.stop())
  const udp = r.addresses.dns.find(a => a.transport === 'udp')!
  await dig(udp, 'x.ngrok.io')
  await dig(udp, 'x.ngrok.io')
  for (let i = 0; i < 100 && posts.length === 0; i++) await new Promise(res => setTimeout(res, 20))
  await new Promise(res => setTimeout(res, 200))
  t.equal(posts.length, 1, 'one POST for the same client and entry within the window')
  t.match(posts[0], { event: { action: 'block' }, client: { ip: '127.0.0.1' }, rule: { name: 'ngrok.io', ruleset: 'l' } })
})

t.test('serve: an alert the webhook cannot deliver is logged with its cause, given up, counted, and does not hold the window', async t => {
  // a port that was free on an address this test's own listeners (admin: 127.0.0.1:0) never take:
  // on 127.0.0.1 the kernel could give the port just freed to admin, which answered the POST 405
  const down = createServer()
  await new Promise<void>(r => down.listen(0, '127.0.0.91', r))
  const hookPort = (down.address() as AddressInfo).port
  await new Promise<void>(r => down.close(() => r()))   // nothing listens there: the receiver is down
  const dir = t.testdir({ 'l.txt': 'ngrok.io\n' })
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, `lists:\n  l: { files: [l.txt], action: block }\nalerts: { window: 5m, webhook: { url: "http://127.0.0.91:${hookPort}/tg", retries: 1, backoff: 50ms } }\n`)
  const out = new PassThrough()
  let log = ''
  out.on('data', d => { log += d })
  const r = await serve({ configPath: cfg, stdout: out, signals: false, watchFiles: false, overrides: { dns: ['127.0.0.1:0'], proxy: [], admin: '127.0.0.1:0', upstreams: ['udp://127.0.0.1:9'] } })
  t.teardown(() => r.stop())
  const udp = r.addresses.dns.find(a => a.transport === 'udp')!
  const metrics = async () => (await fetchText(r.addresses.admin!.port, '/metrics')).body
  await dig(udp, 'x.ngrok.io')
  for (let i = 0; i < 200 && !log.includes('alert webhook gave up'); i++) await new Promise(res => setTimeout(res, 20))
  const lines = log.split('\n').filter(l => l.includes('alert webhook')).map(l => JSON.parse(l) as Record<string, unknown>)
  const refused = `connect ECONNREFUSED 127.0.0.91:${hookPort}`
  t.match(lines, [
    { 'log.level': 'warn', message: 'alert webhook failed', 'client.ip': '127.0.0.1', 'rule.name': 'ngrok.io', 'tunnelguard.attempt': 1, 'tunnelguard.attempts': 2, 'error.message': refused },
    { message: 'alert webhook failed', 'tunnelguard.attempt': 2, 'tunnelguard.attempts': 2, 'error.message': refused },
    { message: 'alert webhook gave up', 'client.ip': '127.0.0.1', 'rule.ruleset': 'l', 'rule.name': 'ngrok.io', 'tunnelguard.reason': 'retries exhausted', 'tunnelguard.attempts': 2, 'error.message': refused, 'tunnelguard.dropped': 1 },
  ])
  t.equal(lines.length, 3)
  let text = await metrics()
  t.match(text, 'tunnelguard_alerts_total{output="webhook",result="failed"} 2')
  t.match(text, 'tunnelguard_alerts_total{output="webhook",result="dropped"} 1')
  t.match(text, 'tunnelguard_alerts_total{output="webhook",result="sent"} 0')
  // the receiver is back: the same client and entry, within the window, is alerted
  const { posts } = await startWebhookReceiver(t, hookPort, '127.0.0.91')
  await dig(udp, 'y.ngrok.io')
  for (let i = 0; i < 200 && posts.length === 0; i++) await new Promise(res => setTimeout(res, 20))
  t.match(posts, [{ client: { ip: '127.0.0.1' }, rule: { name: 'ngrok.io' }, dns: { question: { name: 'y.ngrok.io' } } }], 'the alert that was not delivered did not hold the window')
  for (let i = 0; i < 100 && !(await metrics()).includes('result="sent"} 1'); i++) await new Promise(res => setTimeout(res, 20))
  text = await metrics()
  t.match(text, 'tunnelguard_alerts_total{output="webhook",result="sent"} 1')
  await dig(udp, 'z.ngrok.io')
  await new Promise(res => setTimeout(res, 200))
  t.equal(posts.length, 1, 'delivered: now the window holds')
})

t.test('serve: a listener that cannot bind closes what was opened and throws', async t => {
  const out = new PassThrough()
  out.resume()
  const first = await serve({ stdout: out, signals: false, overrides: { dns: ['127.0.0.1:0'], proxy: [], admin: '127.0.0.1:0', upstreams: ['udp://127.0.0.1:9'] }, resolvConf: '/nonexistent' })
  t.teardown(() => first.stop())
  const taken = `127.0.0.1:${first.addresses.admin!.port}`
  await t.rejects(serve({ stdout: out, signals: false, overrides: { dns: ['127.0.0.1:0'], proxy: [], admin: taken }, resolvConf: '/nonexistent' }),
    { code: 'LISTEN_FAILED', message: `--admin ${taken}: address in use (EADDRINUSE)` })
  const dir = t.testdir({ 'l.txt': 'ngrok.io\n' })
  const cfg = join(dir, 'tg.yaml')
  const cfgWith = (o: { admin?: string; proxy?: string; sinkhole?: string }) => writeFileSync(cfg, [
    'dns: { listen: [], upstreams: ["udp://127.0.0.1:9"] }', `proxy: { listen: [${o.proxy ?? ''}] }`, `admin: ${o.admin ?? 'null'}`,
    `sinkhole: { listen: [${o.sinkhole ?? ''}] }`, 'lists:\n  l: { files: [l.txt] }', 'reload: { watch: false }', '',
  ].join('\n'))
  cfgWith({ admin: `{ listen: "${taken}" }` })
  await t.rejects(serve({ configPath: cfg, stdout: out, signals: false }), { message: `admin.listen ${taken}: address in use (EADDRINUSE)` }, 'admin from the config: no index')
  cfgWith({ sinkhole: `"127.0.0.1:0", "${taken}"` })
  await t.rejects(serve({ configPath: cfg, stdout: out, signals: false }), { message: `sinkhole.listen[1] ${taken}: address in use (EADDRINUSE)` })
  cfgWith({ proxy: `"${taken}"` })
  await t.rejects(serve({ configPath: cfg, stdout: out, signals: false }), { message: `proxy.listen[0] ${taken}: address in use (EADDRINUSE)` })
})

t.test('listenError: the setting and address in one line; other errors as they are', async t => {
  const err = (code: string, address: string, port: number) => Object.assign(new Error(`bind ${code}`), { code, address, port })
  t.match(listenError(err('EACCES', '0.0.0.0', 53), 'dns.listen', ['0.0.0.0:53']), { code: 'LISTEN_FAILED', message: /^dns\.listen\[0\] 0\.0\.0\.0:53: permission denied \(a port below 1024 needs root or CAP_NET_BIND_SERVICE\) \(EACCES\)$/ })
  t.match(listenError(err('EADDRNOTAVAIL', '192.0.2.1', 53), 'dns.listen', ['127.0.0.1:53', '192.0.2.1:53']), { message: 'dns.listen[1] 192.0.2.1:53: address not available on this machine (EADDRNOTAVAIL)' })
  t.match(listenError(err('EINVAL', '::ffff:192.0.2.1', 3128), 'proxy.listen', ['[::ffff:192.0.2.1]:3128']), { message: 'proxy.listen[0] [::ffff:192.0.2.1]:3128: address not valid for this listener (EINVAL)' })
  t.match(listenError(err('EADDRINUSE', '127.0.0.1', 53), 'dns.listen', ['localhost:53', 'localhost:54']), { message: 'dns.listen 127.0.0.1:53: address in use (EADDRINUSE)' }, 'no entry matches: the address the error names')
  t.match(listenError(err('EADDRINUSE', '127.0.0.1', 53), 'admin.listen', 'localhost:53'), { message: 'admin.listen localhost:53: address in use (EADDRINUSE)' })
  const other = new Error('boom')
  t.equal(listenError(other, 'dns.listen', ['127.0.0.1:53']), other)
  const odd = err('EPERM', '127.0.0.1', 53)
  t.equal(listenError(odd, 'dns.listen', ['127.0.0.1:53']), odd)
})

t.test('serve: alerts added to a running config by reload reach the webhook and syslog; removed, they stop', async t => {
  const { port, posts } = await startWebhookReceiver(t)
  const { port: syslogPort, datagrams } = await startSyslogReceiver(t)
  const dir = t.testdir({ 'l.txt': 'ngrok.io\n' })
  const cfg = join(dir, 'tg.yaml')
  // clients.ptr: the evidence the client names log through is serve's own (PTR lookups go to udp://127.0.0.1:9, nothing there)
  const base = 'lists:\n  l: { files: [l.txt], action: block }\nreload: { watch: false }\nclients: { ptr: true }\n'
  writeFileSync(cfg, base)
  const out = new PassThrough()
  let log = ''
  out.on('data', d => { log += d })
  const r = await serve({ configPath: cfg, stdout: out, signals: false, overrides: { dns: ['127.0.0.1:0'], proxy: [], admin: '127.0.0.1:0', upstreams: ['udp://127.0.0.1:9'] } })
  t.teardown(() => r.stop())
  const udp = r.addresses.dns.find(a => a.transport === 'udp')!
  await dig(udp, 'a.ngrok.io')
  writeFileSync(cfg, base + `alerts: {window: 5m, webhook: {url: "http://127.0.0.1:${port}/tg"}, syslog: {url: "udp://127.0.0.1:${syslogPort}"}}\n`)
  t.equal(await r.reload('test'), true)
  t.match(log, /"tunnelguard.webhook":"http:\/\/127\.0\.0\.1:\d+\/tg","tunnelguard.syslog":"udp:\/\/127\.0\.0\.1:\d+"[^\n]*"message":"alerts reconfigured"/)
  await dig(udp, 'b.ngrok.io')
  for (let i = 0; i < 200 && (posts.length === 0 || datagrams.length === 0); i++) await new Promise(res => setTimeout(res, 20))
  t.equal(posts.length, 1, 'the webhook got the alert')
  t.match(posts[0], { rule: { name: 'ngrok.io', ruleset: 'l' }, client: { ip: '127.0.0.1' } })
  t.equal(datagrams.length, 1, 'and syslog')
  t.equal(await r.reload('same'), true)
  t.equal(log.match(/alerts reconfigured/g)!.length, 1, 'an unchanged alerts section is not reconfigured')
  writeFileSync(cfg, base)
  t.equal(await r.reload('test'), true)
  await dig(udp, 'x.ngrok.io')
  await new Promise(res => setTimeout(res, 200))
  t.equal(posts.length, 1, 'alerts removed: nothing more sent')
  t.equal(datagrams.length, 1)
  t.match(log, /"tunnelguard.webhook":null,"tunnelguard.syslog":null[^\n]*"message":"alerts reconfigured"/)
  t.match(log, /"message":"dns\.query"/, 'decisions are still logged')
})

t.test('serve: a reload changes the log level and whether files are followed, in place', async t => {
  const dir = t.testdir({ 'l.txt': 'ngrok.io\n' })
  const cfg = join(dir, 'tg.yaml')
  const conf = (level: string, watch: boolean) => `dns: { upstreams: ["udp://127.0.0.1:9"] }\nlists:\n  l: { files: [l.txt], action: block }\nreload: { watch: ${watch}, debounce: 20ms }\nlog: { level: ${level} }\n`
  writeFileSync(cfg, conf('error', true))
  const out = new PassThrough()
  let log = ''
  out.on('data', d => { log += d })
  const r = await serve({ configPath: cfg, stdout: out, signals: false, overrides: { dns: ['127.0.0.1:0'], proxy: [], admin: '' } })
  t.teardown(() => r.stop())
  const udp = r.addresses.dns.find(a => a.transport === 'udp')!
  await dig(udp, 'a.ngrok.io')
  await new Promise(res => setTimeout(res, 50))
  t.notMatch(log, /"dns\.query"/, 'at error: no decision line')
  writeFileSync(cfg, conf('info', false))
  t.equal(await r.reload('test'), true)
  await dig(udp, 'b.ngrok.io')
  await new Promise(res => setTimeout(res, 50))
  t.match(log, /"tunnelguard.from":"error","tunnelguard.to":"info","message":"log level changed"/)
  t.match(log, /"name":"b\.ngrok\.io"/, 'at info: the decision line is written (the level was fixed at start)')
  // reload.watch: false — a list edit is no longer followed
  writeFileSync(join(dir, 'l.txt'), 'ngrok.io\nngrok.app\n')
  await new Promise(res => setTimeout(res, 400))
  t.equal(r.snapshot().lists[0]!.entries, 1, 'watch off: not reloaded')
  writeFileSync(cfg, conf('info', true))
  t.equal(await r.reload('test'), true)
  t.equal(r.snapshot().lists[0]!.entries, 2)
  writeFileSync(join(dir, 'l.txt'), 'ngrok.io\nngrok.app\nngrok.dev\n')
  for (let i = 0; i < 100 && r.snapshot().lists[0]!.entries !== 3; i++) await new Promise(res => setTimeout(res, 20))
  t.equal(r.snapshot().lists[0]!.entries, 3, 'watch on again: followed')
})

t.test('serve with signals: SIGHUP reloads, SIGTERM stops', async t => {
  const out = new PassThrough()
  let log = ''
  out.on('data', d => { log += d })
  const before = process.listenerCount('SIGHUP')
  const r = await serve({ stdout: out, overrides: { dns: ['127.0.0.1:0'], proxy: [], admin: '127.0.0.1:0', upstreams: ['udp://127.0.0.1:9'] }, resolvConf: '/nonexistent', watchFiles: false })
  t.equal(process.listenerCount('SIGHUP'), before + 1)
  process.emit('SIGHUP', 'SIGHUP')
  for (let i = 0; i < 200 && !log.includes('"message":"reloaded"'); i++) await new Promise(res => setTimeout(res, 10))
  t.match(log, /"tunnelguard.reason":"SIGHUP"/)
  process.emit('SIGTERM', 'SIGTERM')
  await r.done
  t.match(log, /"tunnelguard.signal":"SIGTERM"/)
  t.equal(process.listenerCount('SIGHUP'), before + 1, 'at done, a quiet handler: a signal now neither kills nor is logged')
  process.emit('SIGHUP', 'SIGHUP')
  process.emit('SIGTERM', 'SIGTERM')
  await new Promise(res => setImmediate(res))
  t.equal(process.listenerCount('SIGHUP'), before, 'handlers removed on the next turn')
  t.equal(process.listenerCount('SIGTERM'), before, 'all three')
  t.equal((log.match(/"message":"stopped"/g) ?? []).length, 1, 'stopped once')
  t.notMatch(log.slice(log.indexOf('"message":"stopped"')), /reload|already stopping/, 'nothing said after it')
})

t.test('serve: a signal while starting is acted on once started (SIGHUP: a reload; SIGINT: a stop)', async t => {
  const logOf = () => {
    const out = new PassThrough()
    const got = { text: '' }
    out.on('data', d => { got.text += d })
    return { out, got }
  }
  const opts = { overrides: { dns: ['127.0.0.1:0'], proxy: [], admin: '', upstreams: ['udp://127.0.0.1:9'] }, resolvConf: '/nonexistent', watchFiles: false }
  const a = logOf()
  const starting = serve({ ...opts, stdout: a.out })
  process.emit('SIGHUP', 'SIGHUP')                             // its handlers are in place before it has started
  const r = await starting
  for (let i = 0; i < 200 && !a.got.text.includes('"message":"reloaded"'); i++) await new Promise(res => setTimeout(res, 10))
  t.match(a.got.text, /"message":"started"[^]*"tunnelguard.reason":"SIGHUP"[^]*"message":"reloaded"/, 'started, then reloaded')
  process.emit('SIGTERM', 'SIGTERM')
  await r.done
  const b = logOf()
  const stopping = serve({ ...opts, stdout: b.out })
  process.emit('SIGINT', 'SIGINT')
  process.emit('SIGHUP', 'SIGHUP')
  await (await stopping).done
  t.match(b.got.text, /"message":"started"[^]*"tunnelguard.signal":"SIGINT","message":"stopping"[^]*"message":"stopped"/, 'started, then stopped')
  t.notMatch(b.got.text, /"message":"reloaded"/, 'a stop wins over a reload')
})

t.test('reloader: overrides survive a reload; listener changes are warned about; watch reloads', async t => {
  const dir = t.testdir({ 'l.txt': 'a.com\n' })
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, 'lists:\n  l: { files: [l.txt] }\ndns: { upstreams: ["udp://127.0.0.1:9"] }\n')
  const ev = memoryEvidence()
  const overrides = { dns: ['127.0.0.1:5300'] }
  let snap = buildSnapshot(applyOverrides(loadConfig(cfg), overrides))
  const rl = createReloader({ configPath: cfg, overrides, evidence: ev, current: () => snap, swap: s => { snap = s }, debounceMs: 20 })
  t.teardown(() => rl.close())
  writeFileSync(cfg, 'lists:\n  l: { files: [l.txt] }\ndns: { upstreams: ["udp://127.0.0.1:9"] }\nproxy: { listen: ["127.0.0.1:9999"] }\n')
  t.ok(await rl.reload('x'))
  t.same(snap.config.dns.listen, ['127.0.0.1:5300'], 'override kept')
  t.ok(ev.messages.some(m => /proxy\.listen changed; listeners change only on restart/.test(m.msg)))
  writeFileSync(cfg, 'lists:\n  l: { files: [l.txt] }\ndns: { upstreams: ["udp://127.0.0.1:9"] }\nproxy: { listen: ["127.0.0.1:9999"] }\nadmin: { listen: "127.0.0.1:9997" }\nsinkhole: { listen: ["127.0.0.1:80"] }\n')
  t.ok(await rl.reload('x'))
  t.match(ev.messages.filter(m => /listen changed/.test(m.msg)).slice(1), [
    { level: 'warn', msg: 'reload: sinkhole.listen changed; listeners change only on restart', fields: { listening: [], new: ['127.0.0.1:80'] } },
    { level: 'warn', msg: 'reload: admin.listen changed; listeners change only on restart', fields: { listening: ['127.0.0.1:9153'], new: ['127.0.0.1:9997'] } },
  ], 'admin and sinkhole listeners too, each once')
  // back to the addresses listened on: said so, no warning; a change from one unbound address to another is still compared with what is bound
  const warned = ev.messages.filter(m => /listen changed/.test(m.msg)).length
  writeFileSync(cfg, 'lists:\n  l: { files: [l.txt] }\ndns: { upstreams: ["udp://127.0.0.1:9"] }\nproxy: { listen: ["127.0.0.1:9998"] }\n')
  t.ok(await rl.reload('x'))
  t.match(ev.messages.filter(m => /listen/.test(m.msg)).slice(-3), [
    { level: 'warn', msg: 'reload: proxy.listen changed; listeners change only on restart', fields: { listening: ['127.0.0.1:3128'], new: ['127.0.0.1:9998'] } },
    { level: 'info', msg: 'reload: sinkhole.listen is again the addresses listened on', fields: { listening: [] } },
    { level: 'info', msg: 'reload: admin.listen is again the addresses listened on', fields: { listening: ['127.0.0.1:9153'] } },
  ])
  t.equal(ev.messages.filter(m => /listen changed/.test(m.msg)).length, warned + 1)
  writeFileSync(join(dir, 'gone.yaml'), '')
  writeFileSync(cfg, 'lists:\n  l: { files: [l.txt, gone.txt] }\n')
  t.notOk(await rl.reload('x'))
  const rejected = ev.messages.at(-1)!
  t.equal(rejected.msg, 'reload rejected; keeping the previous config and lists')
  t.match(rejected.fields, { reload_errors: [/tg\.yaml: 1 error/, /tg\.yaml:2: lists\.l\.files\[1\]: cannot read list file .*gone\.txt/] })
  t.equal((rejected.fields!.reload_errors as string[]).length, 2, 'each error once')
  writeFileSync(cfg, 'lists:\n  l: { files: [l.txt] }\ndns: { upstreams: ["udp://127.0.0.1:9"] }\nproxy: { listen: ["127.0.0.1:9999"] }\nadmin: { listen: "127.0.0.1:9997" }\nsinkhole: { listen: ["127.0.0.1:80"] }\n')
  t.ok(await rl.reload('x'))
  rl.watch()
  writeFileSync(join(dir, 'l.txt'), 'a.com\nb.com\n')
  for (let i = 0; i < 100 && snap.lists[0]!.entries !== 2; i++) await new Promise(r => setTimeout(r, 20))
  t.equal(snap.lists[0]!.entries, 2, 'a list file change reloads')
  writeFileSync(join(dir, 'unrelated.txt'), 'x')
  const n = ev.messages.length
  await new Promise(r => setTimeout(r, 100))
  t.equal(ev.messages.filter(m => m.msg === 'reloaded').length, ev.messages.slice(0, n).filter(m => m.msg === 'reloaded').length, 'other files in the directory are ignored')
})

t.test('reloader: a directory that cannot be watched is reported, SIGHUP still works', async t => {
  const ev = memoryEvidence()
  const snap = buildSnapshot(applyOverrides(loadConfig(undefined, { resolvConf: '/nonexistent' }), {}))
  const fake = { ...snap, config: { ...snap.config, lists: { x: { files: ['/nonexistent-dir/x.txt'], urls: [], refresh: 1, maxBytes: 1, action: 'block' as const } } } }
  const rl = createReloader({ overrides: {}, evidence: ev, current: () => fake, swap: () => {}, debounceMs: 200 })
  rl.watch()
  rl.close()
  t.ok(ev.messages.some(m => /^cannot watch directory; its files are compared every few seconds, and SIGHUP reloads$/.test(m.msg)))
})

t.test('serve: config-only listeners, list warnings logged, remote lists reload when fetched, alert delivery errors logged, SIGINT', async t => {
  // the remote list needs Basic auth and a key: given in its URL, never in the log
  const lport = await httpServer(t, (req, res) => {
    if (req.headers.authorization !== `Basic ${Buffer.from('u:hunter2').toString('base64')}` || !req.url!.endsWith('?key=SECRET')) { res.writeHead(401).end(); return }
    res.end('ngrok.app\nnot a name!\n')
  })
  const dir = t.testdir({ 'l.txt': 'ngrok.io\nnot a name!\n' })
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, [
    'dns: { listen: ["127.0.0.1:0"], upstreams: ["udp://127.0.0.1:9"] }',
    'proxy: { listen: [] }',
    'admin: { listen: null }',
    'state: { dir: st }',
    'lists:',
    '  l: { files: [l.txt], action: block }',
    `  r: { urls: ["http://u:hunter2@127.0.0.1:${lport}/list.txt?key=SECRET"], action: block }`,
    'alerts: { webhook: { url: "http://127.0.0.1:9/hook", retries: 0, timeout: 500ms } }',
    'reload: { watch: false }',
  ].join('\n'))
  const out = new PassThrough()
  let log = ''
  out.on('data', d => { log += d })
  const before = process.listenerCount('SIGINT')
  const r = await serve({ configPath: cfg, stdout: out })
  t.match(log, /l\.txt:2","tunnelguard.warning":"list l: invalid entry[^\n]*"message":"list warning"/, 'list warnings are logged at start')
  for (let i = 0; i < 200 && r.snapshot().lists.find(l => l.name === 'r')!.entries === 0; i++) await new Promise(res => setTimeout(res, 20))
  t.equal(r.snapshot().lists.find(l => l.name === 'r')!.entries, 1, 'the fetched remote list is in the snapshot')
  t.match(log, /"tunnelguard.reason":"remote list changed"/)
  t.match(log, `"url.full":"http://u:***@127.0.0.1:${lport}/list.txt?key=***"`, 'the fetch is logged with the URL redacted')
  t.match(log, `"tunnelguard.source":"http://u:***@127.0.0.1:${lport}/list.txt?key=***:2"`, 'so is a warning about a line of the remote list')
  const udp = r.addresses.dns.find(a => a.transport === 'udp')!
  t.equal((await dig(udp, 'x.ngrok.app')).status, 'NXDOMAIN', 'the remote entry blocks')
  for (let i = 0; i < 200 && !/webhook/i.test(log.split('"message":"dns.query"')[1] ?? ''); i++) await new Promise(res => setTimeout(res, 20))
  t.match(log, /"log\.level":"warn".*webhook/i, 'a failed alert delivery is logged, the answer was not held up')
  process.emit('SIGINT', 'SIGINT')
  await r.done
  t.match(log, /"tunnelguard.signal":"SIGINT"/)
  await new Promise(res => setImmediate(res))                 // the quiet handlers of a stopped serve go on the next turn
  t.equal(process.listenerCount('SIGINT'), before)
  t.notMatch(log, /hunter2|SECRET/, 'no password or key in any log line')
})

/** Send a CONNECT and return the proxy's status line. */
function connectStatus(port: number, target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1', () => sock.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`))
    let buf = ''
    sock.on('data', d => { buf += d; if (buf.includes('\r\n')) { sock.destroy(); resolve(buf.split('\r\n')[0]!) } })
    sock.on('error', reject)
    sock.setTimeout(5000, () => { sock.destroy(); reject(new Error('timeout')) })
  })
}

t.test('serve: the proxy resolves names through tunnelguard\'s own upstreams and decides their CNAME chains', async t => {
  const ub = await startUnbound(t)
  const out = new PassThrough()
  let log = ''
  out.on('data', d => { log += d })
  const r = await serve({ stdout: out, signals: false, watchFiles: false, resolvConf: '/nonexistent',
    overrides: { dns: [], proxy: ['127.0.0.1:0'], admin: '127.0.0.1:0', upstreams: [ub.url] } })
  t.teardown(() => r.stop())
  const port = r.addresses.proxy[0]!.port
  // c1.test → CNAME c2.test → CNAME x.ngrok.io (listed in the shipped ngrok list): refused before any dial
  t.match(await connectStatus(port, 'c1.test:443'), /^HTTP\/1\.1 403/)
  t.match(log, /"matched_on":"cname"/, 'decided on the CNAME chain the upstream returned')
  // ns.test resolves to 127.0.0.1 through unbound: a loopback destination is refused
  t.match(await connectStatus(port, 'ns.test:443'), /^HTTP\/1\.1 403/)
})

t.test('serve: /readyz stays 200 while a remote list has no copy, naming it in unloaded, until a fetch succeeds', async t => {
  let up = false
  const lport = await httpServer(t, (_req, res) => { if (up) res.end('ngrok.app\n'); else res.writeHead(503).end() })
  const dir = t.testdir({ 'l.txt': 'ngrok.io\n' })
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, [
    'dns: { listen: [], upstreams: ["udp://127.0.0.1:9"] }',
    'proxy: { listen: [] }',
    'admin: { listen: "127.0.0.1:0" }',
    'state: { dir: st }',
    'reload: { watch: false }',
    'lists:',
    '  l: { files: [l.txt], action: block }',
    `  r: { urls: ["http://u:hunter2@127.0.0.1:${lport}/list.txt?key=SECRET"], refresh: 1s, action: block }`,
  ].join('\n'))
  const r = await serve({ configPath: cfg, stdout: new PassThrough(), signals: false })
  t.teardown(() => r.stop())
  const port = r.addresses.admin!.port
  const down = await fetchText(port, '/readyz')
  t.equal(down.status, 200, 'ready: the local lists are loaded, and a dead list URL must not keep DNS out of service')
  t.match(JSON.parse(down.body), { ready: true, unloaded: [{ name: 'r', urls: [`http://u:***@127.0.0.1:${lport}/list.txt?key=***`] }] })
  up = true
  let body: { unloaded: unknown[]; lists: { name: string; entries: number }[] } = JSON.parse(down.body)
  for (let i = 0; i < 200 && body.unloaded.length > 0; i++) {
    await new Promise(res => setTimeout(res, 20))
    body = JSON.parse((await fetchText(port, '/readyz')).body)
  }
  t.same(body.unloaded, [], 'fetched: no list left unloaded')
})

t.test('serve: a reload that renames a remote list, adds one back or points it at a URL with a copy loads that copy at once', async t => {
  const lport = await httpServer(t, (req, res) => {
    if (req.url === '/a.txt') res.end('remote1.example\nremote2.example\n')
    else if (req.url === '/b.txt') res.end('b1.example\n')
    else res.writeHead(404).end()
  })
  const dir = t.testdir({ 'l.txt': 'ngrok.io\n' })
  const cfg = join(dir, 'tg.yaml')
  const config = (remote: string) => [
    'dns: { listen: [], upstreams: ["udp://127.0.0.1:9"] }', 'proxy: { listen: [] }', 'admin: { listen: "127.0.0.1:0" }',
    'state: { dir: st }', 'reload: { watch: false }', 'lists:', '  l: { files: [l.txt], action: block }', remote, '',
  ].join('\n')
  const entries = (name: string, path: string) => `  ${name}: { urls: ["http://127.0.0.1:${lport}/${path}"], refresh: 1h, action: block }`
  writeFileSync(cfg, config(entries('r', 'a.txt')))
  const out = new PassThrough()
  let log = ''
  out.on('data', d => { log += d })
  const r = await serve({ configPath: cfg, stdout: out, signals: false })
  t.teardown(() => r.stop())
  const port = r.addresses.admin!.port
  const lists = async (): Promise<Record<string, number>> => {
    const body = JSON.parse((await fetchText(port, '/readyz')).body) as { lists: { name: string; entries: number }[] }
    return Object.fromEntries(body.lists.map(l => [l.name, l.entries]))
  }
  for (let i = 0; i < 200 && (await lists()).r !== 2; i++) await new Promise(res => setTimeout(res, 20))
  t.same(await lists(), { l: 1, r: 2 }, 'fetched at start')
  const decide = (name: string) => r.snapshot().policy.decide('10.0.0.1', name, 'qname').action
  // renamed: the list under its new name has its URL's copy in the reload that renames it
  writeFileSync(cfg, config(entries('renamed', 'a.txt')))
  t.equal(await r.reload('test'), true)
  t.same(await lists(), { l: 1, renamed: 2 }, 'renamed: its copy, at once')
  t.equal(decide('remote2.example'), 'block')
  t.notMatch(log, /which is not configured/, 'no warning about the old name\'s texts')
  // taken out, then put back
  writeFileSync(cfg, config(''))
  t.equal(await r.reload('test'), true)
  writeFileSync(cfg, config(entries('r', 'a.txt')))
  t.equal(await r.reload('test'), true)
  t.same(await lists(), { l: 1, r: 2 }, 'added back: its copy, at once')
  // pointed at another URL that has a copy (b.txt fetched as list b, then r moved to it)
  writeFileSync(cfg, config(`${entries('r', 'a.txt')}\n${entries('b', 'b.txt')}`))
  t.equal(await r.reload('test'), true)
  for (let i = 0; i < 200 && (await lists()).b !== 1; i++) await new Promise(res => setTimeout(res, 20))
  writeFileSync(cfg, config(`${entries('r', 'b.txt')}\n${entries('b', 'b.txt')}`))
  t.equal(await r.reload('test'), true, '(a reload asked for applies a list that shrinks at once)')
  t.same(await lists(), { l: 1, r: 1, b: 1 }, 'the new URL\'s copy, not the old URL\'s entries')
  t.equal(decide('remote2.example'), 'pass')
  t.equal(decide('b1.example'), 'block')
})
