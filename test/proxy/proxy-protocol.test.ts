import t from 'tap'
import { parseProxyHeader } from '../../src/proxy/proxy-protocol.js'

const v2 = (cmd: number, fam: number, addr: Buffer) =>
  Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from([cmd, fam, addr.length >> 8, addr.length & 255]), addr])

t.test('v1', async t => {
  t.same(parseProxyHeader(Buffer.from('PROXY TCP4 10.1.2.3 127.0.0.1 5555 3128\r\nGET')), { kind: 'header', length: 41, source: { ip: '10.1.2.3', port: 5555 } })
  t.match(parseProxyHeader(Buffer.from('PROXY TCP6 fd00::1 ::1 5555 3128\r\n')), { kind: 'header', source: { ip: 'fd00::1' } })
  t.match(parseProxyHeader(Buffer.from('PROXY TCP6 FD00:0:0:0:0:0:0:1 ::1 5555 3128\r\n')), { source: { ip: 'fd00::1' } }, 'written out in full')
  t.match(parseProxyHeader(Buffer.from('PROXY TCP6 ::ffff:10.1.2.3 ::1 5555 3128\r\n')), { source: { ip: '10.1.2.3' } }, 'IPv4-mapped')
  t.same(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n')), { kind: 'header', length: 15 })
  t.same(parseProxyHeader(Buffer.from('PROX')), { kind: 'partial' })
  t.same(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4')), { kind: 'partial' })
  t.match(parseProxyHeader(Buffer.from(`PROXY ${'x'.repeat(120)}`)), { kind: 'invalid' })
  t.match(parseProxyHeader(Buffer.from(`PROXY ${'x'.repeat(110)}\r\n`)), { kind: 'invalid' })
  for (const bad of ['PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n', 'PROXY TCP4 ::1 5.6.7.8 1 2\r\n', 'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n', 'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n', 'PROXY TCP4 1.2.3.4\r\n']) {
    t.match(parseProxyHeader(Buffer.from(bad)), { kind: 'invalid' }, bad)
  }
  t.same(parseProxyHeader(Buffer.from('GET / HTTP/1.1\r\n')), { kind: 'none' })
})

t.test('v2', async t => {
  const a4 = Buffer.from([10, 9, 8, 7, 127, 0, 0, 1, 0x15, 0xb3, 0x0c, 0x38])
  t.same(parseProxyHeader(Buffer.concat([v2(0x21, 0x11, a4), Buffer.from('GET')])), { kind: 'header', length: 28, source: { ip: '10.9.8.7', port: 5555 } })
  const a6 = Buffer.alloc(36); a6[0] = 0xfd; a6[15] = 1; a6.writeUInt16BE(4242, 32)
  t.same(parseProxyHeader(v2(0x21, 0x21, a6)), { kind: 'header', length: 52, source: { ip: 'fd00::1', port: 4242 } }, 'IPv6 as the DNS side and the report write it (RFC 5952)')
  t.same(parseProxyHeader(v2(0x20, 0x00, Buffer.alloc(0))), { kind: 'header', length: 16 }, 'LOCAL')
  t.same(parseProxyHeader(v2(0x21, 0x31, Buffer.alloc(216))), { kind: 'header', length: 232 }, 'unix: keep the peer')
  t.same(parseProxyHeader(v2(0x21, 0x11, a4).subarray(0, 8)), { kind: 'partial' })
  t.same(parseProxyHeader(v2(0x21, 0x11, a4).subarray(0, 14)), { kind: 'partial' })
  t.same(parseProxyHeader(v2(0x21, 0x11, a4).subarray(0, 20)), { kind: 'partial' })
  t.match(parseProxyHeader(v2(0x31, 0x11, a4)), { kind: 'invalid' })
  t.match(parseProxyHeader(v2(0x22, 0x11, a4)), { kind: 'invalid' })
  t.match(parseProxyHeader(v2(0x21, 0x11, Buffer.alloc(4))), { kind: 'invalid', reason: /IPv4/ })
  t.match(parseProxyHeader(v2(0x21, 0x21, Buffer.alloc(12))), { kind: 'invalid', reason: /IPv6/ })
  // a family or transport the spec does not define is invalid, not an UNSPEC that keeps the peer
  t.match(parseProxyHeader(v2(0x21, 0x51, a4)), { kind: 'invalid', reason: 'bad PROXY v2 address family or transport (0x51)' })
  t.match(parseProxyHeader(v2(0x21, 0x13, a4)), { kind: 'invalid', reason: /\(0x13\)/ })
  t.same(parseProxyHeader(v2(0x21, 0x12, a4)), { kind: 'header', length: 28, source: { ip: '10.9.8.7', port: 5555 } }, 'DGRAM is defined')
  t.same(parseProxyHeader(v2(0x21, 0x00, Buffer.alloc(0))), { kind: 'header', length: 16 }, 'UNSPEC: keep the peer')
  t.same(parseProxyHeader(v2(0x20, 0x51, Buffer.alloc(0))), { kind: 'header', length: 16 }, 'LOCAL: its address block is ignored')
})
