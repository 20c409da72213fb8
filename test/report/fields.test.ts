import t from 'tap'
import { parseLine } from '../../src/report/fields.js'

const ts = '2026-11-21T10:00:01.000Z'
const time = Date.parse(ts)

t.test('nested, dotted and mixed fields', async t => {
  const nested = JSON.stringify({
    '@timestamp': ts, 'log.level': 'warn', message: 'dns.query', event: { action: 'sinkhole' }, client: { ip: '10.0.0.5', port: 1 },
    dns: { question: { name: 'a.ngrok.io', type: 'A' } }, rule: { name: 'ngrok.io', ruleset: 'ngrok' }, tunnelguard: { matched_on: 'qname' },
  })
  t.same(parseLine(nested), { time, ip: '10.0.0.5', action: 'sinkhole', name: 'a.ngrok.io', where: 'qname', list: 'ngrok', entry: 'ngrok.io', hostname: undefined, mac: undefined, domain: undefined })
  const dotted = JSON.stringify({
    '@timestamp': ts, message: 'proxy.connect', 'event.action': 'block', 'client.ip': '10.0.0.6', 'client.hostname': 'laptop', 'client.domain': 'laptop.corp.example', 'client.mac': 'aa:bb:cc:dd:ee:ff',
    'destination.domain': 'example.com', 'tls.client.server_name': 'x.ngrok.io', 'rule.name': 'ngrok.io', 'rule.ruleset': 'ngrok', 'tunnelguard.matched_on': 'sni',
  })
  t.same(parseLine(dotted), { time, ip: '10.0.0.6', action: 'block', name: 'example.com', where: 'sni', list: 'ngrok', entry: 'ngrok.io', hostname: 'laptop', mac: 'AA-BB-CC-DD-EE-FF', domain: 'laptop.corp.example' })
  const mixed = JSON.stringify({ '@timestamp': ts, message: 'proxy.http', event: { action: 'alert' }, client: { ip: '10.0.0.7' }, 'url': { 'domain': 'x.trycloudflare.com' }, tunnelguard: { 'matched_on': 'host' }, 'dns.question': { name: 1 } })
  t.match(parseLine(mixed), { name: 'x.trycloudflare.com', where: 'host', action: 'alert' })
  const partial = JSON.stringify({ '@timestamp': ts, message: 'proxy.http', event: { action: 'alert' }, client: { ip: '10.0.0.7' }, 'dns.question': { type: 'A' }, dns: { question: { name: 'q.ngrok.io' } } })
  t.match(parseLine(partial), { name: 'q.ngrok.io', where: 'unknown' }, 'a dotted prefix without the leaf falls through to the nested one')
})

t.test('where: defaults and unknown values', async t => {
  const base = { '@timestamp': ts, event: { action: 'pass' }, client: { ip: '10.0.0.8' } }
  // without matched_on (a line tunnelguard did not write): not known, and not guessed from the message
  t.match(parseLine(JSON.stringify({ ...base, message: 'dns.query', dns: { question: { name: 'example.com' } } })), { where: 'unknown' })
  t.match(parseLine(JSON.stringify({ ...base, message: 'sinkhole.capture', tls: { client: { server_name: 's.ngrok.io' } } })), { where: 'sinkhole-unknown', name: 's.ngrok.io' })
  t.match(parseLine(JSON.stringify({ ...base, message: 'proxy.connect', destination: { domain: 'c.example' } })), { where: 'unknown' })
  t.match(parseLine(JSON.stringify({ ...base, message: 'proxy.http', url: { domain: 'u.example' } })), { where: 'unknown' })
  t.match(parseLine(JSON.stringify({ ...base, message: 'dns.query', tunnelguard: { matched_on: null }, dns: { question: { name: 'example.com' } } })), { where: 'unknown' }, 'null: the same')
  t.match(parseLine(JSON.stringify({ ...base, message: 'sinkhole.capture', tunnelguard: { matched_on: 'future' }, url: { domain: 'u.example' } })), { where: 'sinkhole-future' })
  t.match(parseLine(JSON.stringify({ ...base, message: 'proxy.connect', tunnelguard: { matched_on: 'future', matched_name: 'm.ngrok.io' } })), { where: 'future', name: 'm.ngrok.io' })
  t.match(parseLine(JSON.stringify({ ...base, message: 'dns.query', tunnelguard: { matched_on: 'cname' }, dns: { question: { name: 'c.example' } } })), { where: 'cname' })
  t.equal(parseLine(JSON.stringify({ ...base, message: 'proxy.http', client: null, 'client.ip': null, url: { domain: 'u.example' } })), 'malformed', 'null on the way')
  t.equal(parseLine(JSON.stringify({ ...base, message: 'proxy.http', client: { ip: 10 }, url: { domain: 'u.example' } })), 'malformed', 'fields are strings')
})

t.test('not decisions, and malformed lines', async t => {
  t.equal(parseLine('{"@timestamp":"x","log.level":"info","message":"started"}'), 'skip')
  t.equal(parseLine(JSON.stringify({ message: 'something', event: { action: 'block' } })), 'skip', 'an unknown message')
  t.equal(parseLine(JSON.stringify({ message: 'dns.query' })), 'skip', 'no action')
  for (const bad of ['not json', '[1,2]', 'null', '42', '{"message":"dns.query","event":{"action":"block"},"client":{"ip":"1.2.3.4"},"dns":{"question":{"name":"a"}}}',
    '{"@timestamp":"yesterday","message":"dns.query","event":{"action":"block"},"client":{"ip":"1.2.3.4"},"dns":{"question":{"name":"a"}}}',
    `{"@timestamp":"${ts}","message":"dns.query","event":{"action":"block"},"dns":{"question":{"name":"a"}}}`,
    `{"@timestamp":"${ts}","message":"dns.query","event":{"action":"block"},"client":{"ip":"1.2.3.4"}}`]) {
    t.equal(parseLine(bad), 'malformed', bad)
  }
  // an action --action does not take is no decision: a hand-made or corrupted line
  const line = (action: string) => `{"@timestamp":"${ts}","message":"dns.query","event":{"action":${JSON.stringify(action)}},"client":{"ip":"1.2.3.4"},"dns":{"question":{"name":"a.io"}}}`
  for (const action of ['frobnicate', 'Block', 'blocked', '', 'constructor', '__proto__', 'toString']) t.equal(parseLine(line(action)), 'malformed', `action ${JSON.stringify(action)}`)
  for (const action of ['block', 'sinkhole', 'alert', 'allow', 'pass', 'refused']) t.match(parseLine(line(action)), { action }, `action ${action}`)
})

t.test('timestamps: memoized per second, checked like Date.parse', async t => {
  const at = (ts: string) => parseLine(JSON.stringify({ '@timestamp': ts, message: 'dns.query', event: { action: 'block' }, client: { ip: '10.0.0.1' }, dns: { question: { name: 'a.io' } } }))
  t.match(at('2026-11-21T10:00:01.250Z'), { time: Date.UTC(2026, 10, 21, 10, 0, 1, 250) })
  t.match(at('2026-11-21T10:00:01.999Z'), { time: Date.UTC(2026, 10, 21, 10, 0, 1, 999) }, 'same second')
  t.match(at('2026-11-21T10:00:02.000Z'), { time: Date.UTC(2026, 10, 21, 10, 0, 2) })
  t.match(at('2026-11-21T10:00:02+01:00'), { time: Date.UTC(2026, 10, 21, 9, 0, 2) }, 'other ISO forms through Date.parse')
  t.equal(at('2026-13-45T10:00:02.000Z'), 'malformed')
  t.equal(at('2026-11-21T10:00:02. 12Z'), 'malformed')
  t.equal(at('2026-11-21T10:00:02.1x2Z'), 'malformed')
})

t.test('an action report does not know (one --action refuses) is a malformed line, not a decision', async t => {
  const line = JSON.stringify({ '@timestamp': '2026-11-22T00:00:00.000Z', message: 'dns.query', event: { action: 'quarantine' }, client: { ip: '10.9.9.9' }, dns: { question: { name: 'q.ngrok.io' } } })
  t.equal(parseLine(line), 'malformed')
})

t.test('the name decided on, when it is not the name asked, and the SNI behind an address', async t => {
  const base = { '@timestamp': ts, event: { action: 'sinkhole' }, client: { ip: '10.0.0.9', port: 1 }, rule: { name: 'ngrok-agent.com', ruleset: 'ngrok' } }
  const connectIp = JSON.stringify({
    ...base, message: 'proxy.connect', destination: { domain: '127.0.0.1', ip: '127.0.0.1', port: 443 },
    tls: { client: { server_name: 'connect.ngrok-agent.com' } }, tunnelguard: { matched_on: 'sni', matched_name: 'connect.ngrok-agent.com' },
  })
  t.match(parseLine(connectIp), { name: '127.0.0.1', matched: 'connect.ngrok-agent.com', sni: undefined, where: 'sni' }, 'the SNI is the matched name: once')
  const cname = JSON.stringify({
    ...base, message: 'dns.query', dns: { question: { name: 'evil.example.test', type: 'A' } },
    tunnelguard: { matched_on: 'cname', matched_name: 'x.ngrok-free.app' },
  })
  t.match(parseLine(cname), { name: 'evil.example.test', matched: 'x.ngrok-free.app', sni: undefined, where: 'cname' })
  const passIp = JSON.stringify({
    ...base, event: { action: 'pass' }, rule: undefined, message: 'proxy.connect', 'destination.domain': '2001:db8::7', 'tls.client.server_name': 'example.net',
    tunnelguard: { matched_on: 'connect' },
  })
  t.match(parseLine(passIp), { name: '2001:db8::7', matched: undefined, sni: 'example.net' }, 'decided on the address: the SNI behind it')
  const both = JSON.stringify({
    ...base, message: 'proxy.connect', destination: { domain: '192.0.2.7' }, tls: { client: { server_name: 'a.example' } },
    tunnelguard: { matched_on: 'sni', matched_name: 'b.ngrok.io' },
  })
  t.match(parseLine(both), { name: '192.0.2.7', matched: 'b.ngrok.io', sni: 'a.example' }, 'two names behind the address')
  const named = JSON.stringify({
    ...base, event: { action: 'pass' }, message: 'proxy.connect', destination: { domain: 'front.example' }, tls: { client: { server_name: 'other.example' } },
    tunnelguard: { matched_on: 'connect' },
  })
  t.match(parseLine(named), { name: 'front.example', matched: undefined, sni: undefined }, 'a CONNECT to a name: its SNI is not added')
  const same = JSON.stringify({ ...base, message: 'sinkhole.capture', tunnelguard: { matched_on: 'sni', matched_name: 'm.ngrok.io' } })
  t.match(parseLine(same), { name: 'm.ngrok.io', matched: undefined }, 'the matched name as the only name is the name')
})

t.test('where: a sinkhole capture is not proxy traffic, and a Host header is not a URL', async t => {
  const line = (message: string, on: string, more: object) => parseLine(JSON.stringify({
    '@timestamp': ts, message, event: { action: 'sinkhole' }, client: { ip: '10.0.0.31', port: 1 }, tunnelguard: { matched_on: on }, ...more }))
  t.match(line('sinkhole.capture', 'sni', { destination: { domain: 'connect.ngrok-agent.com', port: 443 }, tls: { client: { server_name: 'connect.ngrok-agent.com' } } }), { where: 'sinkhole-sni' })
  t.match(line('sinkhole.capture', 'host', { destination: { domain: 'abc.ngrok-free.app', port: 80 }, url: { domain: 'abc.ngrok-free.app' } }), { where: 'sinkhole-host' })
  t.match(line('proxy.connect', 'sni', { destination: { domain: '127.0.0.100', port: 443 }, tls: { client: { server_name: 'connect.ngrok-agent.com' } } }), { where: 'sni' })
  t.match(line('proxy.connect', 'connect', { destination: { domain: 'connect.ngrok-agent.com', port: 443 } }), { where: 'connect' })
  t.match(line('proxy.http', 'url', { destination: { domain: 'abc.ngrok-free.app', port: 80 }, url: { domain: 'abc.ngrok-free.app' } }), { where: 'url' })
  t.match(line('proxy.http', 'host', { destination: { domain: 'www.example.test', port: 80 }, url: { domain: 'www.example.test' }, tunnelguard: { matched_on: 'host', matched_name: 'abc.ngrok-free.app' } }), { where: 'host', matched: 'abc.ngrok-free.app' })
  t.match(line('dns.query', 'qname', { dns: { question: { name: 'a.ngrok.io' } } }), { where: 'qname' })
  t.match(line('dns.query', 'cname', { dns: { question: { name: 'a.example' } } }), { where: 'cname' })
})

t.test('names fold case and a trailing dot: one name however the client spelt it', async t => {
  const line = (more: object) => parseLine(JSON.stringify({
    '@timestamp': ts, message: 'proxy.connect', event: { action: 'sinkhole' }, client: { ip: '10.0.0.12', port: 1 }, ...more }))
  t.match(line({ destination: { domain: 'CONNECT.Ngrok-Agent.COM', port: 443 }, tunnelguard: { matched_on: 'connect', matched_name: 'connect.ngrok-agent.com' } }),
    { name: 'connect.ngrok-agent.com', matched: undefined }, 'the folded name is the name decided on: not shown twice')
  t.match(line({ destination: { domain: 'connect.ngrok-agent.com.', port: 443 } }), { name: 'connect.ngrok-agent.com' })
  t.match(line({ destination: { domain: '192.0.2.7', port: 443 }, tls: { client: { server_name: 'Example.NET' } }, tunnelguard: { matched_on: 'connect' } }),
    { name: '192.0.2.7', sni: 'example.net' })
  t.match(line({ destination: { domain: '192.0.2.7', port: 443 }, tls: { client: { server_name: 'A.Ngrok.IO' } }, tunnelguard: { matched_on: 'sni', matched_name: 'a.ngrok.io' } }),
    { name: '192.0.2.7', matched: 'a.ngrok.io', sni: undefined }, 'the SNI, folded, is the matched name')
  t.match(line({ destination: { domain: 'cdn.example', port: 443 }, tunnelguard: { matched_on: 'cname', matched_name: 'X.Ngrok-Free.App' } }), { matched: 'x.ngrok-free.app' })
})

t.test('an address a client named: destination.ip on a line without destination.domain (today), or in destination.domain (before), canonical', async t => {
  const base = { '@timestamp': ts, message: 'proxy.connect', 'event.action': 'pass', 'client.ip': '10.0.0.5', 'tunnelguard.matched_on': 'connect' }
  const read = (o: Record<string, unknown>) => (parseLine(JSON.stringify({ ...base, ...o })) as { name: string; matched?: string })
  t.match(read({ 'destination.ip': '2001:db8::1' }), { name: '2001:db8::1', matched: undefined })
  t.match(read({ 'destination.domain': '2001:DB8:0:0::1', 'destination.ip': '2001:DB8:0:0::1' }), { name: '2001:db8::1', matched: undefined }, 'written as the client did')
  t.match(read({ 'destination.domain': '::ffff:192.0.2.1', 'tunnelguard.matched_name': '192.0.2.1' }), { name: '192.0.2.1', matched: undefined })
  t.match(read({ 'destination.domain': '0x7f000001', 'tunnelguard.matched_name': '127.0.0.1' }), { name: '127.0.0.1', matched: undefined }, 'IPv4 in a URL parser\'s form')
  t.match(read({ 'destination.domain': '2130706433', 'tunnelguard.matched_name': '127.0.0.1' }), { name: '127.0.0.1', matched: undefined })
  t.match(read({ 'destination.domain': '2130706433', 'tunnelguard.matched_name': '10.0.0.1' }), { name: '2130706433', matched: '10.0.0.1' }, 'another address decided on: as written')
  t.match(read({ 'destination.domain': '1host.example', 'tunnelguard.matched_name': 'x.ngrok.io' }), { name: '1host.example', matched: 'x.ngrok.io' }, 'a name that starts with a digit')
  t.match(read({ 'destination.domain': '192.0.2.9', 'tunnelguard.matched_name': 'X.Ngrok.IO' }), { name: '192.0.2.9', matched: 'x.ngrok.io' })
  t.match(read({ 'url.domain': 'a.example', 'tunnelguard.matched_name': '2001:DB8::5', message: 'proxy.http' }), { name: 'a.example', matched: '2001:db8::5' }, 'a Host header\'s address decided on, canonical')
  t.match(read({ 'destination.domain': 'a.example', 'destination.ip': '192.0.2.1' }), { name: 'a.example' }, 'a name with the address connected to: the name')
  // a DNS question is a name, whatever it looks like
  t.match(parseLine(JSON.stringify({ ...base, message: 'dns.query', 'dns.question.name': '2130706433', 'tunnelguard.matched_name': '127.0.0.1' })), { name: '2130706433', matched: '127.0.0.1' })
})
