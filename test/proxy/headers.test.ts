import t from 'tap'
import { forwardHeaders } from '../../src/proxy/headers.js'
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
  t.same(forwardHeaders(raw, false, '1.1'), { cookie: ['a=1', 'b=2', 'c=3'], accept: '*/*', via: '1.0 other, 1.1 tunnelguard' })
  t.same(forwardHeaders(raw, true, '1.1')['x-forwarded-for'], '6.6.6.6')
  t.same(forwardHeaders(['Via', '1.1 other'], false, '1.0'), { via: '1.1 other, 1.0 tunnelguard' }, 'Via names the version received')
})

t.test('parent URL', async t => {
  t.same(parseParent('http://corp:8080'), { host: 'corp', port: 8080 })
  t.same(parseParent('http://[::1]'), { host: '::1', port: 80 })
  t.same(parseParent('http://u%40x:p%3Aw@corp:1'), { host: 'corp', port: 1, auth: `Basic ${Buffer.from('u@x:p:w').toString('base64')}` })
})

t.test('X-Forwarded-For only from trusted hops, walked right to left', async t => {
  const trust = new CidrSet(['10.0.0.0/8'])
  const peer = { ip: '10.0.0.1', port: 5 }
  t.same(effectiveClient({ ip: '192.168.1.1', port: 5 }, { 'x-forwarded-for': '1.2.3.4' }, trust), { ip: '192.168.1.1', port: 5 }, 'untrusted peer')
  t.same(effectiveClient(peer, {}, trust), peer)
  t.same(effectiveClient(peer, { 'x-forwarded-for': '6.6.6.6, 192.168.7.7, 10.0.0.2' }, trust), { ip: '192.168.7.7', port: 0 })
  t.same(effectiveClient(peer, { 'x-forwarded-for': '6.6.6.6, garbage' }, trust), peer, 'garbage stops the walk')
  t.same(effectiveClient(peer, { 'x-forwarded-for': ['7.7.7.7', '10.0.0.9'] as unknown as string }, trust), { ip: '7.7.7.7', port: 0 })
  const huge = Array(5000).fill('10.1.1.1').join(',')
  t.same(effectiveClient(peer, { 'x-forwarded-for': huge }, trust), { ip: '10.1.1.1', port: 0 }, 'bounded walk')
})
