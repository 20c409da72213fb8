// A client that sends its second ClientHello with the first, before the server's HelloRetryRequest
// comes: openssl s_server (P-256 only) asks for a retry and takes the second hello from its buffer,
// name and all. The second hello must be decided before it reaches the server, as one sent after
// the request is.
import t from 'tap'
import { connect } from 'node:net'
import { createECDH, generateKeyPairSync } from 'node:crypto'
import { fakeResolve, startSServer, testProxy, waitFor } from '../fixtures/origin.js'
import { clientHello, records } from '../fixtures/client-hello.js'

const u16 = (n: number) => Buffer.from([n >> 8, n & 255])
const list = (items: number[]) => Buffer.concat([u16(items.length * 2), ...items.map(u16)])

/** A TLS 1.3 ClientHello OpenSSL takes: `name`, one key share of `group` (0x1d X25519, 0x17 P-256). */
function tls13Hello(name: string, group: 0x1d | 0x17): Buffer {
  const key = group === 0x1d
    ? Buffer.from(generateKeyPairSync('x25519').publicKey.export({ format: 'jwk' }).x!, 'base64url')
    : (() => { const e = createECDH('prime256v1'); return e.generateKeys() })()
  const share = Buffer.concat([u16(group), u16(key.length), key])
  return records(clientHello({
    names: [name],
    extra: [
      [43, Buffer.from([2, 3, 4])],                               // supported_versions: TLS 1.3
      [10, list([0x1d, 0x17])],                                   // supported_groups
      [13, list([0x0403, 0x0804, 0x0401])],                       // signature_algorithms
      [51, Buffer.concat([u16(share.length), share])],            // key_share
    ],
  }))
}

/** CONNECT, then `hellos` in one write after the 200; the record types the server's side sent back, until close. */
function both(port: number, target: string, hellos: Buffer): Promise<number[]> {
  return new Promise(resolve => {
    const s = connect(port, '127.0.0.1')
    let got = Buffer.alloc(0)
    let sent = false
    const done = () => {
      clearTimeout(timer)
      s.destroy()
      const types: number[] = []
      for (let i = 0, n = 0; i + 5 <= got.length && n < 1000; i += 5 + got.readUInt16BE(i + 3), n++) types.push(got[i]!)
      resolve(types)
    }
    const timer = setTimeout(done, 3000)
    s.on('error', () => {})
    s.on('close', done)
    s.on('data', b => {
      got = Buffer.concat([got, b])
      const end = got.indexOf('\r\n\r\n')
      if (sent || end < 0) return
      sent = true
      got = got.subarray(end + 4)
      s.write(hellos)
    })
    s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`)
  })
}

t.test('a second ClientHello sent with the first, before the HelloRetryRequest, is decided before it reaches the server', async t => {
  const srv = await startSServer(t, 'secure.example', ['-tls1_3', '-groups', 'P-256'])
  const { proxy, port, ev } = await testProxy(t, {
    config: { proxy: { allowDestinations: ['127.0.0.0/8'], connectPorts: [srv.port] } }, resolve: fakeResolve({ 'secure.example': ['127.0.0.1'] }),
  })
  const target = `secure.example:${srv.port}`
  const ccs = Buffer.from([0x14, 3, 3, 0, 1, 1])

  // the same name: the handshake goes on (the server's encrypted flight comes back)
  const same = await both(port, target, Buffer.concat([tls13Hello('secure.example', 0x1d), ccs, tls13Hello('secure.example', 0x17)]))
  t.ok(same.includes(0x17), `the server answered the second hello (${same.join(',')})`)
  t.match(ev.events.at(-1), { decision: { action: 'pass' }, sni: 'secure.example' })
  t.ok(await waitFor(() => proxy.openConnections === 0))

  // a listed name: refused, the server never gets it (at most its retry request comes back)
  for (const between of [Buffer.alloc(0), ccs]) {
    const types = await both(port, target, Buffer.concat([tls13Hello('secure.example', 0x1d), between, tls13Hello('x.ngrok-free.app', 0x17)]))
    t.notOk(types.includes(0x17), `no encrypted flight: the server never took the second hello (${types.join(',')})`)
    t.ok(types.filter(x => x === 0x16).length <= 1, 'no ServerHello after the retry request')
    t.match(ev.events.at(-1), {
      message: 'proxy.connect',
      decision: { action: 'block', list: 'ngrok', name: 'x.ngrok-free.app', reason: /sent before the server answered names x\.ngrok-free\.app where the first named secure\.example/ },
      sni: 'x.ngrok-free.app', extra: { 'tunnelguard.sni_status': 'retry' },
    })
    t.ok(await waitFor(() => proxy.openConnections === 0))
    t.match(ev.messages.filter(m => m.msg === 'proxy.close').at(-1)!.fields, { 'error.message': /^blocked: the ClientHello sent before the server answered names x\.ngrok-free\.app/ })
  }

  // both hellos in one record: no client sends that; refused before anything is dialled
  const hs = (b: Buffer) => b.subarray(5)
  const coalesced = Buffer.concat([hs(tls13Hello('secure.example', 0x1d)), hs(tls13Hello('x.ngrok-free.app', 0x17))])
  const one = await both(port, target, Buffer.concat([Buffer.from([0x16, 3, 1]), u16(coalesced.length), coalesced]))
  t.same(one, [0x15], 'nothing from the server: the proxy\'s access_denied alert alone')
  t.match(ev.events.at(-1), { decision: { action: 'block', reason: /handshake bytes after the ClientHello in its record/ }, extra: { 'tunnelguard.sni_status': 'invalid' } })
  t.ok(await waitFor(() => proxy.openConnections === 0))
})
