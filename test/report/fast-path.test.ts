import t from 'tap'
import { Writable } from 'node:stream'
import { toEcs } from '../../src/observe/ecs.js'
import { createLogger, messageWriter } from '../../src/observe/logger.js'
import type { DecisionEvent } from '../../src/observe/types.js'
import { parseJson, parseLine } from '../../src/report/fields.js'
import { makeSnapshot } from '../fixtures/snapshot.js'

// Lines as the real logger writes them; parseLine (indexOf fast path) must agree with parseJson.
let text = ''
const logger = createLogger({ level: 'info', destination: new Writable({ write(c, _e, cb) { text += c; cb() } }), clock: () => Date.UTC(2026, 10, 21) })
const snap = makeSnapshot()
const log = (ev: DecisionEvent) => { text = ''; logger.warn(toEcs(ev)); return text.trimEnd() }
const d = (name: string, where: 'qname' | 'cname' | 'sni' | 'connect' | 'host' | 'url' = 'qname') => snap.policy.decide('10.0.0.5', name, where)
const base = { client: { ip: '10.0.0.5', port: 5353 }, transport: 'udp' as const, durationNs: 1 }

/** A line whose client object carries names, as ClientNames adds them (in this order unless told otherwise). */
const named = (names: Record<string, string>, extra?: Record<string, unknown>) => {
  const r = toEcs({ ...base, message: 'dns.query', decision: d('a.ngrok.io'), dns: { name: 'a.ngrok.io', type: 'A', rcode: 'NOERROR' }, extra })
  Object.assign(r.client as object, names)
  text = ''
  logger.warn(r)
  return text.trimEnd()
}

const lines: Record<string, string> = {
  names: named({ hostname: 'laptop-7', mac: '02:00:00:00:00:07', domain: 'laptop-7.corp.example' }),
  hostnameOnly: named({ hostname: 'laptop-7' }),
  macOnly: named({ mac: '02:00:00:00:00:07' }),
  domainOnly: named({ domain: 'laptop-7.corp.example' }),
  hostnameDomain: named({ hostname: 'laptop-7', domain: 'laptop-7.corp.example' }),
  escapedHostname: named({ hostname: 'pc"7', mac: '02:00:00:00:00:07' }),
  escapedMac: named({ hostname: 'laptop-7', mac: '02"00', domain: 'x.example' }),
  escapedDomain: named({ mac: '02:00:00:00:00:07', domain: 'x\\y' }),
  namesOtherOrder: named({ domain: 'laptop-7.corp.example', hostname: 'laptop-7' }),
  namesAndMore: named({ hostname: 'laptop-7' }, { client: { geo: { name: 'lab' } } }),
  cutInName: named({ hostname: 'laptop-7' }).replace(/"hostname":"laptop-7".*$/, '"hostname":"lapt'),

  dns: log({ ...base, message: 'dns.query', decision: d('a.ngrok.io'), dns: { name: 'a.ngrok.io', type: 'A', rcode: 'NOERROR', upstream: 'udp://127.0.0.1:53', cacheHit: true } }),
  cname: log({ ...base, message: 'dns.query', decision: d('x.ngrok-free.app', 'cname'), dns: { name: 'cdn.example', type: 'A', rcode: 'NOERROR' } }),
  pass: log({ ...base, message: 'dns.query', decision: d('example.com'), dns: { name: 'example.com', type: 'AAAA', rcode: 'NOERROR' } }),
  connect: log({ ...base, message: 'proxy.connect', decision: d('t.ngrok.io', 'connect'), destination: { domain: 't.ngrok.io', port: 443 } }),
  sni: log({ ...base, message: 'proxy.connect', decision: d('s.ngrok.io', 'sni'), sni: 's.ngrok.io', destination: { port: 443 } }),
  url: log({ ...base, message: 'proxy.http', decision: d('u.trycloudflare.com', 'url'), urlDomain: 'u.trycloudflare.com' }),
  upperUrl: log({ ...base, message: 'proxy.http', decision: d('abc123.ngrok-free.app', 'url'), destination: { domain: 'ABC123.Ngrok-Free.APP', port: 80 }, urlDomain: 'ABC123.Ngrok-Free.APP' }),
  connectIp: log({ ...base, message: 'proxy.connect', decision: d('connect.ngrok-agent.com', 'sni'), sni: 'connect.ngrok-agent.com', destination: { domain: '127.0.0.1', ip: '127.0.0.1', port: 443 } }),
  connectIpPass: log({ ...base, message: 'proxy.connect', decision: d('192.0.2.7', 'connect'), sni: 'example.net', destination: { domain: '192.0.2.7', ip: '192.0.2.7', port: 443 } }),
  connectIpOther: log({ ...base, message: 'proxy.connect', decision: d('b.ngrok.io', 'sni'), sni: 'a.example', destination: { domain: '192.0.2.7', port: 443 } }),
  // today's lines: the address a client named in destination.ip, no destination.domain
  connectIpNew: log({ ...base, message: 'proxy.connect', decision: d('connect.ngrok-agent.com', 'sni'), sni: 'connect.ngrok-agent.com', destination: { ip: '127.0.0.1', port: 443 }, outcome: 'failure' }),
  connectIpNewPass: log({ ...base, message: 'proxy.connect', decision: d('192.0.2.7', 'connect'), sni: 'example.net', destination: { ip: '192.0.2.7', port: 443 } }),
  connectIpNewNoSni: log({ ...base, message: 'proxy.connect', decision: d('192.0.2.7', 'connect'), destination: { ip: '192.0.2.7', port: 443 } }),
  httpIp6New: log({ ...base, message: 'proxy.http', decision: d('2001:db8::1', 'url'), destination: { ip: '2001:db8::1', port: 80 }, urlDomain: '[2001:db8::1]', outcome: 'success' }),
  connectIpNoSni: log({ ...base, message: 'proxy.connect', decision: d('192.0.2.7', 'connect'), destination: { domain: '192.0.2.7', port: 443 } }),
  escapedSni: log({ ...base, message: 'proxy.connect', decision: d('192.0.2.7', 'connect'), sni: 'a"b', destination: { domain: '192.0.2.7', port: 443 } }),
  escapedMatched: log({ ...base, message: 'dns.query', decision: d('x"y.ngrok.io', 'cname'), dns: { name: 'cdn.example', type: 'A', rcode: 'NOERROR' } }),
  matchedOnly: log({ ...base, message: 'sinkhole.capture', decision: d('m.ngrok.io', 'sni') }),
  listOnly: log({ ...base, message: 'proxy.http', decision: { ...d('bad..x', 'host'), list: 'ngrok' }, urlDomain: 'bad..x' }),
  unparseable: log({ ...base, message: 'proxy.http', decision: d('a"b\\c', 'host'), urlDomain: 'a"b\\c' }),
  escapedIp: log({ ...base, client: { ip: '10.0.0.5"', port: 1 }, message: 'dns.query', decision: d('a.ngrok.io'), dns: { name: 'a.ngrok.io', type: 'A', rcode: 'NOERROR' } }),
  clientHost: log({ ...base, message: 'dns.query', decision: d('a.ngrok.io'), dns: { name: 'a.ngrok.io', type: 'A', rcode: 'NOERROR' }, extra: { client: { domain: 'laptop.lan', mac: '02:00:00:00:00:01' } } }),
  escapedRuleset: log({ ...base, message: 'proxy.http', decision: { ...d('a.ngrok.io', 'host'), list: 'ng"rok' }, urlDomain: 'a.ngrok.io' }),
  escapedEntry: log({ ...base, message: 'proxy.http', decision: { ...d('a.ngrok.io', 'host'), entry: { ...d('a.ngrok.io').entry!, pattern: 'n"g' } }, urlDomain: 'a.ngrok.io' }),
  escapedWhere: log({ ...base, message: 'proxy.http', decision: { ...d('a.ngrok.io', 'host'), where: 'h"ost' as 'host' }, urlDomain: 'a.ngrok.io' }),
  escapedWhereNoRule: log({ ...base, message: 'proxy.http', decision: { ...d('example.com', 'host'), where: 'h"ost' as 'host' }, urlDomain: 'example.com' }),
  refused: log({ ...base, message: 'proxy.connect', decision: { action: 'block', group: 'default', where: 'connect', name: '10.1.2.3', reason: 'internal', policy: 'proxy.allowDestinations' }, destination: { domain: '10.1.2.3', port: 443 } }),
  refusedListed: log({ ...base, message: 'proxy.connect', decision: { ...d('x.trycloudflare.com', 'connect'), action: 'block', policy: 'proxy.connectPorts' }, destination: { domain: 'x.trycloudflare.com', port: 8443 } }),
  badTime: log({ ...base, message: 'dns.query', decision: d('a.ngrok.io'), dns: { name: 'a.ngrok.io', type: 'A', rcode: 'NOERROR' } }).replace('"2026-11-21T00:00:00.000Z"', '"soon"'),
  noPortDigits: log({ ...base, message: 'dns.query', decision: d('a.ngrok.io'), dns: { name: 'a.ngrok.io', type: 'A', rcode: 'NOERROR' } }).replace('"port":5353', '"port":"x"'),
  portNotFirst: log({ ...base, message: 'dns.query', decision: d('a.ngrok.io'), dns: { name: 'a.ngrok.io', type: 'A', rcode: 'NOERROR' } }).replace('"port":5353', '"mac":"02:00:00:00:00:01"'),
  noPort: log({ ...base, client: { ip: '10.1.2.4', port: 0 }, transport: 'tcp', message: 'proxy.http', decision: d('x.example', 'host'), urlDomain: 'x.example' }),
  noPortNamed: (() => {
    const r = toEcs({ ...base, client: { ip: '10.1.2.4', port: 0 }, message: 'dns.query', decision: d('a.ngrok.io'), dns: { name: 'a.ngrok.io', type: 'A', rcode: 'NOERROR' } })
    Object.assign(r.client as object, { hostname: 'laptop-8' })
    text = ''
    logger.warn(r)
    return text.trimEnd()
  })(),
  noName: log({ ...base, message: 'proxy.connect', decision: d('a.ngrok.io', 'connect'), destination: { port: 443 } }).replace(/"matched_name":"[^"]*",?/, ''),
  noAt: '{"ecs.version":"8.11.0","message":"dns.query","event":{"action":"block"},"client":{"ip":"1.2.3.4","port":1},"dns":{"question":{"name":"a.io"}}}',
  escapedTs: '{"@timestamp":"2026\\u002d11-21T00:00:00Z","ecs.version":"8.11.0","message":"dns.query","event":{"action":"block"},"client":{"ip":"1.2.3.4","port":1},"dns":{"question":{"name":"a.io"}}}',
  dotted: '{"@timestamp":"2026-11-21T00:00:00Z","ecs.version":"8.11.0","message":"dns.query","event.action":"block","client.ip":"1.2.3.4","dns.question.name":"a.io"}',
  noEcs: '{"@timestamp":"2026-11-21T00:00:00Z","message":"dns.query","event":{"action":"block"},"client":{"ip":"1.2.3.4","port":1},"dns":{"question":{"name":"a.io"}}}',
  spaced: ' {"@timestamp":"2026-11-21T00:00:00Z","ecs.version":"8.11.0","message":"dns.query","event":{"action":"block"},"client":{"ip":"1.2.3.4","port":1},"dns":{"question":{"name":"a.io"}}}',
  unterminated: '{"@timestamp":"2026-11-21T00:00:00Z","ecs.version":"8.11.0","message":"dns.query","event":{"action":"block"},"client":{"ip":"1.2.3.4","port":1},"dns":{"question":{"name":"a.io',
}
text = ''
logger.info({ dns: ['127.0.0.1:1053'] }, 'started')
lines.operational = text.trimEnd()
text = ''
logger.warn({ why: 'an action failed' }, 'list warning')
lines.operationalAction = text.trimEnd()
// the proxy's close line and a capture that named nothing, as the writers give them (event.kind event, no event.action)
const say = messageWriter(logger)
text = ''
say('info', 'proxy.close', { 'client.ip': '10.0.0.5', 'client.port': 1, 'event.category': ['network'], 'event.type': ['connection', 'end'],
  'destination.ip': '203.0.113.5', 'destination.port': 443, 'http.response.status_code': 200, 'tunnelguard.unsent_status': 502,
  'error.message': 'an action failed', 'event.outcome': 'failure' })
lines.closeLine = text.trimEnd()
text = ''
say('warn', 'sinkhole.capture', { 'client.ip': '10.0.0.5', 'client.port': 1, 'error.message': 'no SNI, no Host' })
lines.captureNotice = text.trimEnd()

t.test('the fast path agrees with JSON.parse on every shape', async t => {
  for (const [k, line] of Object.entries(lines)) t.same(parseLine(line), parseJson(line), k)
})

t.test('what the shapes read as', async t => {
  t.match(parseLine(lines.dns!), { name: 'a.ngrok.io', where: 'qname', list: 'ngrok', entry: 'ngrok.io', action: 'sinkhole' })
  t.match(parseLine(lines.cname!), { name: 'cdn.example', matched: 'x.ngrok-free.app', where: 'cname', entry: 'ngrok-free.app' })
  t.match(parseLine(lines.dns!), { matched: undefined, sni: undefined })
  t.match(parseLine(lines.connectIp!), { name: '127.0.0.1', matched: 'connect.ngrok-agent.com', sni: undefined, where: 'sni', entry: 'ngrok-agent.com' })
  t.match(parseLine(lines.connectIpPass!), { name: '192.0.2.7', matched: undefined, sni: 'example.net', action: 'pass' })
  t.match(parseLine(lines.connectIpOther!), { name: '192.0.2.7', matched: 'b.ngrok.io', sni: 'a.example' })
  t.match(parseLine(lines.connectIpNoSni!), { name: '192.0.2.7', matched: undefined, sni: undefined })
  t.match(lines.connectIpNew, /"destination":\{"ip":"127\.0\.0\.1","port":443\}/)
  t.same(parseLine(lines.connectIpNew!), parseLine(lines.connectIp!), 'an address in destination.ip reads as one in destination.domain did')
  t.same(parseLine(lines.connectIpNewPass!), parseLine(lines.connectIpPass!))
  t.same(parseLine(lines.connectIpNewNoSni!), parseLine(lines.connectIpNoSni!))
  t.match(parseLine(lines.httpIp6New!), { name: '2001:db8::1', matched: undefined, where: 'url' })
  t.match(lines.closeLine, /"event\.kind":"event"/)
  t.equal(parseLine(lines.closeLine!), 'skip', 'a close line is no decision, event.kind and event.outcome notwithstanding')
  t.equal(parseLine(lines.captureNotice!), 'skip', 'nor a capture that named nothing')
  t.match(parseLine(lines.escapedSni!), { sni: 'a"b' })
  t.match(parseLine(lines.escapedMatched!), { matched: 'x"y.ngrok.io' })
  t.match(parseLine(lines.connect!), { name: 't.ngrok.io', matched: undefined, sni: undefined })
  t.match(parseLine(lines.pass!), { action: 'pass', list: undefined, entry: undefined })
  t.match(parseLine(lines.sni!), { name: 's.ngrok.io', where: 'sni' })
  t.match(parseLine(lines.upperUrl!), { name: 'abc123.ngrok-free.app', matched: undefined, where: 'url' }, 'folded: the name asked is the name decided on')
  t.match(parseLine(lines.matchedOnly!), { name: 'm.ngrok.io', where: 'sinkhole-sni', list: 'ngrok' })
  t.match(parseLine(lines.listOnly!), { list: 'ngrok', entry: undefined })
  t.match(parseLine(lines.unparseable!), { name: 'a"b\\c', action: 'block' })
  t.match(lines.refused, /"event":\{"action":"block","kind":"event"/)
  t.match(parseLine(lines.refused!), { name: '10.1.2.3', action: 'refused' }, "the proxy's own refusal is not counted as a tunnel attempt")
  t.match(parseLine(lines.refusedListed!), { name: 'x.trycloudflare.com', action: 'block', list: 'tunnels' }, 'a refusal that keeps a list match counts for it')
  t.match(parseLine(lines.clientHost!), { hostname: undefined, domain: 'laptop.lan', mac: '02-00-00-00-00-01' })
  t.match(parseLine(lines.names!), { name: 'a.ngrok.io', hostname: 'laptop-7', mac: '02-00-00-00-00-07', domain: 'laptop-7.corp.example' })
  t.match(parseLine(lines.escapedMac!), { hostname: 'laptop-7', mac: '02"00', domain: 'x.example' })
  t.match(parseLine(lines.namesAndMore!), { hostname: 'laptop-7', mac: undefined })
  t.notMatch(lines.noPort, /"port":0/, 'a client whose port is not known (X-Forwarded-For) has none on its line')
  t.match(parseLine(lines.noPort!), { ip: '10.1.2.4', name: 'x.example', where: 'host' }, 'and is read all the same')
  t.match(parseLine(lines.noPortNamed!), { ip: '10.1.2.4', hostname: 'laptop-8', name: 'a.ngrok.io' })
  t.equal(parseLine(lines.cutInName!), 'malformed')
  t.equal(parseLine(lines.operational!), 'skip')
  t.equal(parseLine(lines.operationalAction!), 'skip')
  t.equal(parseLine(lines.badTime!), 'malformed')
  t.equal(parseLine(lines.unterminated!), 'malformed')
})

t.test('an address a client named: in related.hosts on the lines older builds wrote, in related.ip today (after the client\'s); read the same', async t => {
  for (const [k, before, today] of [
    ['connectIpNewNoSni', '{"hosts":["192.0.2.7"]}', '{"ip":["10.0.0.5","192.0.2.7"]}'],
    ['connectIpNewPass', '{"hosts":["192.0.2.7","example.net"]}', '{"hosts":["example.net"],"ip":["10.0.0.5","192.0.2.7"]}'],
    ['connectIpNew', '{"hosts":["127.0.0.1","connect.ngrok-agent.com"]}', '{"hosts":["connect.ngrok-agent.com"],"ip":["10.0.0.5","127.0.0.1"]}'],
    ['httpIp6New', '{"hosts":["2001:db8::1","[2001:db8::1]"]}', '{"ip":["10.0.0.5","2001:db8::1"]}'],
  ] as const) {
    const line = lines[k]!
    t.ok(line.endsWith(`"related":${today}}`), `${k}: today's related: ${line}`)
    const old = line.replace(`"related":${today}`, `"related":${before}`)
    t.not(old, line)
    t.same(parseLine(old), parseLine(line), `${k}: the fast path reads both alike`)
    t.same(parseJson(old), parseJson(line), `${k}: JSON.parse reads both alike`)
    t.same(parseLine(old), parseJson(old), k)
  }
})
