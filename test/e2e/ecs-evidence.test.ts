// The ECS evidence a SIEM reads, from `tunnelguard serve` as a user runs it: curl and dig against
// loopback origins and unbound. An address a client names is destination.ip (never
// destination.domain); every line has event.kind; event.outcome says whether what was let through
// was served (DNS answers, the proxy's close line) or failed (SERVFAIL, 502/504).
import t from 'tap'
import { createServer } from 'node:http'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { dig } from '../fixtures/dig.js'
import { exchange, freePort, run, startOrigin } from '../fixtures/origin.js'
import { runCli } from '../fixtures/cli.js'
import { clientHello, records } from '../fixtures/client-hello.js'
import { startServe } from '../fixtures/serve-process.js'
import { startUnbound } from '../fixtures/unbound.js'

type Line = Record<string, unknown> & { message: string; event?: Record<string, unknown> }
/** ECS's allowed values of event.kind. */
const KINDS = ['alert', 'asset', 'enrichment', 'event', 'metric', 'state', 'pipeline_error', 'signal']

t.test('serve: destination.ip for an address, event.kind on every line, event.outcome on answers and closes', async t => {
  // unbound drops every query for drop.test (local-zone deny): tunnelguard's upstream times out
  const ub = await startUnbound(t, { server: ['local-zone: "drop.test." deny'] })
  const origin = await startOrigin(t)                    // 127.0.0.1
  const v6 = createServer((req, res) => res.end(`v6 ${req.url}`))
  await new Promise<void>(r => v6.listen(origin.port, '::1', r))   // the same port on ::1
  t.teardown(() => { v6.closeAllConnections(); v6.close() })
  const dead = await freePort()                          // nothing listens: the origin fails
  const [dnsPort, proxyPort] = [await freePort(), await freePort()]
  const dir = t.testdir({ 'tunnels.txt': 'ngrok.io\nngrok-agent.com\n' })
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, [
    `dns: { listen: ["127.0.0.1:${dnsPort}"], upstreams: ["${ub.url}"], timeout: 1s }`,
    `proxy: { listen: ["127.0.0.1:${proxyPort}"], allowDestinations: ["127.0.0.0/8", "::1/128"], connectPorts: [${origin.port}, ${dead}], httpPorts: [80, ${origin.port}, ${dead}] }`,
    'admin: { listen: null }',
    'log: { queries: all }',
    'lists:',
    '  tunnels: { files: [tunnels.txt], action: sinkhole }',
  ].join('\n'))
  const p = await startServe(t, ['--config', cfg])
  const proxy = `http://127.0.0.1:${proxyPort}`
  const curl = (...args: string[]) => run('curl', ['-sS', '-m', '5', '-x', proxy, ...args])

  // 1. addresses named by the client: CONNECT and plain HTTP, IPv4 and IPv6
  t.match((await curl('-p', `http://127.0.0.1:${origin.port}/c4`)).stdout, /"url":"\/c4"/, 'CONNECT 127.0.0.1: served')
  t.equal((await curl('-p', `http://[::1]:${origin.port}/c6`)).stdout, 'v6 /c6', 'CONNECT [::1]: served')
  t.match((await curl(`http://127.0.0.1:${origin.port}/p4`)).stdout, /"url":"\/p4"/, 'http://127.0.0.1: served')
  t.equal((await curl(`http://[::1]:${origin.port}/p6`)).stdout, 'v6 /p6', 'http://[::1]: served')
  // 3. failures: the origin refuses (502; a CONNECT's is sent in the tunnel after its 200), a name without addresses (502)
  t.match((await curl('-i', `http://127.0.0.1:${dead}/`)).stdout, /^HTTP\/1\.1 502 /)
  const tunnel = await exchange(proxyPort, [`CONNECT 127.0.0.1:${dead} HTTP/1.1\r\n\r\n`, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'], { gapMs: 50 })
  t.match(tunnel.data, /^HTTP\/1\.1 200 Connection established\r\n\r\nHTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*ECONNREFUSED/)
  t.ok(tunnel.closed)
  t.match((await curl('-i', `http://nx.test:${origin.port}/`)).stdout, /^HTTP\/1\.1 502 [\s\S]*nx\.test has no addresses/i)
  t.match((await curl('-i', 'http://a.ngrok.io/')).stdout, /^HTTP\/1\.1 403 /, 'a listed name: refused')
  t.equal((await dig({ address: '127.0.0.1', port: dnsPort }, 'a.test')).status, 'NOERROR')
  t.equal((await dig({ address: '127.0.0.1', port: dnsPort }, 'nx.test')).status, 'NXDOMAIN')
  t.equal((await dig({ address: '127.0.0.1', port: dnsPort }, 'drop.test', 'A', ['+tries=1', '+time=3'])).status, 'SERVFAIL')
  t.equal((await dig({ address: '127.0.0.1', port: dnsPort }, 'connect.ngrok-agent.com')).status, 'NOERROR', 'sinkholed')
  await p.waitFor(l => l.message === 'dns.query' && (l.dns as { question: { name: string } }).question.name === 'connect.ngrok-agent.com')
  // every close line is written once its connection is closed (curl's and the raw client's all are)
  const closes = () => p.lines().filter(l => l.message === 'proxy.close').length
  for (let i = 0; i < 200 && closes() < 8; i++) await new Promise(r => setTimeout(r, 25))
  t.equal(await p.stop('SIGTERM'), 0)
  const lines = p.lines() as Line[]

  // 2. event.kind on every line: event on the close and operational lines, as ECS allows
  t.same(lines.filter(l => !KINDS.includes(String(l.event?.kind ?? l['event.kind']))).map(l => l.message), [], 'every line has an ECS event.kind')
  const decisions = new Set(['dns.query', 'proxy.connect', 'proxy.http', 'sinkhole.capture'])
  const operational = lines.filter(l => !decisions.has(l.message))
  t.same([...new Set(operational.map(l => l['event.kind']))], ['event'])
  for (const m of ['started', 'proxy.listening', 'proxy.close', 'stopped']) t.ok(operational.some(l => l.message === m), `an operational "${m}" line`)

  // 1. the decision and close lines of the addresses: destination.ip, canonical, no destination.domain
  const proxyLines = lines.filter(l => l.message === 'proxy.connect' || l.message === 'proxy.http')
  const dst = (l: Line) => l.destination as { domain?: string; ip?: string; port: number }
  const byIp = (ip: string, message: string) => proxyLines.filter(l => l.message === message && dst(l).ip === ip && dst(l).port === origin.port)
  for (const [ip, message] of [['127.0.0.1', 'proxy.connect'], ['::1', 'proxy.connect'], ['127.0.0.1', 'proxy.http'], ['::1', 'proxy.http']]) {
    const got = byIp(ip!, message!)
    t.equal(got.length, 1, `${message} to ${ip}: one decision line`)
    t.notOk('domain' in dst(got[0]!), `${message} to ${ip}: no destination.domain`)
    t.notOk('matched_name' in (got[0]!.tunnelguard as object), 'the address is the name asked')
  }
  t.same(byIp('::1', 'proxy.http')[0]!.url, { domain: '[::1]' }, 'url.domain as ever: an IPv6 literal in brackets')
  t.same(byIp('127.0.0.1', 'proxy.http')[0]!.url, { domain: '127.0.0.1' })
  const closeLines = lines.filter(l => l.message === 'proxy.close')
  t.equal(closeLines.length, 8, 'a close line per connection')
  const toAddress = closeLines.filter(l => l['destination.ip'] !== undefined && l['destination.domain'] === undefined)
  t.same(toAddress.map(l => l['destination.ip']).sort(), ['127.0.0.1', '127.0.0.1', '127.0.0.1', '127.0.0.1', '::1', '::1'], 'the six connections to addresses')
  t.same(lines.filter(l => /^[\d.]+$|:/.test(String(dst(l)?.domain ?? l['destination.domain'] ?? 'x'))).map(l => l.message), [],
    'no line has an address in destination.domain')

  // 3. event.outcome: DNS answers and the proxy's close lines; a failed name on its decision line; none on a block
  const dnsOutcome = (name: string) => lines.find(l => l.message === 'dns.query' && (l.dns as { question: { name: string } }).question.name === name)!.event!.outcome
  t.same(['a.test', 'nx.test', 'drop.test', 'connect.ngrok-agent.com'].map(dnsOutcome), ['success', 'success', 'failure', undefined])
  t.match(lines.find(l => l.message === 'dns.query' && (l.dns as { question: { name: string } }).question.name === 'drop.test'), { dns: { response_code: 'SERVFAIL' } })
  const closeOf = (pred: (l: Line) => boolean) => closeLines.filter(pred).map(l => [l['http.response.status_code'], l['tunnelguard.unsent_status'], l['event.outcome']])
  t.same(closeOf(l => l['destination.port'] === origin.port && l['destination.domain'] === undefined),
    [[200, undefined, 'success'], [200, undefined, 'success'], [200, undefined, 'success'], [200, undefined, 'success']], 'served: success')
  t.same(closeOf(l => l['destination.port'] === dead).sort(), [[200, 502, 'failure'], [502, undefined, 'failure']], 'the origin failed: failure (plain 502, CONNECT after its 200)')
  t.same(closeOf(l => l['destination.domain'] === 'nx.test'), [[502, undefined, 'failure']], 'the name had no address: failure')
  t.same(closeOf(l => l['destination.domain'] === 'a.ngrok.io'), [[403, undefined, undefined]], 'refused: none (its decision line is denied)')
  const nx = proxyLines.find(l => dst(l).domain === 'nx.test')!
  t.match(nx.event, { action: 'pass', outcome: 'failure' }, 'a name without addresses: the decision line says the request failed')
  t.match(nx, { error: { message: 'nx.test has no addresses' } })
  t.notOk('outcome' in proxyLines.find(l => dst(l).domain === 'a.ngrok.io')!.event!, 'a block: no outcome')
  t.notOk(proxyLines.filter(l => dst(l).domain !== 'nx.test').some(l => 'outcome' in l.event!), 'a decision line written before the dial says nothing of it')

  // report reads the lines: the close and operational lines are not decisions, an address is one name
  const file = join(dir, 'serve.jsonl')
  writeFileSync(file, p.stdout())
  const r = await runCli(['report', file, '--format', 'json'])
  t.equal(r.code, 0, r.err)
  const j = JSON.parse(r.out) as { summary: { decisions: number; skipped: number }; clients: { names: { name: string; count: number }[] }[] }
  t.equal(j.summary.decisions, lines.filter(l => decisions.has(l.message)).length, 'every decision line counted, and only those')
  t.equal(j.summary.skipped, operational.length)
  const names = Object.fromEntries(j.clients.flatMap(c => c.names).map(n => [n.name, n.count]))
  t.match(names, { '127.0.0.1': 4, '::1': 2, 'nx.test': 2, 'a.ngrok.io': 1, 'a.test': 1, 'drop.test': 1 })
})

t.test('serve: related.ip holds the client\'s address, then each address seen where a name goes (CONNECT, URL, Host header, SNI), canonical, never in related.hosts', async t => {
  const origin = await startOrigin(t)                    // 127.0.0.1
  const v6 = createServer((req, res) => res.end(`v6 ${req.url}`))
  await new Promise<void>(r => v6.listen(origin.port, '::1', r))   // the same port on ::1
  t.teardown(() => { v6.closeAllConnections(); v6.close() })
  const [dnsPort, proxyPort] = [await freePort(), await freePort()]
  const dir = t.testdir({ 'tunnels.txt': 'ngrok.io\n' })
  const cfg = join(dir, 'tg.yaml')
  // no name here is resolved: the upstream (nothing listens on port 9) is never asked
  writeFileSync(cfg, [
    `dns: { listen: ["127.0.0.1:${dnsPort}"], upstreams: ["udp://127.0.0.1:9"] }`,
    `proxy: { listen: ["127.0.0.1:${proxyPort}"], allowDestinations: ["127.0.0.0/8", "::1/128"], connectPorts: [${origin.port}], httpPorts: [${origin.port}] }`,
    'admin: { listen: null }',
    'log: { queries: all }',
    'lists:',
    '  tunnels: { files: [tunnels.txt], action: block }',
  ].join('\n'))
  const p = await startServe(t, ['--config', cfg])
  // curl from 127.0.0.5, the raw hellos from 127.0.0.1: the client's address is the first in related.ip
  const curl = (...args: string[]) => run('curl', ['-sS', '-m', '5', '--interface', '127.0.0.5', '-x', `http://127.0.0.1:${proxyPort}`, ...args])

  t.match((await curl('-p', `http://127.0.0.1:${origin.port}/c4`)).stdout, /"url":"\/c4"/, 'CONNECT 127.0.0.1')
  t.equal((await curl(`http://[::1]:${origin.port}/p6`)).stdout, 'v6 /p6', 'http://[::1]/')
  t.match((await curl('-H', `Host: [0:0:0:0:0:0:0:1]:${origin.port}`, `http://127.0.0.1:${origin.port}/host`)).stdout, /"url":"\/host"/, 'a Host header with another address')
  // a ClientHello whose SNI is an address (RFC 6066 forbids it; clients send it), to the origin (which answers it 400)
  const hello = (sni: string) => exchange(proxyPort, [`CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\n\r\n`, records(clientHello({ names: [sni] }))], { gapMs: 50 })
  t.match((await hello('192.0.2.1')).data, /^HTTP\/1\.1 200 Connection established\r\n\r\n/)
  t.match((await hello('S.Example')).data, /^HTTP\/1\.1 200 Connection established\r\n\r\n/)
  for (let i = 0; i < 200 && p.lines().filter(l => l.message === 'proxy.close').length < 5; i++) await new Promise(r => setTimeout(r, 25))
  t.equal(await p.stop('SIGTERM'), 0)

  const decisions = (p.lines() as Line[]).filter(l => l.message === 'proxy.connect' || l.message === 'proxy.http')
  const related = (l: Line) => l.related as { hosts?: string[]; ip?: string[] } | undefined
  t.same(decisions.map(l => [l.message, related(l)]), [
    ['proxy.connect', { ip: ['127.0.0.5', '127.0.0.1'] }],
    ['proxy.http', { ip: ['127.0.0.5', '::1'] }],
    ['proxy.http', { ip: ['127.0.0.5', '127.0.0.1', '::1'] }],
    ['proxy.connect', { ip: ['127.0.0.1', '192.0.2.1'] }],
    ['proxy.connect', { hosts: ['s.example'], ip: ['127.0.0.1'] }],
  ], 'each address once (the client connecting from 127.0.0.1 to 127.0.0.1 too), canonical; a name beside them in related.hosts')
  t.same(decisions.flatMap(l => related(l)?.hosts ?? []).filter(h => /^[\d.]+$|:/.test(h)), [], 'no address in related.hosts')

  // report reads them: the address the client named is the name asked
  const file = join(dir, 'serve.jsonl')
  writeFileSync(file, p.stdout())
  const r = await runCli(['report', file, '--format', 'json'])
  t.equal(r.code, 0, r.err)
  const j = JSON.parse(r.out) as { summary: { decisions: number }; clients: { names: { name: string; count: number }[] }[] }
  t.equal(j.summary.decisions, decisions.length)
  const counts: Record<string, number> = {}
  for (const n of j.clients.flatMap(c => c.names)) counts[n.name] = (counts[n.name] ?? 0) + n.count
  t.same(counts, { '127.0.0.1': 4, '::1': 1 })
})
