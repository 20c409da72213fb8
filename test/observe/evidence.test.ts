import type { Outcome } from '../../src/policy/types.js'
import t from 'tap'
import { Writable } from 'node:stream'
import type { AlertSink } from '../../src/observe/alerts.js'
import { createClientTable } from '../../src/observe/client-table.js'
import { createEvidence } from '../../src/observe/evidence.js'
import { LineSink } from '../../src/observe/line-sink.js'
import { createLogger, droppedLine } from '../../src/observe/logger.js'
import { createMetrics } from '../../src/observe/metrics.js'
import type { DecisionEvent } from '../../src/observe/types.js'
import type { Snapshot } from '../../src/snapshot-types.js'
import { makeSnapshot } from '../fixtures/snapshot.js'

function setup(opts: { queries?: 'matched' | 'all'; level?: string } = {}) {
  const chunks: string[] = []
  const stream = new Writable({ write(c, _e, cb) { chunks.push(String(c)); cb() } })
  const snap: Snapshot = makeSnapshot({ config: { log: { queries: opts.queries ?? 'matched' } } })
  const logger = createLogger({ level: opts.level ?? 'info', destination: stream, clock: () => 0 })
  const metrics = createMetrics()
  const clients = createClientTable()
  const alerted: { ev: DecisionEvent; record: Readonly<Record<string, unknown>> }[] = []
  const alerts: AlertSink = { alert: (ev, record) => { alerted.push({ ev, record }) }, close: async () => {} }
  const evidence = createEvidence({ logger, getSnapshot: () => snap, metrics, clients, alerts })
  const ev = (name: string): DecisionEvent => ({
    message: 'dns.query', decision: snap.policy.decide('10.0.0.5', name, 'qname'),
    client: { ip: '10.0.0.5', port: 5353 }, transport: 'udp', durationNs: 10,
    dns: { name, type: 'A', rcode: 'NOERROR' },
  })
  const lines = () => chunks.join('').split('\n').filter(Boolean).map(l => JSON.parse(l) as Record<string, any>)
  return { evidence, metrics, clients, alerted, ev, lines }
}

t.test('matched decisions: logged (alerts at warn), counted, tabled, alerted; pass only counted', async t => {
  const s = setup()
  s.evidence.decision(s.ev('a.ngrok.io'))
  s.evidence.decision(s.ev('example.com'))
  s.evidence.decision(s.ev('x.trycloudflare.com'))
  const lines = s.lines()
  t.equal(lines.length, 2)
  t.match(lines[0], { 'log.level': 'warn', message: 'dns.query', event: { action: 'sinkhole', kind: 'alert' }, client: { ip: '10.0.0.5' }, rule: { ruleset: 'ngrok' } })
  t.match(lines[1], { 'log.level': 'warn', event: { action: 'alert' } })
  t.same(s.alerted.map(a => a.ev.decision.name), ['a.ngrok.io', 'x.trycloudflare.com'])
  t.match(s.alerted[0]!.record, { event: { action: 'sinkhole' } })
  t.same(s.clients.list()[0]!.actions, { sinkhole: 1, alert: 1 })
  const text = await s.metrics.registry.metrics()
  t.match(text, 'tunnelguard_decisions_total{source="dns",action="pass",list="none",matched_on="qname"} 1')
  t.equal(s.evidence.counters, s.metrics.counters)
})

t.test('log.queries: all logs pass at info, keeps it out of the client table', async t => {
  const s = setup({ queries: 'all' })
  s.evidence.decision(s.ev('example.com'))
  t.match(s.lines(), [{ 'log.level': 'info', event: { action: 'pass', kind: 'event' } }])
  t.equal(s.clients.size, 0)
  t.equal(s.alerted.length, 0)
})

t.test('allow is logged at info and tabled, not alerted; below the level it is not built', async t => {
  const s = setup()
  const allow = { ...s.ev('docs.ngrok.io'), decision: { ...s.ev('docs.ngrok.io').decision, action: 'allow' as const } }
  s.evidence.decision(allow)
  t.match(s.lines(), [{ 'log.level': 'info', event: { action: 'allow', kind: 'event' } }])
  t.equal(s.alerted.length, 0)
  t.same(s.clients.list()[0]!.actions, { allow: 1 })
  const quiet = setup({ level: 'warn' })
  quiet.evidence.decision(allow)
  t.same(quiet.lines(), [])
  t.equal(quiet.clients.size, 1)
})

t.test('a refusal by the proxy\'s own rules on an unlisted name: an event at info, sent to no alert output', async t => {
  const s = setup()
  const ev = s.ev('intra.example')
  const refusal = { ...ev, decision: { ...ev.decision, action: 'block' as const, reason: 'intra.example resolves to 10.1.2.3', policy: 'proxy.allowDestinations' } }
  s.evidence.decision(refusal)
  t.match(s.lines(), [{ 'log.level': 'info', event: { action: 'block', kind: 'event' }, tunnelguard: { policy: 'proxy.allowDestinations' } }])
  t.equal(s.alerted.length, 0)
  t.same(s.clients.list()[0]!.actions, { refused: 1 }, 'counted apart from tunnel attempts')
  // with a list's match kept on it, it is an alert like any listed block
  const listed = s.ev('x.trycloudflare.com')
  s.evidence.decision({ ...listed, decision: { ...listed.decision, action: 'block', policy: 'proxy.connectPorts' } })
  t.match(s.lines()[1], { 'log.level': 'warn', event: { action: 'block', kind: 'alert' }, rule: { ruleset: 'tunnels' }, tunnelguard: { policy: 'proxy.connectPorts' } })
  t.equal(s.alerted.length, 1)
})

t.test('an alert still reaches the sink when warn is below the log level', async t => {
  const s = setup({ level: 'error' })
  s.evidence.decision(s.ev('a.ngrok.io'))
  t.same(s.lines(), [])
  t.equal(s.alerted.length, 1)
})

t.test('operational messages, and no alert sink', async t => {
  const s = setup()
  s.evidence.info('started', { dns: ['127.0.0.1:1053'] })
  s.evidence.warn('upstream down')
  s.evidence.error('boom', { code: 'X' })
  s.evidence.info('ready')
  s.evidence.warn('list warning', { source: 'x.txt:3' })
  s.evidence.error('bad')
  // a plain value under an ECS field set's name would have the line rejected at ingest: moved
  s.evidence.warn('alert webhook failed', { url: 'https://h.example/***', error: 'ECONNREFUSED', file: '/x', 'error.code': 'E' })
  s.evidence.info('listening', { dns: [{ address: '127.0.0.1', port: 53 }], proxy: ['127.0.0.1:3128'] })
  t.match(s.lines(), [
    { 'log.level': 'info', message: 'started', 'tunnelguard.dns': ['127.0.0.1:1053'] },
    { 'log.level': 'warn', message: 'upstream down' },
    { 'log.level': 'error', message: 'boom', 'tunnelguard.code': 'X' },
    { 'log.level': 'info', message: 'ready' },
    { 'log.level': 'warn', message: 'list warning', 'tunnelguard.source': 'x.txt:3' },
    { 'log.level': 'error', message: 'bad' },
    { 'log.level': 'warn', message: 'alert webhook failed', 'url.full': 'https://h.example/***', 'error.message': 'ECONNREFUSED', 'file.path': '/x', 'error.code': 'E' },
    { 'log.level': 'info', message: 'listening', 'tunnelguard.dns': [{ address: '127.0.0.1', port: 53 }], 'tunnelguard.proxy': ['127.0.0.1:3128'] },
  ])
  for (const l of s.lines()) for (const k of ['url', 'error', 'file', 'source', 'dns']) t.notOk(k in l, `no plain "${k}" on "${l.message}"`)
  t.same(s.lines()[0], { 'log.level': 'info', '@timestamp': s.lines()[0]!['@timestamp'], 'ecs.version': '8.11.0', 'event.kind': 'event', 'tunnelguard.dns': ['127.0.0.1:1053'], message: 'started' })
  t.same(s.lines().map(l => l['event.kind']), Array(8).fill('event'), 'ECS event.kind on every operational line: event')
})

t.test('operational lines: every field ECS does not define goes under tunnelguard., in lower snake case; ECS fields stay', async t => {
  const s = setup()
  // the custom keys the DNS side, reloads, remote lists and the descriptor warning give their lines
  s.evidence.warn('no file descriptor free (EMFILE)', { 'error.code': 'EMFILE', where: 'dns-upstream', count: 3, fix: 'raise the limit' })
  s.evidence.error('reload rejected', { reason: 'SIGHUP', reload_errors: ['x'], retry_in_ms: 2000 })
  s.evidence.warn('dns client over its in-flight limit', { 'client.ip': '10.0.0.1', clientPrefix: '10.0.0.0/24', servfail: 2, maxInFlightPerClient: 100 })
  s.evidence.warn('dns upstream socket error', { upstream: 'udp://127.0.0.1:53', error: 'recvmsg ECONNREFUSED', errors: 1 })
  s.evidence.info('proxy.close', { 'client.ip': '10.0.0.2', 'source.port': 5, 'event.duration': 7, 'tunnelguard.requests': 1, error: { message: 'reset' }, tags: ['a'], labels: { k: 'v' } })
  s.evidence.info('odd', { 'a.b': 1, proxy: { listen: [] } })
  t.same(s.lines().map(l => { const { '@timestamp': _, 'ecs.version': __, 'event.kind': kind, ...rest } = l; t.equal(kind, 'event'); return rest }), [
    { 'log.level': 'warn', 'error.code': 'EMFILE', 'tunnelguard.where': 'dns-upstream', 'tunnelguard.count': 3, 'tunnelguard.fix': 'raise the limit', message: 'no file descriptor free (EMFILE)' },
    { 'log.level': 'error', 'tunnelguard.reason': 'SIGHUP', 'tunnelguard.reload_errors': ['x'], 'tunnelguard.retry_in_ms': 2000, message: 'reload rejected' },
    { 'log.level': 'warn', 'client.ip': '10.0.0.1', 'tunnelguard.client_prefix': '10.0.0.0/24', 'tunnelguard.servfail': 2, 'tunnelguard.max_in_flight_per_client': 100, 'related.ip': ['10.0.0.1'], message: 'dns client over its in-flight limit' },
    { 'log.level': 'warn', 'tunnelguard.upstream': 'udp://127.0.0.1:53', 'error.message': 'recvmsg ECONNREFUSED', 'tunnelguard.errors': 1, message: 'dns upstream socket error' },
    { 'log.level': 'info', 'client.ip': '10.0.0.2', 'source.port': 5, 'event.duration': 7, 'tunnelguard.requests': 1, error: { message: 'reset' }, tags: ['a'], labels: { k: 'v' }, 'related.ip': ['10.0.0.2'], message: 'proxy.close' },
    { 'log.level': 'info', 'tunnelguard.a.b': 1, 'tunnelguard.proxy': { listen: [] }, message: 'odd' },
  ])
  const snap = makeSnapshot()
  const clients = createClientTable()
  const e = createEvidence({ logger: createLogger({ level: 'silent' }), getSnapshot: () => snap, metrics: createMetrics(), clients })
  e.decision({ message: 'dns.query', decision: snap.policy.decide('10.0.0.1', 'a.ngrok.io', 'qname'), client: { ip: '10.0.0.1', port: 1 }, transport: 'udp', durationNs: 1 })
  t.equal(clients.size, 1, 'recorded without an alert sink')
})

t.test('client names are added to the lines that are built, and to alerts', async t => {
  const chunks: string[] = []
  const snap = makeSnapshot()
  const asked: string[] = []
  const names = { annotate: (c: Record<string, unknown>, ip: string) => { asked.push(ip); c.hostname = 'laptop-5' } }
  const alerted: Readonly<Record<string, unknown>>[] = []
  const e = createEvidence({
    logger: createLogger({ level: 'info', destination: new Writable({ write(c, _e, cb) { chunks.push(String(c)); cb() } }) }),
    getSnapshot: () => snap, metrics: createMetrics(), clients: createClientTable(), names,
    alerts: { alert: (_ev, record) => { alerted.push(record) }, close: async () => {} },
  })
  const ev = (name: string): DecisionEvent => ({ message: 'dns.query', decision: snap.policy.decide('10.0.0.5', name, 'qname'), client: { ip: '10.0.0.5', port: 1 }, transport: 'udp', durationNs: 1 })
  e.decision(ev('a.ngrok.io'))
  e.decision(ev('example.com'))
  t.same(asked, ['10.0.0.5'], 'not for a pass that is not logged')
  t.match(JSON.parse(chunks.join('')), { client: { ip: '10.0.0.5', port: 1, hostname: 'laptop-5' } })
  t.match(alerted, [{ client: { hostname: 'laptop-5' } }])
  // a client named by X-Forwarded-For has no port: none on its line, names or not
  chunks.length = 0
  e.decision({ ...ev('b.ngrok.io'), client: { ip: '10.0.0.5', port: 0 } })
  t.same(JSON.parse(chunks.join('')).client, { ip: '10.0.0.5', hostname: 'laptop-5' })
})

t.test('a MAC a resolver in front gave (dns.trustEdnsFrom) is on the line and in the table, with names or without, over a lease\'s', async t => {
  const snap = makeSnapshot()
  const run = (names?: { annotate: (c: Record<string, unknown>) => void }) => {
    const chunks: string[] = []
    const clients = createClientTable()
    const e = createEvidence({
      logger: createLogger({ level: 'info', destination: new Writable({ write(c, _e, cb) { chunks.push(String(c)); cb() } }) }),
      getSnapshot: () => snap, metrics: createMetrics(), clients, names,
    })
    e.decision({ message: 'dns.query', decision: snap.policy.decide('10.0.0.7', 'a.ngrok.io', 'qname'), client: { ip: '10.0.0.7', port: 0, mac: '02-00-5E-10-00-0A' },
      transport: 'udp', durationNs: 1, dns: { name: 'a.ngrok.io', type: 'A', rcode: 'NOERROR' }, extra: { 'source.ip': '192.0.2.53', 'source.port': 4053 } })
    return { line: JSON.parse(chunks.join('')), rows: clients.list() }
  }
  const bare = run()
  t.same(bare.line.client, { ip: '10.0.0.7', mac: '02-00-5E-10-00-0A' }, 'no names configured: the MAC alone')
  t.same(bare.line.source, { ip: '192.0.2.53', port: 4053 }, 'the resolver that named it')
  t.match(bare.rows, [{ ip: '10.0.0.7', mac: '02-00-5E-10-00-0A' }])
  const leased = run({ annotate: c => Object.assign(c, { hostname: 'kiosk-lobby', mac: '02-00-00-00-00-99' }) })
  t.same(leased.line.client, { ip: '10.0.0.7', hostname: 'kiosk-lobby', mac: '02-00-5E-10-00-0A' }, 'the MAC seen asking, over the lease\'s')
  t.match(leased.rows, [{ hostname: 'kiosk-lobby', mac: '02-00-5E-10-00-0A' }])
})

t.test('the live table gets the names the line got, as of the decision: a lease handed on splits the row', async t => {
  const snap = makeSnapshot()
  let holder: Record<string, string> = { hostname: 'dev-bob', mac: '02:00:00:00:00:22' }
  let calls = 0
  const names = { annotate: (c: Record<string, unknown>) => { calls++; Object.assign(c, holder) } }
  const clients = createClientTable()
  const chunks: string[] = []
  const e = createEvidence({
    logger: createLogger({ level: 'info', destination: new Writable({ write(c, _e, cb) { chunks.push(String(c)); cb() } }) }),
    getSnapshot: () => snap, metrics: createMetrics(), clients, names,
  })
  const ev = (name: string): DecisionEvent => ({ message: 'dns.query', decision: snap.policy.decide('10.0.0.22', name, 'qname'), client: { ip: '10.0.0.22', port: 1 }, transport: 'udp', durationNs: 1, dns: { name, type: 'A', rcode: 'NOERROR' } })
  e.decision(ev('connect.ngrok-agent.com'))
  holder = { hostname: 'kiosk-lobby', mac: '02:00:00:00:00:99' }
  e.decision(ev('x.trycloudflare.com'))
  t.equal(calls, 2, 'one lookup per decision, for the line and the table both')
  t.same(chunks.join('').trim().split('\n').map(l => JSON.parse(l).client.hostname), ['dev-bob', 'kiosk-lobby'])
  t.same(clients.list().map(c => [c.hostname, c.mac, c.names.map(n => n.name)]), [
    ['kiosk-lobby', '02:00:00:00:00:99', ['x.trycloudflare.com']],
    ['dev-bob', '02:00:00:00:00:22', ['connect.ngrok-agent.com']],
  ])
  const quiet = createClientTable()
  createEvidence({ logger: createLogger({ level: 'silent' }), getSnapshot: () => snap, metrics: createMetrics(), clients: quiet, names }).decision(ev('a.ngrok.io'))
  t.match(quiet.list(), [{ hostname: 'kiosk-lobby' }], 'named in the table when no line is written')
})

t.test('logs(action): what decision() turns into an event, the one rule servers ask', async t => {
  const matched = setup().evidence
  t.same(['block', 'sinkhole', 'alert', 'allow', 'pass'].map(a => matched.logs(a as Outcome)), [true, true, true, true, false])
  const all = setup({ queries: 'all' }).evidence
  t.equal(all.logs('pass'), true, 'log.queries: all logs passes too')
})

t.test('without an alert sink the line is written from text: the same line as with one, names added when known', async t => {
  const snap = makeSnapshot()
  const run = (opts: { alerts: boolean; names?: (c: Record<string, unknown>, ip: string) => void; sink?: boolean }) => {
    const chunks: string[] = []
    // stdout's own sink (sync mode, its write(2) replaced): the line goes to it as bytes
    const sink = new LineSink({ fd: 99, mode: 'sync', delayMs: 0, writeSync: ((_fd: number, b: Buffer, off: number, len: number) => { chunks.push(b.toString('utf8', off, off + len)); return len }) as never })
    t.teardown(() => sink.close())
    const e = createEvidence({
      logger: createLogger({ level: 'info', destination: opts.sink ? sink : new Writable({ write(c, _e, cb) { chunks.push(String(c)); cb() } }), clock: () => 0 }),
      getSnapshot: () => snap, metrics: createMetrics(), clients: createClientTable(),
      names: opts.names ? { annotate: opts.names } : undefined,
      alerts: opts.alerts ? { alert: () => {}, close: async () => {} } : undefined,
    })
    for (const [ip, name] of [['10.0.0.5', 'a.ngrok.io'], ['10.0.0.6', 'b.ngrok.io'], ['10.0.0.6', 'x"y\u00e9\\z.ngrok.io']] as const) {
      e.decision({ message: 'dns.query', decision: snap.policy.decide(ip, name, 'qname'), client: { ip, port: 7 }, transport: 'udp', durationNs: 3, dns: { name, type: 'A', rcode: 'NXDOMAIN' } })
    }
    sink.flushSync()
    return chunks.join('').split('\n').filter(Boolean)
  }
  const names = (c: Record<string, unknown>, ip: string) => { if (ip === '10.0.0.5') c.hostname = 'laptop-5' }
  const fast = run({ alerts: false })
  t.equal(fast.length, 3)
  t.same(fast, run({ alerts: true }), 'byte for byte the line built from the ECS object')
  t.same(run({ alerts: false, sink: true }), fast, 'to stdout\'s sink, as bytes: the same lines')
  t.match(JSON.parse(fast[2]!), { dns: { question: { name: 'x"y\u00e9\\z.ngrok.io' } }, tunnelguard: { unparseable: true } }, 'a name JSON must escape')
  const named = run({ alerts: false, names })
  t.same(named, run({ alerts: true, names }))
  t.same(run({ alerts: false, names, sink: true }), named)
  t.match(JSON.parse(named[0]!), { client: { ip: '10.0.0.5', port: 7, hostname: 'laptop-5' }, rule: { name: 'ngrok.io' } })
  t.same(JSON.parse(named[1]!).client, { ip: '10.0.0.6', port: 7 }, 'no names known: the plain client')
  const quiet = createEvidence({ logger: createLogger({ level: 'error', destination: new Writable({ write(_c, _e, cb) { t.fail('nothing is written below the level'); cb() } }) }), getSnapshot: () => snap, metrics: createMetrics(), clients: createClientTable() })
  quiet.decision({ message: 'dns.query', decision: snap.policy.decide('10.0.0.5', 'a.ngrok.io', 'qname'), client: { ip: '10.0.0.5', port: 7 }, transport: 'udp', durationNs: 3 })
})

t.test('no file descriptor free: counted per place in /metrics, and a warn line at most once per 10 s', async t => {
  const s = setup()
  s.evidence.counters.fdExhausted('check')
  s.evidence.counters.fdExhausted('listener')
  const text = await s.metrics.registry.metrics()
  t.match(text, 'tunnelguard_fd_exhausted_total{where="check"} 1')
  t.match(text, 'tunnelguard_fd_exhausted_total{where="listener"} 1')
  t.match(text, 'tunnelguard_fd_exhausted_total{where="dns-upstream"} 0')
  const warned = s.lines().filter(l => l['error.code'] === 'EMFILE')
  t.equal(warned.length, 1, 'one line for both')
  t.match(warned[0], { 'log.level': 'warn', 'tunnelguard.where': 'check', 'tunnelguard.count': 1 })
  const host = setup()
  host.evidence.counters.fdExhausted('listener', 'ENFILE')
  t.match(host.lines().filter(l => l['error.code'] === 'ENFILE'), [{ 'tunnelguard.where': 'listener', message: /ENFILE: the whole host/ }], 'the host\'s limit is said as such')
})

t.test('stdout not keeping up: block, sinkhole and alert decisions and sinkhole captures are kept past maxWaiting; other lines are not', async t => {
  const snap = makeSnapshot({ config: { log: { queries: 'all' } } })
  let open = false
  const out: string[] = []
  const sink = new LineSink({
    fd: 99, mode: 'sync', delayMs: 0, retryMs: 5, maxWaiting: 8192, evidenceReserve: 1 << 20, dropNotice: droppedLine(() => ''),
    writeSync: ((_fd: number, b: Buffer, off: number, len: number) => {
      if (!open) throw Object.assign(new Error('EAGAIN'), { code: 'EAGAIN' })
      out.push(b.toString('utf8', off, off + len)); return len
    }) as never,
  })
  t.teardown(() => sink.close())
  const logger = createLogger({ level: 'info', destination: sink, clock: () => 0 })
  const e = createEvidence({ logger, getSnapshot: () => snap, metrics: createMetrics(), clients: createClientTable() })
  const dns = (name: string, tag: string, d = snap.policy.decide('10.0.0.5', name, 'qname')): DecisionEvent => ({
    message: 'dns.query', decision: { ...d, reason: tag, tail: undefined }, client: { ip: '10.0.0.5', port: 7 }, transport: 'udp', durationNs: 3,
    dns: { name, type: 'A', rcode: 'NOERROR' },
  })
  e.info('first')
  await new Promise(r => setImmediate(r))                     // its batch is stalled on EAGAIN
  let n = 0
  while (sink.lost.behind === 0) e.decision(dns('example.com', `pass ${n++}`))
  t.ok(n > 5, `passes fill maxWaiting (${n})`)
  const listed = snap.policy.decide('10.0.0.5', 'a.ngrok.io', 'qname')
  t.equal(listed.action, 'sinkhole')
  e.decision(dns('a.ngrok.io', 'sinkhole, written as bytes'))
  e.decision(dns('a.ngrok.io', 'block, written as bytes', { ...listed, action: 'block' }))
  e.decision({ ...dns('x.trycloudflare.com', 'alert, from its ECS record'), extra: { 'source.ip': '10.0.0.1' } })
  e.decision({
    message: 'sinkhole.capture', decision: { ...listed, action: 'allow', reason: 'allowed, but it reached the sinkhole', tail: undefined },
    client: { ip: '10.0.0.5', port: 8 }, transport: 'tcp', durationNs: 3, sni: 'a.ngrok.io', destination: { ip: '10.9.9.9', port: 443 },
  })
  e.decision(dns('example.com', 'pass after'))
  e.decision(dns('docs.ngrok.io', 'allow after', { ...listed, action: 'allow' }))
  e.decision(dns('intra.example', 'refusal after', { ...snap.policy.decide('10.0.0.5', 'intra.example', 'qname'), action: 'block', policy: 'proxy.allowDestinations' }))
  e.warn('an operational warning after')
  t.same(sink.lost, { behind: 5, behindEvidence: 0, failed: 0 }, 'the first pass past the bound, and the four lines after the evidence')
  open = true
  await new Promise<void>(r => sink.flush(() => r()))
  const lines = out.join('').split('\n').filter(Boolean).map(l => JSON.parse(l) as Record<string, any>)
  const reasons = lines.map(l => l.tunnelguard?.reason as string | undefined).filter(r => r !== undefined && !r.startsWith('pass '))
  t.same(reasons, ['sinkhole, written as bytes', 'block, written as bytes', 'alert, from its ECS record', 'allowed, but it reached the sinkhole'], 'the evidence, in order')
  t.equal(lines.filter(l => l.tunnelguard?.reason?.startsWith('pass ')).length, n - 1, 'the passes before the bound')
  t.match(lines.at(-1), { message: 'log lines dropped: stdout did not keep up', tunnelguard: { dropped_lines: 5, dropped_evidence_lines: 0 } })
})

t.test('an operational line that names addresses has related.ip, as a decision line: client, source, destination, each once', async t => {
  const { ecsFields } = await import('../../src/observe/ecs-fields.js')
  t.same(ecsFields({ 'client.ip': '10.0.0.9', 'source.ip': '10.0.0.1', 'destination.ip': '10.0.0.9', count: 1 }),
    { 'client.ip': '10.0.0.9', 'source.ip': '10.0.0.1', 'destination.ip': '10.0.0.9', 'tunnelguard.count': 1, 'related.ip': ['10.0.0.9', '10.0.0.1'] })
  t.same(ecsFields({ 'destination.ip': '192.0.2.1' }), { 'destination.ip': '192.0.2.1', 'related.ip': ['192.0.2.1'] })
  const own = { 'client.ip': '10.0.0.9', 'related.ip': ['10.0.0.7'] }
  t.equal(ecsFields(own), own, 'a line that gives its own related keeps it')
  const nested = { 'client.ip': '10.0.0.9', related: { hosts: ['a.example'] } }
  t.equal(ecsFields(nested), nested)
  const none = { upstream: 'udp://127.0.0.1:53' }
  t.same(ecsFields(none), { 'tunnelguard.upstream': 'udp://127.0.0.1:53' }, 'no address, no related.ip')
  const plain = { 'event.duration': 5 }
  t.equal(ecsFields(plain), plain, 'nothing to move or add: the same object')
})
