import t from 'tap'
import { ResponseTracker } from '../../src/proxy/response-stream.js'

/** A tracker with these requests sent; the server's bytes fed whole, or a byte at a time (each view reused, as the relay's are). */
function track(sent: [string, boolean][], bytes: string, drip = false) {
  const r = new ResponseTracker()
  for (const [m, u] of sent) r.sent(m, u)
  const all = Buffer.from(bytes, 'latin1')
  if (drip) {
    const view = Buffer.alloc(1)
    for (const b of all) {
      view[0] = b
      r.feed(view)
      view[0] = 0x21                                       // the relay reuses its buffer: nothing may be kept by reference
    }
  } else r.feed(all)
  return r
}

const OK = (body = '') => `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`
const SWITCH = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'
const GET: [string, boolean] = ['GET', false]
const WS: [string, boolean] = ['GET', true]

t.test('responses followed one by one; a 101 to the Upgrade request is a switch, whatever follows it', async t => {
  const bytes = OK('hello') + 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nworld\r\n0\r\nX-T: 1\r\n\r\n' +
    'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n' + OK() +
    'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n' +                  // to a HEAD: no body
    'HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n' +
    SWITCH + '\u0081\u0085 frames, or anything'
  const sent: [string, boolean][] = [GET, ['POST', false], ['PUT', false], ['HEAD', false], GET, GET, WS]
  for (const drip of [false, true]) {
    const r = track(sent, bytes, drip)
    t.equal(await r.switched(), true, `the switch told (${drip ? 'dripped' : 'whole'})`)
    t.ok(r.done)
    t.equal(await r.switched(), true)
    r.end()
    t.equal(await r.switched(), true, 'the server closing later changes nothing')
  }
})

t.test('a CONNECT answered 2xx is a switch; one refused is an answer like any other', async t => {
  const r = track([['CONNECT', true]], 'HTTP/1.1 200 Connection established\r\n\r\n\u0016\u0003\u0001')
  t.ok(r.done)
  t.equal(await r.switched(), true)
  const refused = track([['CONNECT', true], WS], 'HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 4\r\n\r\ndeny' + SWITCH)
  t.equal(await refused.switched(), true, 'the 407 and its body read, then the next request\'s 101')
  // a handler's 200 with a body to a CONNECT is no tunnel: its body is read, and HTTP goes on
  const handler = track([['CONNECT', true], GET], 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok' + OK('x'))
  t.notOk(handler.done)
  t.equal(await handler.switched(), false)
  const chunks = track([['CONNECT', true]], 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')
  t.equal(await chunks.switched(), false, 'chunked: the same')
})

t.test('switched(): the answer to the last request sent, once it is read', async t => {
  const r = new ResponseTracker()
  r.sent('GET', true)
  let told: boolean | undefined
  void r.switched().then(v => { told = v })
  r.feed(Buffer.from('HTTP/1.1 200 OK\r\nContent-Len'))
  await new Promise(res => setImmediate(res))
  t.equal(told, undefined, 'not before the response is read')
  r.feed(Buffer.from('gth: 0\r\n\r\n'))
  await new Promise(res => setImmediate(res))
  t.equal(told, false, 'an Upgrade answered 200 was not honoured (Go answers so)')
  t.equal(await r.switched(), false, 'and asked again')
  t.notOk(r.done, 'still following: more requests may come')
  // waiting on a second request when the server closes
  r.sent('GET', true)
  const closed = r.switched()
  r.end()
  t.equal(await closed, false)
  t.ok(r.done)
  r.feed(Buffer.from(SWITCH))
  t.equal(await r.switched(), false, 'nothing is read after the tracker stopped')
})

t.test('what cannot be followed stops the tracker: no switch is seen after it (fail closed)', async t => {
  const cases: [string, [string, boolean][], string][] = [
    ['a body read until the close', [GET, WS], 'HTTP/1.1 200 OK\r\n\r\nbody...' + SWITCH],
    ['HTTP/1.0 without a length', [GET, WS], 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n' + SWITCH],
    ['a coding other than chunked last', [GET, WS], 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n' + SWITCH],
    ['no status line', [WS], 'HTTP/2 101\r\n\r\n'],
    ['a status line of another protocol', [WS], 'ICY 200 OK\r\n\r\n'],
    ['a response to nothing sent', [], SWITCH],
    ['a 101 to a request without Upgrade', [GET], SWITCH],
    ['a 101 to a CONNECT', [['CONNECT', true]], SWITCH],
    ['a 101 that names no protocol (a handler\'s WriteHeader(101))', [WS], 'HTTP/1.1 101 Switching Protocols\r\n\r\n'],
    ['a field that is no field', [GET, WS], 'HTTP/1.1 200 OK\r\nContent-Length 0\r\n\r\n' + SWITCH],
    ['two lengths', [GET, WS], 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab' + SWITCH],
    ['a length that is no number', [GET, WS], 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n' + SWITCH],
    ['chunk framing that is not the plain form', [GET, WS], 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n' + SWITCH],
    ['a head over 64 KiB', [WS], `HTTP/1.1 101 Switching\r\nX: ${'a'.repeat(70_000)}`],
  ]
  for (const [name, sent, bytes] of cases) {
    const r = track(sent, bytes)
    t.ok(r.done, `${name}: stopped`)
    t.equal(await r.switched(), false, name)
  }
  const same = track([GET, WS], 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nab' + SWITCH)
  t.equal(await same.switched(), true, 'the same length twice is one length')
})

t.test('a head left over across reads is kept whole, searched once, and given up past its limit', async t => {
  const r = new ResponseTracker()
  r.sent('GET', false)
  r.sent('GET', true)
  // the first response and the start of the second in one read; the rest in pieces
  r.feed(Buffer.from(`${OK('ab')}HTTP/1.1 101 Swi`))
  r.feed(Buffer.from('tching Protocols\r\nUpgrade: websocket\r'))
  t.notOk(r.done)
  r.feed(Buffer.from('\n\r\n'))
  t.ok(r.done)
  t.equal(await r.switched(), true)
  // a head of 3000 bytes in pieces of 100: the store grows
  const big = new ResponseTracker()
  big.sent('GET', true)
  const head = Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nX-Big: ${'b'.repeat(3000)}\r\nUpgrade: websocket\r\n\r\n`)
  for (let i = 0; i < head.length; i += 100) {
    t.notOk(big.done)
    big.feed(head.subarray(i, i + 100))
  }
  t.ok(big.done)
  t.equal(await big.switched(), true)
})
