import t from 'tap'
import { parseClientHello } from '../../src/proxy/sni.js'
import { clientHello, records, sniBody } from '../fixtures/client-hello.js'

const names = (buf: Buffer) => {
  const r = parseClientHello(buf)
  return r.kind === 'hello' ? r.names : r.kind
}

t.test('one record, one SNI', async t => {
  const buf = records(clientHello({ names: ['tunnel.us.ngrok.com'] }))
  const r = parseClientHello(buf)
  t.same(r, { kind: 'hello', names: ['tunnel.us.ngrok.com'], ech: false, length: buf.length })
})

t.test('every prefix of the bytes is partial, never a wrong answer (drip feed)', async t => {
  const buf = records(clientHello({ names: ['a.ngrok.io'] }), [7, 1, 30])
  let partials = 0
  for (let i = 0; i < buf.length; i++) {
    const r = parseClientHello(buf.subarray(0, i))
    if (r.kind === 'partial') { partials++; t.ok(r.need > i) }
  }
  t.equal(partials, buf.length)
  t.same(names(buf), ['a.ngrok.io'])
})

t.test('split across records at every offset, including inside the SNI', async t => {
  const hs = clientHello({ names: ['x.ngrok-free.app'] })
  for (let cut = 1; cut < hs.length; cut++) t.same(names(records(hs, [cut])), ['x.ngrok-free.app'], `cut at ${cut}`)
  t.same(names(records(hs, Array(hs.length).fill(1))), ['x.ngrok-free.app'], 'one byte per record')
})

t.test('large hello (post-quantum size, padding) over several records; the cap', async t => {
  const big = clientHello({ names: ['big.example'], padding: 20_000 })
  t.same(names(records(big)), ['big.example'])
  const r = parseClientHello(records(big), 8192)
  t.equal(r.kind, 'invalid')
  t.match(parseClientHello(records(big).subarray(0, 5000), 4000), { kind: 'invalid', reason: /cap/ })
})

t.test('no SNI, several names, ECH, non-host_name types', async t => {
  t.same(names(records(clientHello({ names: null }))), [])
  const bad = (b: Buffer, re: RegExp) => t.match(parseClientHello(b), { kind: 'invalid', reason: re })
  // RFC 6066: one host_name; a list of several would each cost a lookup, and servers refuse it
  bad(records(clientHello({ names: ['ok.example', 'b.ngrok.io'] })), /more than one SNI host_name/)
  for (const n of ['a\nCLIENT 10.1.1.1.example', 'sp ace.example', 'nul\0.example', 'caf\u00e9.example', 'del\u007f.example']) {
    bad(records(clientHello({ names: [n] })), /outside printable ASCII/)
  }
  const ech = parseClientHello(records(clientHello({ extra: [[0xfe0d, Buffer.alloc(8)]] })))
  t.match(ech, { kind: 'hello', ech: true })
  const other = sniBody([[1, Buffer.from('zzz')], [0, Buffer.from('h.example')]])
  t.same(names(records(clientHello({ sniBodies: [other] }))), ['h.example'])
  t.same(names(records(clientHello({ names: ['UPPER.Example.'] }))), ['UPPER.Example.'], 'raw: the policy normalizes')
})

t.test('no extensions block at all', async t => {
  const hs = clientHello({ names: null })
  const noExt = hs.subarray(0, hs.length - 2)
  noExt.writeUIntBE(noExt.length - 4, 1, 3)
  t.same(names(records(noExt)), [])
})

t.test('not TLS', async t => {
  t.equal(names(Buffer.from('GET / HTTP/1.1\r\n')), 'not-tls')
  t.equal(names(Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01])), 'not-tls', 'SSLv2-compatible hello')
  t.same(parseClientHello(Buffer.alloc(0)), { kind: 'partial', need: 1 })
  t.equal(names(Buffer.from([0x13, 0x03])), 'not-tls', 'the byte below the TLS record types')
  t.equal(names(Buffer.from([0x19, 0x03])), 'not-tls', 'the byte above them')
})

t.test('another TLS record before the ClientHello: fail closed, whatever follows', async t => {
  const hello = records(clientHello({ names: ['connect.ngrok-agent.com'] }))
  for (const type of [0x14, 0x15, 0x17, 0x18]) {
    // Go's TLS server drops a warning alert sent first (any version below 0x1000) and routes on the hello after it
    for (const version of [[3, 1], [0, 0]]) {
      const rec = Buffer.from([type, ...version, 0, 2, 1, 90])
      t.match(parseClientHello(Buffer.concat([rec, hello])), { kind: 'invalid', reason: `TLS record type ${type} before the ClientHello` }, `type ${type}`)
      t.match(parseClientHello(rec.subarray(0, 1)), { kind: 'invalid' }, `type ${type}, first byte alone`)
    }
  }
})

t.test('malformed: fail closed with a reason', async t => {
  const hs = clientHello({ names: ['a.example'] })
  const rec = records(hs)
  const bad = (b: Buffer, re: RegExp) => t.match(parseClientHello(b), { kind: 'invalid', reason: re })
  bad(Buffer.concat([rec.subarray(0, 5 + 10).map((x, i) => (i === 4 ? 10 : x)), Buffer.from([0x17, 3, 3, 0, 1, 0])]), /record type 23/)
  bad(Buffer.from([0x16, 2, 0, 0, 4, 1, 0, 0, 0]), /version/)
  bad(Buffer.from([0x16, 3, 1, 0, 0]), /zero-length/)
  bad(Buffer.from([0x16, 3, 1, 0x40, 0x01]), /over 2\^14/)
  // a second hello (any handshake bytes) after the hello in its last record would reach the server undecided
  bad(records(Buffer.concat([hs, clientHello({ names: ['x.ngrok.io'] })])), /handshake bytes after the ClientHello in its record/)
  bad(records(Buffer.concat([hs, Buffer.from([1])]), [10]), /handshake bytes after/)
  bad(records(Buffer.from([2, 0, 0, 1, 0])), /not ClientHello/)
  bad(records(Buffer.from([1, 0, 0, 10, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0])), /truncated ClientHello/)
  const withBody = (body: Buffer) => records(Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 255]), body]))
  const pre = Buffer.concat([Buffer.from([3, 3]), Buffer.alloc(32)])
  bad(withBody(Buffer.concat([pre, Buffer.from([33])])), /session id/)
  bad(withBody(Buffer.concat([pre, Buffer.from([0])])), /truncated/)
  bad(withBody(Buffer.concat([pre, Buffer.from([0, 0, 3])])), /cipher suites/)
  bad(withBody(Buffer.concat([pre, Buffer.from([0, 0, 2, 0x13, 1])])), /truncated/)
  bad(withBody(Buffer.concat([pre, Buffer.from([0, 0, 2, 0x13, 1, 2, 0])])), /truncated/)
  bad(withBody(Buffer.concat([pre, Buffer.from([0, 0, 2, 0x13, 1, 1, 0, 0])])), /truncated extensions/)
  bad(withBody(Buffer.concat([pre, Buffer.from([0, 0, 2, 0x13, 1, 1, 0, 0, 9, 0])])), /extensions length/)
  bad(withBody(Buffer.concat([pre, Buffer.from([0, 0, 2, 0x13, 1, 1, 0, 0, 2, 0, 0])])), /truncated extension header/)
  bad(withBody(Buffer.concat([pre, Buffer.from([0, 0, 2, 0x13, 1, 1, 0, 0, 4, 0, 0, 0, 9])])), /runs past/)
  bad(records(clientHello({ sniBodies: [sniBody([[0, Buffer.from('a.example')]]), sniBody([[0, Buffer.from('b.example')]])] })), /two server_name/)
  bad(records(clientHello({ sniBodies: [Buffer.from([0, 9, 0])] })), /list length/)
  bad(records(clientHello({ sniBodies: [Buffer.from([])] })), /list length/)
  bad(records(clientHello({ sniBodies: [Buffer.from([0, 2, 0, 0])] })), /truncated server_name entry/)
  bad(records(clientHello({ sniBodies: [Buffer.from([0, 3, 0, 0, 9])] })), /runs past the extension/)
  bad(records(clientHello({ names: [''] })), /empty SNI/)
  bad(records(clientHello({ sniBodies: [sniBody([[1, Buffer.from('x')]])] })), /without a host_name/)
})
