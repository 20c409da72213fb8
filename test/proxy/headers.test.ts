import t from 'tap'
import { forwardHeaders, replaceField } from '../../src/proxy/headers.js'
import { CidrSet } from '../../src/policy/cidr.js'
import { effectiveClient, parseParent } from '../../src/proxy/context.js'
import { oneLine, rawResponse } from '../../src/proxy/responses.js'

t.test('reasons are one printable, bounded line', async t => {
  t.equal(oneLine('a\r\nb\u001b[31m'), 'a??b?[31m')
  t.equal(oneLine('x'.repeat(600)).length, 513)
  t.match(rawResponse(503, 'busy'), /^HTTP\/1\.1 503 Service Unavailable\r\n[\s\S]*Retry-After: 1\r\n/)
})

t.test('hop-by-hop, Connection-listed, control headers dropped; Via appended; duplicates kept', async t => {
  const raw = ['Host', 'x', 'Connection', 'keep-alive, X-Secret', 'X-Secret', 's', 'Proxy-Authorization', 'Basic x', 'Keep-Alive', '5',
    'TE', 'trailers', 'Trailer', 'X', 'Upgrade', 'h2c', 'Proxy-Connection', 'k', 'X-Tunnelguard-Reason', 'forged', 'Via', '1.0 other',
    'Cookie', 'a=1', 'Cookie', 'b=2', 'Accept', '*/*', 'Cookie', 'c=3', 'X-Forwarded-For', '6.6.6.6', 'Content-Length', '5', 'Transfer-Encoding', 'chunked']
  t.same(forwardHeaders(raw, false, '1.1'), ['Via', '1.0 other, 1.1 tunnelguard', 'Cookie', 'a=1', 'Cookie', 'b=2', 'Accept', '*/*', 'Cookie', 'c=3'],
    'in order, names as sent, each field a line; Via where the first was')
  t.same(forwardHeaders(raw, true, '1.1').slice(-2), ['X-Forwarded-For', '6.6.6.6'])
  const fwd = ['Accept', '*/*', 'forwarded', 'for=6.6.6.6', 'Forwarded', 'for=7.7.7.7']
  t.same(forwardHeaders(fwd, false, '1.1'), ['Accept', '*/*', 'Via', '1.1 tunnelguard'], 'Forwarded dropped from an untrusted peer, as X-Forwarded-For')
  t.same(forwardHeaders(fwd, true, '1.1'), [...fwd, 'Via', '1.1 tunnelguard'], 'and kept, as sent, from a trusted one')
  t.same(forwardHeaders(['Via', '1.1 other', 'via', '1.0 more'], false, '1.0'), ['Via', '1.1 other, 1.0 more, 1.0 tunnelguard'], 'Via names the version received')
  t.same(forwardHeaders(['accept', '*/*'], false, '1.1'), ['accept', '*/*', 'Via', '1.1 tunnelguard'], 'no Via before: one last')
})

t.test('framing goes where the message had it, in its case, once; or last', async t => {
  const raw = ['hOST', 'client.example', 'X-A', '1', 'content-length', '5', 'Content-Length', '5', 'Transfer-Encoding', 'chunked', 'X-B', '2']
  t.same(forwardHeaders(raw, false, '1.1', ['Host', 'origin:8080', 'Content-Length', '5']),
    ['hOST', 'origin:8080', 'X-A', '1', 'content-length', '5', 'X-B', '2', 'Via', '1.1 tunnelguard'])
  t.same(forwardHeaders(['X-A', '1', 'Connection', 'host, content-length'], false, '1.0', ['Host', 'o', 'Transfer-Encoding', 'chunked']),
    ['X-A', '1', 'Via', '1.0 tunnelguard', 'Host', 'o', 'Transfer-Encoding', 'chunked'], 'absent: last, in the usual case; Connection cannot drop them')
})

t.test('replaceField: the first field of a name gets the value, in its place; the others go', async t => {
  const h = ['Max-Forwards', '5', 'X', '1', 'max-forwards', '9', 'Y', '2']
  replaceField(h, 'max-forwards', '4')
  t.same(h, ['Max-Forwards', '4', 'X', '1', 'Y', '2'])
})

t.test('parent URL', async t => {
  t.same(parseParent('http://corp:8080'), { host: 'corp', port: 8080 })
  t.same(parseParent('http://[::1]'), { host: '::1', port: 80 })
  t.same(parseParent('http://u%40x:p%3Aw@corp:1'), { host: 'corp', port: 1, auth: `Basic ${Buffer.from('u@x:p:w').toString('base64')}` })
})

t.test('X-Forwarded-For only from trusted hops, walked right to left', async t => {
  const trust = new CidrSet(['10.0.0.0/8'])
  const peer = { ip: '10.0.0.1', port: 5 }
  t.same(effectiveClient({ ip: '192.168.1.1', port: 5 }, { 'x-forwarded-for': '1.2.3.4' }, trust).client, { ip: '192.168.1.1', port: 5 }, 'untrusted peer')
  t.same(effectiveClient(peer, {}, trust).client, peer)
  t.same(effectiveClient(peer, { 'x-forwarded-for': '6.6.6.6, 192.168.7.7, 10.0.0.2' }, trust).client, { ip: '192.168.7.7', port: 0 })
  t.same(effectiveClient(peer, { 'x-forwarded-for': '6.6.6.6, garbage' }, trust), { client: peer, unreadable: 'garbage' }, 'garbage stops the walk, and is said')
  t.same(effectiveClient(peer, { 'x-forwarded-for': ['7.7.7.7', '10.0.0.9'] as unknown as string }, trust).client, { ip: '7.7.7.7', port: 0 })
  const huge = Array(5000).fill('10.1.1.1').join(',')
  t.same(effectiveClient(peer, { 'x-forwarded-for': huge }, trust), { client: { ip: '10.1.1.1', port: 0 } }, 'bounded walk')
})
