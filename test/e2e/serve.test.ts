// tunnelguard serve as a user runs it: a real process, real dig, unbound upstream, real signals.
import t from 'tap'
import { createSocket } from 'node:dgram'
import { connect, createServer } from 'node:net'
import { writeFileSync, appendFileSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import dnsPacket from 'dns-packet'
import { startUnbound, freePort, type TestLike } from '../fixtures/unbound.js'
import { dig } from '../fixtures/dig.js'
import { startServe } from '../fixtures/serve-process.js'
import { packageVersion } from '../fixtures/package-version.js'

async function setup(t: TestLike, extra = '') {
  const ub = await startUnbound(t)
  const dir = t.testdir({ 'tunnels.txt': 'ngrok.io\nngrok-agent.com\n' })
  const port = await freePort()
  const cfg = join(dir, 'tg.yaml')
  const base = [
    `dns: { listen: ["127.0.0.1:${port}"], upstreams: ["${ub.url}"], timeout: 1s }`,
    'proxy: { listen: [] }',
    'admin: { listen: null }',
    'lists:',
    '  tunnels: { files: [tunnels.txt], action: sinkhole }',
    extra,
  ].join('\n')
  writeFileSync(cfg, base)
  return { ub, dir, port, cfg, base, server: { address: '127.0.0.1', port } }
}

/** A steady UDP query load (every `everyMs`), answers matched by ID; bounded by `ms`. */
function load(port: number, names: readonly string[], ms: number, everyMs = 5) {
  const sock = createSocket('udp4')
  const sent = new Map<number, { name: string; at: number }>()
  const answers: { name: string; at: number; a: string | undefined; rcode: string | undefined }[] = []
  sock.on('message', msg => {
    const p = dnsPacket.decode(msg)
    const q = sent.get(p.id!)
    if (!q) return
    sent.delete(p.id!)
    const a = p.answers?.find(x => x.type === 'A') as { data: string } | undefined
    answers.push({ name: q.name, at: Date.now(), a: a?.data, rcode: (p as { rcode?: string }).rcode })
  })
  let id = 0
  const timer = setInterval(() => {
    const name = names[id % names.length]!
    id = (id + 1) & 0xffff
    sent.set(id, { name, at: Date.now() })
    sock.send(dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] }), port, '127.0.0.1')
  }, everyMs)
  const done = new Promise<void>(r => setTimeout(() => {
    clearInterval(timer)
    setTimeout(() => { sock.close(); r() }, 1500)          // let the last answers arrive
  }, ms))
  return { done, answers, sent, total: () => answers.length + sent.size }
}

t.test('serve: blocked, sinkholed and forwarded answers, one ECS line naming the client', async t => {
  const s = await setup(t)
  const p = await startServe(t, ['--config', s.cfg])
  const sink = await dig(s.server, 'connect.ngrok-agent.com')
  t.equal(sink.status, 'NOERROR')
  t.equal(sink.answer[0]?.data, '0.0.0.0', 'sinkholed to the null address')
  t.equal((await dig(s.server, 'a.test')).answer[0]?.data, '192.0.2.1', 'forwarded to unbound')
  const line = await p.waitFor(l => l.message === 'dns.query')
  t.match(line, {
    '@timestamp': String, 'log.level': 'warn', message: 'dns.query',
    event: { action: 'sinkhole', kind: 'alert', category: ['network'], type: ['protocol', 'denied'] }, client: { ip: '127.0.0.1', port: Number },
    network: { transport: 'udp' }, dns: { question: { name: 'connect.ngrok-agent.com', type: 'A' } },
    rule: { name: 'ngrok-agent.com', ruleset: 'tunnels' }, tunnelguard: { group: 'default', matched_on: 'qname' },
  })
  t.equal(await p.stop('SIGTERM'), 0, 'SIGTERM: drained and exited 0')
  t.match(p.lines().at(-1), { message: 'stopped' })
})

t.test('a zone transfer asked for is refused and said at the default log.queries (matched), once per client per window', async t => {
  const s = await setup(t)
  const p = await startServe(t, ['--config', s.cfg])
  t.match((await dig(s.server, 'test', 'AXFR')).raw, /Transfer failed/)
  t.equal((await dig(s.server, 'test', 'AXFR')).raw.includes('XFR size'), false, 'no zone for the second either')
  const line = await p.waitFor(l => l.message === 'dns zone transfer refused')
  t.match(line, { 'log.level': 'warn', 'client.ip': '127.0.0.1', 'tunnelguard.refused': 1 })
  t.equal(await p.stop('SIGTERM'), 0)
  const said = p.lines().filter(l => l.message === 'dns zone transfer refused')
  t.same(said.map(l => l['tunnelguard.refused']), [1, 1], 'the second, at the stop')
  t.notOk(p.lines().some(l => l.message === 'dns.query'), 'no query line: log.queries is matched')
})

t.test('/metrics shows the DNS cache: its entries and the bytes its answers take', async t => {
  const s = await setup(t)
  const admin = await freePort()
  writeFileSync(s.cfg, s.base.replace('admin: { listen: null }', `admin: { listen: "127.0.0.1:${admin}" }`))
  const p = await startServe(t, ['--config', s.cfg])
  const gauges = async () => {
    const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text()
    const read = (name: string) => Number(new RegExp(`^tunnelguard_dns_cache_${name} (\\d+)$`, 'm').exec(text)?.[1])
    return { entries: read('entries'), bytes: read('bytes') }
  }
  t.same(await gauges(), { entries: 0, bytes: 0 }, 'empty before the first answer')
  // two answers and a negative one (cached by the zone's SOA)
  const rcodes = []
  for (const name of ['a.test', 'ns.test', 'nothing.test', 'a.test']) rcodes.push((await dig(s.server, name)).status)
  t.same(rcodes, ['NOERROR', 'NOERROR', 'NXDOMAIN', 'NOERROR'])
  const g = await gauges()
  t.equal(g.entries, 3, 'three answers cached (the second a.test was a hit)')
  t.ok(g.bytes >= 3 * 64 && g.bytes <= 3 * 65_536, `their bytes: ${g.bytes}`)
  t.ok(p.lines().some(l => l.message === 'dns.listening'))
})

t.test('an idle serve sleeps: its main thread wakes about ten times a second, not a hundred', async t => {
  const s = await setup(t)
  const admin = await freePort()
  writeFileSync(s.cfg, s.base.replace('admin: { listen: null }', `admin: { listen: "127.0.0.1:${admin}" }`))
  const p = await startServe(t, ['--config', s.cfg])
  t.equal((await fetch(`http://127.0.0.1:${admin}/metrics`)).status, 200, 'the metrics (and their event-loop monitor) are on')
  const pid = p.child.pid!
  // the main thread's voluntary context switches: each is a sleep it woke from
  const switches = (): number => Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8'))![1])
  await new Promise(r => setTimeout(r, 500))
  const before = switches()
  await new Promise(r => setTimeout(r, 2000))
  const woke = switches() - before
  // prom-client's default event-loop monitor (10 ms) alone woke it ~200 times in 2 s
  t.ok(woke < 80, `woke ${woke} times in 2 s`)
})

t.test('SIGHUP under steady load: a new entry blocks within a second, no query lost; a broken config changes nothing', async t => {
  const s = await setup(t, 'reload: { watch: false }')
  const p = await startServe(t, ['--config', s.cfg])
  const l = load(s.port, ['a.test', 'x.ngrok.io'], 4000)
  await new Promise(r => setTimeout(r, 1000))
  appendFileSync(join(s.dir, 'tunnels.txt'), 'a.test\n')
  const hupAt = Date.now()
  p.child.kill('SIGHUP')
  await p.waitFor(l => l.message === 'reloaded')
  await new Promise(r => setTimeout(r, 1200))
  writeFileSync(s.cfg, s.base + '\nreload: { watch: false }\ndns: { nope: 1 }\n')
  p.child.kill('SIGHUP')
  const rejected = await p.waitFor(l => l.message === 'reload rejected; keeping the previous config and lists')
  t.equal(rejected['log.level'], 'error')
  t.match(JSON.stringify(rejected), /tg\.yaml:\d+: YAML: Map keys must be unique/, 'the errors, with file and line, are in the log line')
  await l.done
  t.equal(l.sent.size, 0, `every query answered (${l.answers.length})`)
  t.ok(l.answers.length > 300, `steady load (${l.answers.length} queries)`)
  const before = l.answers.filter(a => a.name === 'a.test' && a.at < hupAt)
  t.ok(before.length > 0 && before.every(a => a.a === '192.0.2.1'), 'a.test answered normally before the reload')
  const firstBlocked = l.answers.find(a => a.name === 'a.test' && a.a === '0.0.0.0')
  t.ok(firstBlocked, 'a.test is sinkholed after SIGHUP')
  t.ok(firstBlocked!.at - hupAt <= 1000, `within a second (${firstBlocked!.at - hupAt} ms)`)
  const after = l.answers.filter(a => a.name === 'a.test' && a.at > firstBlocked!.at)
  t.ok(after.every(a => a.a === '0.0.0.0'), 'and stays sinkholed, also after the rejected reload')
  t.ok(l.answers.filter(a => a.name === 'x.ngrok.io').every(a => a.a === '0.0.0.0'), 'the old entries never lapse')
  t.equal((await dig(s.server, 'a.test')).answer[0]?.data, '0.0.0.0', 'still serving the last good snapshot')
})

t.test('a list file change reloads without a signal', async t => {
  const s = await setup(t, 'reload: { debounce: 50ms }')
  const p = await startServe(t, ['--config', s.cfg])
  t.equal((await dig(s.server, 'a.test')).answer[0]?.data, '192.0.2.1')
  appendFileSync(join(s.dir, 'tunnels.txt'), 'a.test\n')
  await p.waitFor(l => l.message === 'reloaded' && JSON.stringify(l).includes('file changed'))
  t.equal((await dig(s.server, 'a.test')).answer[0]?.data, '0.0.0.0')
})

t.test('report names three clients with their names, counts and times, in all three formats', async t => {
  const s = await setup(t)
  const p = await startServe(t, ['--config', s.cfg])
  for (const [ip, names] of [['127.0.0.1', ['connect.ngrok-agent.com']], ['127.0.0.2', ['x.ngrok.io', 'x.ngrok.io']], ['127.0.0.3', ['tunnel.ngrok.io', 'a.test']]] as const) {
    for (const n of names) t.equal((await dig(s.server, n, 'A', ['-b', ip])).status, 'NOERROR', `${ip} asked ${n}`)
  }
  await p.waitFor(l => JSON.stringify(l).includes('tunnel.ngrok.io'))
  await p.stop()
  const log = join(s.dir, 'tg.jsonl')
  writeFileSync(log, p.stdout())
  const { execFileSync } = await import('node:child_process')
  const { CLI } = await import('../fixtures/serve-process.js')
  const run = (...a: string[]) => execFileSync(process.execPath, [CLI, 'report', log, ...a], { encoding: 'utf8' })
  const table = run()
  for (const ip of ['127.0.0.1', '127.0.0.2', '127.0.0.3']) t.match(table, ip, `table names ${ip}`)
  t.match(table, /x\.ngrok\.io/)
  t.ok(table.split('\n').every(l => l.length <= 80), 'table fits 80 columns')
  const json = JSON.parse(run('--format', 'json'))
  const clients = (json.clients ?? json) as { ip?: string; client?: string }[]
  t.equal(clients.length, 3, 'three clients')
  const two = clients.find(c => JSON.stringify(c).includes('127.0.0.2'))!
  t.match(JSON.stringify(two), /"x\.ngrok\.io"/)
  t.match(JSON.stringify(two), /2026|20\d\d-\d\d-\d\dT/, 'with times')
  const csv = run('--format', 'csv')
  t.match(csv.split('\n')[0], /client/i, 'csv header')
  for (const ip of ['127.0.0.1', '127.0.0.2', '127.0.0.3']) t.match(csv, ip)
  t.notMatch(table + csv, /a\.test/, 'an unlisted name (pass, not logged) is not evidence')
})

t.test('SIGTERM closes an open tunnel and logs its close line before "stopped"', async t => {
  let dialled!: () => void
  const reached = new Promise<void>(r => { dialled = r })
  const sink = createServer(c => { c.on('error', () => {}); dialled() })
  await new Promise<void>(r => sink.listen(0, '127.0.0.1', r))
  t.teardown(() => sink.close())
  const sinkPort = (sink.address() as { port: number }).port
  const s = await setup(t)
  const proxyPort = await freePort()
  writeFileSync(s.cfg, s.base.replace('proxy: { listen: [] }',
    `proxy: { listen: ["127.0.0.1:${proxyPort}"], connectPorts: [${sinkPort}], allowDestinations: [127.0.0.0/8] }`))
  const p = await startServe(t, ['--config', s.cfg])
  const client = connect(proxyPort, '127.0.0.1')
  client.on('error', () => {})
  const closed = new Promise<void>(r => client.once('close', () => r()))
  client.write(`CONNECT 127.0.0.1:${sinkPort} HTTP/1.1\r\nHost: x\r\n\r\n`)
  await new Promise<void>(r => client.once('data', () => r()))
  client.write('SSH-2.0-test\r\n')                            // not TLS: the tunnel opens on the CONNECT host
  await reached                                               // the tunnel is spliced to the sink
  t.equal(await p.stop('SIGTERM'), 0)
  await closed
  const order = p.lines().map(l => l.message).filter(m => m === 'stopping' || m === 'proxy.close' || m === 'stopped')
  t.same(order, ['stopping', 'proxy.close', 'stopped'], 'the tunnel\'s close line, then stopped')
})

/** Whether `pid` has a handler for SIGHUP (bit 0 of SigCgt): tunnelguard's first module has run. */
function catchesHup(pid: number): boolean {
  try {
    const m = /^SigCgt:\s+([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m !== null && (BigInt(`0x${m[1]}`) & 1n) === 1n
  } catch {
    return false
  }
}

t.test('a SIGHUP while serve is still starting is a reload once it has started, not the end of the process', async t => {
  const s = await setup(t)
  const { spawn } = await import('node:child_process')
  const { CLI } = await import('../fixtures/serve-process.js')
  // without the test runner's hooks (it puts them back into NODE_OPTIONS of a node it spawns, so
  // a shell clears them): they catch SIGHUP too, and SigCgt must show tunnelguard's own handler
  const child = spawn('/bin/sh', ['-c', 'NODE_OPTIONS= exec "$0" "$@"', process.execPath, CLI, 'serve', '--config', s.cfg], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', d => { out += String(d) })
  const exited = new Promise<number | null>(r => child.once('exit', code => r(code)))
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  for (let i = 0; i < 2000 && !catchesHup(child.pid!); i++) await new Promise(r => setTimeout(r, 1))
  t.ok(catchesHup(child.pid!), 'its first module catches SIGHUP')
  // sent before the DNS listener is bound (the old handler came only after every listener)
  const port = `:${s.port.toString(16).toUpperCase().padStart(4, '0')} `
  t.notOk(readFileSync('/proc/net/udp', 'utf8').includes(port), 'sent before the DNS listener was up')
  child.kill('SIGHUP')
  const end = Date.now() + 10_000
  while (Date.now() < end && !/"message":"reloaded"/.test(out) && child.exitCode === null) await new Promise(r => setTimeout(r, 20))
  t.equal(child.signalCode, null, 'not ended by the signal')
  t.equal(child.exitCode, null, 'still running')
  const lines = out.split('\n').filter(Boolean).map(l => JSON.parse(l) as { message: string; 'tunnelguard.reason'?: string })
  t.ok(lines.findIndex(l => l.message === 'started') < lines.findIndex(l => l.message === 'reloaded' && l['tunnelguard.reason'] === 'SIGHUP'), 'started, then reloaded (SIGHUP)')
  t.equal((await dig(s.server, 'connect.ngrok-agent.com')).status, 'NOERROR', 'and it answers')
  child.kill('SIGTERM')
  t.equal(await exited, 0)
})

t.test('SIGHUP and a second SIGTERM while stopping neither kill it nor cut the drain: the query in flight is answered', async t => {
  const { slowUpstream } = await import('../fixtures/slow-upstream.js')
  const up = await slowUpstream(t, 600, { answers: q => [{ type: 'A', name: q.questions![0]!.name, ttl: 60, data: '192.0.2.44' }] })
  const s = await setup(t)
  writeFileSync(s.cfg, s.base.replace(/upstreams: \["[^"]+"\], timeout: 1s/, `upstreams: ["${up.url}"], timeout: 2s`))
  const p = await startServe(t, ['--config', s.cfg])
  const answer = dig(s.server, 'slow.example')
  await new Promise(r => setTimeout(r, 150))                  // the query is at the upstream
  p.child.kill('SIGTERM')
  await p.waitFor(l => l.message === 'stopping')
  p.child.kill('SIGHUP')
  p.child.kill('SIGTERM')
  const a = await answer
  t.equal(a.status, 'NOERROR')
  t.same(a.answer.map(r => r.data), ['192.0.2.44'], 'answered from the upstream during the drain')
  // it ends by itself once drained (a further SIGTERM after `stopped` would race its exit); its output read to the end
  const code = p.child.exitCode !== null && p.child.stdout!.closed ? p.child.exitCode
    : await new Promise<number | null>(r => p.child.once('close', c => r(c)))
  t.equal(code, 0, 'exit 0')
  const messages = p.lines().map(l => l.message)
  t.ok(messages.includes('reload not done: stopping'))
  t.ok(messages.includes('already stopping'))
  t.equal(messages.at(-1), 'stopped', 'stopped, last')
})

t.test('signals that keep coming through the stop and after "stopped" do not turn a clean stop into exit 143', async t => {
  const s = await setup(t)
  const p = await startServe(t, ['--config', s.cfg])
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(r => p.child.once('exit', (code, signal) => r({ code, signal })))
  p.child.kill('SIGTERM')
  // every millisecond, a SIGHUP and a SIGTERM, until it has gone (bounded: 10 s)
  const end = Date.now() + 10_000
  let sent = 0
  while (p.child.exitCode === null && p.child.signalCode === null && Date.now() < end) {
    try {
      process.kill(p.child.pid!, sent % 2 === 0 ? 'SIGHUP' : 'SIGTERM')
      sent++
    } catch { break }                                          // gone between the check and the kill
    await new Promise(r => setTimeout(r, 1))
  }
  const { code, signal } = await closed
  t.ok(sent > 2, `signals sent while it stopped (${sent})`)
  t.equal(signal, null, 'not ended by a signal')
  t.equal(code, 0, 'exit 0')
  t.equal(p.lines().filter(l => l.message === 'stopped').length, 1)
})

t.test('npm start: the signal a supervisor sends to the process it started stops serve (no server left behind)', async t => {
  const s = await setup(t)
  const { spawn } = await import('node:child_process')
  const { dirname } = await import('node:path')
  const { CLI } = await import('../fixtures/serve-process.js')
  const root = dirname(dirname(CLI))
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: { start: string } }
  // the script as npm runs it (`sh -c SCRIPT ARGS`), less the build the suite has done; node from this test's PATH
  const script = pkg.scripts.start.replace(/^npm run build --silent && /, '').replace(/\bnode /, `${process.execPath} `)
  t.not(script, pkg.scripts.start, 'the build step is where it was')
  // in a process group of its own, so that whatever is left is killed at the end
  const child = spawn('/bin/sh', ['-c', `${script} --config ${s.cfg}`], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' }, detached: true })
  let out = ''
  child.stdout.on('data', d => { out += String(d) })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(r => child.once('exit', (code, signal) => r({ code, signal })))
  t.teardown(() => { try { process.kill(-child.pid!, 'SIGKILL') } catch { /* gone */ } })
  const end = Date.now() + 20_000
  while (Date.now() < end && !out.includes('"message":"started"') && child.exitCode === null) await new Promise(r => setTimeout(r, 20))
  t.match(out, /"message":"started"/)
  t.equal((await dig(s.server, 'connect.ngrok-agent.com')).status, 'NOERROR', 'it answers')
  child.kill('SIGTERM')                                        // what npm forwards, to the process it started
  const { code, signal } = await exited
  t.same({ code, signal }, { code: 0, signal: null }, 'the process npm started is serve itself, and it stopped cleanly')
  const port = `:${s.port.toString(16).toUpperCase().padStart(4, '0')} `
  t.notOk(readFileSync('/proc/net/udp', 'utf8').includes(port), 'nothing listens on its port')
})

t.test('the started line and /metrics say which version runs (service.version, tunnelguard_build_info)', async t => {
  const dir = t.testdir({})
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, 'dns: { listen: [], upstreams: ["udp://127.0.0.1:9"] }\nproxy: { listen: [] }\nadmin: { listen: "127.0.0.1:0" }\nreload: { watch: false }\n')
  const p = await startServe(t, ['--config', cfg], [], 30_000)
  const started = p.lines().find(l => l.message === 'started') as { 'service.version': string; 'tunnelguard.admin': { port: number } }
  t.equal(started['service.version'], packageVersion)
  const text = await fetch(`http://127.0.0.1:${started['tunnelguard.admin'].port}/metrics`).then(r => r.text())
  t.match(text, `\ntunnelguard_build_info{version="${packageVersion}"} 1\n`)
})
