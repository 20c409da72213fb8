import { Socket, createServer, type AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { RequestHeadParser } from '../../src/proxy/request-head.js'
import { RequestFraming, type Step } from '../../src/proxy/request-framing.js'
import { followRequests } from '../../src/proxy/request-stream.js'

const MAX = 1024

function head(text: string) {
  const r = new RequestHeadParser(16_384).parse(Buffer.from(text, 'latin1'))
  if (r?.kind !== 'head') throw new Error(`not a head: ${text}`)
  return r
}

const GET = 'GET / HTTP/1.1\r\nHost: a.example\r\n\r\n'
const NEXT = 'GET /next HTTP/1.1\r\nHost: x.ngrok-free.app\r\n\r\n'
const CHUNKED = 'POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n'
const WS = 'GET /ws HTTP/1.1\r\nHost: a.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'

/** Every step over `bytes` given whole, consuming as the relay does, until one needs more or ends the framing. */
function steps(first: string, bytes: string | Buffer, max = MAX): Step[] {
  const f = new RequestFraming(max, head(first))
  let b = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes
  const out: Step[] = []
  for (let i = 0; i < 100; i++) {
    const s = f.next(b)
    if (s === undefined) break
    out.push(s)
    if (s.kind === 'forward') b = b.subarray(s.n)
    else if (s.kind === 'head') b = b.subarray(s.head.length)
    else break
  }
  return out
}

const kinds = (s: Step[]) => s.map(x => x.kind === 'forward' ? x.n : x.kind === 'head' ? `head ${x.head.target}` : x.kind)

t.test('Content-Length: the body goes on, then the next head is found', async t => {
  t.same(kinds(steps('POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n', `hello${NEXT}`)), [5, 'head /next'])
  t.same(kinds(steps(GET, NEXT)), ['head /next'], 'no body')
  // a body that says it is a request is still a body
  const inside = `GET /x HTTP/1.1\r\nHost: x.ngrok-free.app\r\n\r\n`
  t.same(kinds(steps(`POST / HTTP/1.1\r\nContent-Length: ${inside.length}\r\n\r\n`, inside + GET)), [inside.length, 'head /'])
  // a body in pieces: each piece as it comes
  const f = new RequestFraming(MAX, head('POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n'))
  t.same(f.next(Buffer.from('abc')), { kind: 'forward', n: 3 })
  t.equal(f.next(Buffer.alloc(0)), undefined, 'nothing to forward yet')
  t.same(f.next(Buffer.from(`defghij${GET}`)), { kind: 'forward', n: 7 })
  t.match(f.next(Buffer.from(GET)), { kind: 'head', head: { target: '/' } })
  t.equal(f.next(Buffer.from('GET / HT')), undefined, 'an incomplete head waits')
})

t.test('chunked: sizes, data, the CRLF after each, the last chunk and its trailer section', async t => {
  t.same(kinds(steps(CHUNKED, `5\r\nhello\r\n0\r\n\r\n${NEXT}`)), [3, 5, 2, 3, 2, 'head /next'])
  t.same(kinds(steps(CHUNKED, `00A;name=value; q="x y"\r\n0123456789\r\nb\r\nhello world\r\n0;last\r\nX-Trailer: 1\r\nY: 2\r\n\r\n${GET}`)),
    [25, 10, 2, 3, 11, 2, 8, 14, 6, 2, 'head /'], 'extensions, upper and lower case hex, leading zeros, trailers')
  // a chunk that carries a request head is data
  const inside = 'GET / HTTP/1.1\r\nHost: x.ngrok-free.app\r\n\r\n'
  t.same(kinds(steps(CHUNKED, `${inside.length.toString(16)}\r\n${inside}\r\n0\r\n\r\n`)), [4, inside.length, 2, 3, 2])
  // dripped a byte at a time through a whole chunked body: the same steps, nothing early
  const f = new RequestFraming(MAX, head(CHUNKED))
  const all = Buffer.from(`5\r\nhello\r\n0\r\n\r\n${NEXT}`)
  let from = 0
  const got: (number | string)[] = []
  for (let end = 1; end <= all.length; end++) {
    const s = f.next(all.subarray(from, end))
    if (s === undefined) continue
    got.push(...kinds([s]))
    from += s.kind === 'forward' ? s.n : s.kind === 'head' ? s.head.length : 0
  }
  t.same(got, [3, 1, 1, 1, 1, 1, 2, 3, 2, 'head /next'])
})

t.test('chunked framing that is not the plain form: invalid, whatever a lenient server would make of it', async t => {
  const cases: [string, string, RegExp][] = [
    ['a bare LF after the size', '5\nhello\r\n', /not ended by CRLF/],
    ['an LF first', '\n', /not ended by CRLF/],
    ['whitespace after the size', '5 \r\nhello\r\n', /not "hex-size\[;extensions\]"/],
    ['whitespace before the size', ' 5\r\nhello\r\n', /not "hex-size/],
    ['a 0x prefix', '0x5\r\nhello\r\n', /not "hex-size/],
    ['a sign', '+5\r\nhello\r\n', /not "hex-size/],
    ['no size', ';x\r\n', /not "hex-size/],
    ['a size of 14 hex digits', '00000000000005\r\n', /not "hex-size/],
    ['a control byte in an extension', '5;a\u0001b\r\nhello\r\n', /not "hex-size/],
    ['a lone CR in an extension', '5;a\rb\r\nhello\r\n', /not "hex-size/],
    ['no CRLF after the data', '5\r\nhelloXY', /no CRLF after a chunk/],
    ['an LF alone after the data', '5\r\nhello\n0\r\n', /no CRLF after a chunk/],
    ['a byte that is not CR after the data', '5\r\nhelloX', /no CRLF after a chunk/],
    ['a trailer line that is no field', '0\r\nnot a field\r\n\r\n', /trailer line that is not "name: value"/],
    ['a trailer line ended by a bare LF', '0\r\nX: 1\n\r\n', /not ended by CRLF/],
    ['a chunk-size line that does not end', '5;' + 'a'.repeat(1100), /chunk-size line over 1024 bytes/],
  ]
  for (const [name, bytes, reason] of cases) t.match(steps(CHUNKED, bytes).at(-1), { kind: 'invalid', reason }, name)
  t.same(kinds(steps(CHUNKED, '5\r\nhello\r')), [3, 5], 'a CR alone waits for its LF')
  t.same(kinds(steps(CHUNKED, '5;' + 'a'.repeat(900))), [], 'a long line within the limit waits')
  const trailers = `0\r\n${'X: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n'.repeat(8)}`
  t.match(steps(CHUNKED, trailers, 300).at(-1), { kind: 'invalid', reason: 'a trailer section over 300 bytes' })
  t.equal(steps(CHUNKED, trailers).at(-1)?.kind, 'forward', 'the same within the limit')
})

t.test('after a request: anything but a request head closes the tunnel; after an upgrade it is another protocol', async t => {
  t.match(steps(GET, 'SSH-2.0-OpenSSH_9.2\r\n'), [{ kind: 'invalid', reason: 'bytes after a request that are no HTTP request' }])
  t.match(steps(GET, Buffer.from([0x16, 0x03, 0x01])), [{ kind: 'invalid' }], 'TLS after a plain request')
  t.match(steps(GET, 'GET  / HTTP/1.1\r\nHost: x.ngrok-free.app\r\n\r\n'), [{ kind: 'invalid', reason: /single spaces/ }], 'a lenient request line')
  t.match(steps(GET, 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'), [{ kind: 'invalid', reason: /more than one Host/ }])
  t.match(steps(GET, `POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n`), [{ kind: 'invalid', reason: /both Transfer-Encoding and Content-Length/ }])
  t.match(steps(GET, 'G'.repeat(2000), 1024), [{ kind: 'invalid', reason: 'request head over 1024 bytes' }])
  t.same(kinds(steps(GET, '\r\n\r\nGET /next HTTP/1.1\r\n\r\n')), ['head /next'], 'empty lines before a request line are passed over, as servers do')

  // WebSocket frames after the upgrade (a masked text frame): unread from there on
  const frame = Buffer.from([0x81, 0x85, 1, 2, 3, 4, 0x69, 0x67, 0x6f, 0x68, 0x6e])
  const f = new RequestFraming(MAX, head(WS))
  t.same(f.next(frame), { kind: 'opaque' })
  t.same(f.next(Buffer.from(NEXT)), { kind: 'opaque' }, 'and stays so')
  // an upgrade the server refused: the next request is still a request, decided
  t.same(kinds(steps(WS, NEXT + 'SSH-2.0-OpenSSH_9.2\r\n')), ['head /next', 'invalid'], 'then the framing is that of a plain request again')
  t.same(kinds(steps('CONNECT a.example:443 HTTP/1.1\r\n\r\n', Buffer.from([0x16, 0x03, 0x01, 0x00]))), ['opaque'], 'TLS to a proxy behind')
  t.same(kinds(steps('POST /up HTTP/1.1\r\nUpgrade: h2c\r\nContent-Length: 3\r\n\r\n', 'abc\u0000\u0001')), [3, 'opaque'], 'an upgrade request\'s body first')
})

/** A ClientHello judge never asked (no CONNECT in these tunnels). */
const NO_HELLO = async () => { throw new Error('no ClientHello expected') }

/** A server that never switches protocols (its answers are not followed here). */
const NO_SWITCH = { sent() {}, switched: async () => false }

/** A loopback connection: the socket the proxy would hold (`server`) and its peer (`peer`). */
async function pair(t: Test, onServer?: (s: Socket) => void): Promise<{ server: Socket; peer: Socket }> {
  return new Promise(resolve => {
    const srv = createServer(s => {
      onServer?.(s)
      srv.close()
      resolve({ server: s, peer })
    })
    const peer = new Socket()
    srv.listen(0, '127.0.0.1', () => {
      peer.connect((srv.address() as AddressInfo).port, '127.0.0.1')
    })
    t.teardown(() => { peer.destroy(); srv.close() })
  })
}

t.test('followRequests: a body larger than the server takes at once waits for it to drain; a head dripped a byte at a time is gathered whole', async t => {
  const { server: client, peer: sender } = await pair(t)
  client.pause()                                          // as the head's reader leaves it
  const got: Buffer[] = []
  let received = 0
  const { server: sink, peer: up } = await pair(t, s => s.pause())
  sink.on('data', b => { got.push(b); received += b.length })
  const body = Buffer.alloc(16 * 1024 * 1024, 0x61)
  const next = Buffer.from(NEXT)
  const heads: string[] = []
  let drains = 0
  const write = up.write.bind(up)
  up.write = ((b: Buffer) => { const ok = write(b); if (!ok) drains++; return ok }) as typeof up.write
  followRequests(client, up, new RequestFraming(MAX, head(`PUT / HTTP/1.1\r\nContent-Length: ${body.length}\r\n\r\n`)), Buffer.alloc(0),
    async h => { heads.push(h.target); return true }, () => t.fail('no invalid bytes'), 5000, NO_SWITCH, NO_HELLO, false)
  sender.write(body)
  setTimeout(() => sink.resume(), 300)                     // the server reads nothing at first
  await new Promise(r => setTimeout(r, 600))
  for (const b of next) {
    sender.write(Buffer.from([b]))
    await new Promise(r => setImmediate(r))
  }
  sender.end()
  await new Promise(r => sink.on('end', r))
  t.ok(drains > 0, 'the relay waited for the server to drain')
  t.equal(received, body.length + next.length, 'every byte')
  t.ok(Buffer.concat(got).subarray(body.length).equals(next), 'the head after the body, whole')
  t.same(heads, ['/next'])
})

/**
 * The two connections of a tunnel: the client's (`client`, the proxy's side; `sender`, the
 * client's) and the server's (`up`, the proxy's side; `sink`, the server's, whose bytes gather in
 * `got` and whose end is `ended`); `told`, what the relay says cannot be framed.
 */
async function rig(t: Test) {
  const { server: client, peer: sender } = await pair(t)
  const got: Buffer[] = []
  const { server: sink, peer: up } = await pair(t)
  sink.on('data', b => got.push(b))
  const ended = new Promise(r => sink.on('end', r))
  const told: [string, boolean][] = []
  return { client, sender, sink, up, got, ended, told, tell: (why: string, atHead: boolean) => { told.push([why, atHead]) } }
}

t.test('followRequests: a refused head, or bytes that cannot be framed, end the server side; nothing of them goes on', async t => {
  for (const [label, bytes, refuse] of [['refused', NEXT, 'no'], ['invalid', 'SSH-2.0-x\r\n', undefined], ['a judge that fails', NEXT, 'throws']] as const) {
    const { client, sender, sink, up, got, ended, told, tell } = await rig(t)
    followRequests(client, up, new RequestFraming(MAX, head('POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n')), Buffer.from('ok'),
      async () => { if (refuse === 'throws') throw new Error('a bug'); return refuse === undefined }, tell, 5000, NO_SWITCH, NO_HELLO, false)
    const clientClosed = new Promise(r => client.on('close', r))
    sender.write(bytes)
    await ended
    t.equal(Buffer.concat(got).toString(), 'ok', `${label}: the body before went on, nothing after`)
    t.same(told, refuse ? [] : [['bytes after a request that are no HTTP request', true]], label)
    t.equal(client.isPaused(), true, `${label}: the client is read no more`)
    t.notOk(client.destroyed, `${label}: nor closed while the server may still answer`)
    sink.end()                                             // the server answers what it had, and closes
    await clientClosed
    t.ok(client.destroyed, `${label}: then the client's side closes too, though the client never sent its FIN`)
  }
})

t.test('followRequests: a later head not complete within the deadline from its first byte is refused; one that completes in time is not', async t => {
  const { client, sender, up, got, ended, told, tell } = await rig(t)
  const heads: string[] = []
  followRequests(client, up, new RequestFraming(MAX, head(GET)), Buffer.alloc(0),
    async h => { heads.push(h.target); return true }, tell, 600, NO_SWITCH, NO_HELLO, false)
  // a head in two pieces 100 ms apart: within 600 ms of its first byte (room for a loaded machine)
  sender.write('GET /a HTTP/1.1\r\n')
  await new Promise(r => setTimeout(r, 100))
  sender.write('Host: a.example\r\n\r\n')
  await new Promise(r => setTimeout(r, 100))
  // the next one's first byte starts its own deadline; it never completes
  sender.write('GET /b HTTP/1.1\r\nHost: x.ngrok')
  await ended
  t.same(heads, ['/a'])
  t.same(told, [['a request head not complete within proxy.helloTimeout', true]])
  t.equal(Buffer.concat(got).toString(), 'GET /a HTTP/1.1\r\nHost: a.example\r\n\r\n', 'nothing of the late head went on')
})

t.test('followRequests: after the server switched, bytes that are no request go on unread; a request is still decided', async t => {
  const { client, sender, up, got, told, tell } = await rig(t)
  const heads: string[] = []
  const sent: string[] = []
  followRequests(client, up, new RequestFraming(MAX, head(WS)), Buffer.alloc(0),
    async h => { heads.push(h.target); return true }, tell, 5000, { sent: m => sent.push(m), switched: async () => true }, NO_HELLO, false)
  // a "switch" that is none hides no request: the server said it switched, and a request is still decided
  const again = 'GET /again HTTP/1.1\r\nHost: x.ngrok-free.app\r\nUpgrade: websocket\r\n\r\n'
  sender.write(again)
  await new Promise(r => setTimeout(r, 50))
  t.same(heads, ['/again'])
  t.same(sent, ['GET'])
  sender.write(Buffer.concat([Buffer.from([0x81, 0x82]), Buffer.from('hi' + NEXT)]))
  await new Promise(r => setTimeout(r, 50))
  t.same(heads, ['/again'], 'after bytes that are no request (and a switch), the rest is unread')
  t.equal(Buffer.concat(got).subarray(again.length).toString('latin1'), '\u0081\u0082hi' + NEXT)
  t.same(told, [])
})
