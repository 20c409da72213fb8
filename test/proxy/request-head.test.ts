import t from 'tap'
import { readFrom } from '../../src/proxy/hello-reader.js'
import { RequestHeadParser, looksHttp, type RequestHead } from '../../src/proxy/request-head.js'
import { pausedClient } from '../fixtures/paused-client.js'

const parse = (text: string | Buffer, max = 16_384): RequestHead | undefined =>
  new RequestHeadParser(max).parse(typeof text === 'string' ? Buffer.from(text, 'latin1') : text)

/** Fed as it grows, one byte more at a time, to one parser: the results after each byte. */
function dripped(text: string, max = 16_384): (RequestHead | undefined)[] {
  const p = new RequestHeadParser(max)
  const buf = Buffer.from(text, 'latin1')
  return Array.from({ length: buf.length }, (_, i) => p.parse(buf.subarray(0, i + 1)))
}

t.test('a request head: its target and Host, and its length (what follows is the body)', async t => {
  const head = 'GET / HTTP/1.1\r\nHost: x.ngrok-free.app\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n'
  t.same(parse(head + 'body'), { kind: 'head', method: 'GET', target: '/', host: 'x.ngrok-free.app', length: head.length, body: 0, upgrade: false })
  t.same(parse('POST http://a.example:8080/x?y HTTP/1.0\r\n\r\n'), { kind: 'head', method: 'POST', target: 'http://a.example:8080/x?y', host: undefined, length: 43, body: 0, upgrade: false },
    'absolute-form, HTTP/1.0, no Host')
  t.match(parse('GET / HTTP/1.1\r\nhost: X.Ngrok-Free.App\r\n\r\n'), { kind: 'head', host: 'X.Ngrok-Free.App' }, 'the field name in lower case')
  t.match(parse('GET / HTTP/1.1\r\nHOST:\t a.example:8080 \t\r\n\r\n'), { kind: 'head', host: 'a.example:8080' }, 'with a port, whitespace around it')
  t.match(parse('GET / HTTP/1.1\r\nHost:\r\n\r\n'), { kind: 'head', host: '' }, 'an empty Host')
  t.match(parse('GET / HTTP/1.1\r\nAccept: */*\r\n\r\n'), { kind: 'head', host: undefined }, 'no Host')
  t.match(parse('FOO_BAR~1 * HTTP/1.9\r\n\r\n'), { kind: 'head', target: '*' }, 'any token as the method, any HTTP/1 minor version (as Go reads them)')
  t.match(parse('GET /caf\u00e9 HTTP/1.1\r\nX: \u00ff\r\n\r\n'), { kind: 'head', target: '/caf\u00e9' }, 'bytes past ASCII in the target and a value')
})

t.test('as lenient as Go\'s server: bare LF line ends, empty lines before the request line', async t => {
  t.same(parse('GET / HTTP/1.1\nHost: x.ngrok-free.app\n\n'), { kind: 'head', method: 'GET', target: '/', host: 'x.ngrok-free.app', length: 39, body: 0, upgrade: false })
  t.match(parse('GET / HTTP/1.1\r\nHost: a.example\n\r\n'), { kind: 'head', host: 'a.example' }, 'mixed')
  t.match(parse('\r\n\r\n\nGET / HTTP/1.1\r\nHost: a.example\r\n\r\n'), { kind: 'head', host: 'a.example' })
})

t.test('split anywhere: nothing until the last byte of the head', async t => {
  const head = 'GET http://a.example/ HTTP/1.1\r\nAccept: */*\r\nhost: x.ngrok-free.app\r\n\r\n'
  const r = dripped(head)
  t.ok(r.slice(0, -1).every(x => x === undefined), 'undefined while incomplete')
  t.same(r.at(-1), { kind: 'head', method: 'GET', target: 'http://a.example/', host: 'x.ngrok-free.app', length: head.length, body: 0, upgrade: false })
  // in two pieces, the split inside the Host field
  const p = new RequestHeadParser(1024)
  const buf = Buffer.from(head)
  const at = head.indexOf('ngrok')
  t.equal(p.parse(buf.subarray(0, at)), undefined)
  t.match(p.parse(buf), { kind: 'head', host: 'x.ngrok-free.app' })
})

t.test('not HTTP: told as soon as a byte shows it, or at the end of a first line no server reads as a request', async t => {
  const cases: [string, string | Buffer, number][] = [
    ['an SSH banner', 'SSH-2.0-OpenSSH_9.2\r\n', 19],
    ['an SSH banner with a comment', 'SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n', 31],
    ['an SSLv2 hello', Buffer.from([0x80, 0x2e, 0x01]), 0],
    ['a space first', ' GET / HTTP/1.1\r\n', 0],
    ['a NUL after the method', 'GET\u0000/ HTTP/1.1\r\n', 3],
    ['another protocol\'s request', 'OPTIONS rtsp://a/ RTSP/1.0\r\n', 27],
    ['an IRC command', 'NICK tg\r\nUSER tg 0 * :tg\r\n', 8],
    ['a token and a tab, then nothing', 'CAP\t\r\n', 5],
  ]
  for (const [name, text, at] of cases) {
    t.same(parse(text), { kind: 'not-http' }, name)
    const buf = typeof text === 'string' ? Buffer.from(text, 'latin1') : text
    t.equal(new RequestHeadParser(1024).parse(buf.subarray(0, at)), undefined, `${name}: not known before byte ${at}`)
  }
})

t.test('a request line lenient servers read (nginx, Node, squid), but not in the strict form: invalid, fail closed', async t => {
  const lines = [
    'GET  / HTTP/1.1', 'GET /  HTTP/1.1', 'GET / HTTP/1.1 ', 'GET / HTTP/1.10', 'get / http/1.1', 'GET / HTTP/1.x',
    'GET http://x.ngrok-free.app/', 'GET /', 'GET\thttp://x.ngrok-free.app/ HTTP/1.1', 'GET\u000bhttp://x.ngrok-free.app/ HTTP/1.1',
    'GET\fhttp://x.ngrok-free.app/', 'CONNECT  x.ngrok-free.app:443 HTTP/1.1', 'CONNECT\tconnect.ngrok-agent.com:443',
    'GET   http://x.ngrok-free.app/ HTTP/1.1', 'GET / HTTP/1.1\r\r', 'GET /\u0001 HTTP/1.1', 'GET /\u007f HTTP/1.1', 'GET / HTTP/2.0',
    'GET / HTTP/1.1 x', 'GET / HTTP/1', 'GET / ', 'OPTIONS *  HTTP/1.1', 'GET wss://x.ngrok-free.app/', 'GET ftp://x.ngrok-free.app/', 'POST HTTPS://x.ngrok-free.app/ x',
  ]
  for (const line of lines) {
    for (const end of ['\r\n', '\n']) {
      t.match(parse(`${line}${end}Host: x.ngrok-free.app\r\n\r\n`), { kind: 'invalid', reason: /not "METHOD target HTTP\/1\.x" with single spaces/ }, JSON.stringify(line + end))
    }
  }
  t.equal(parse('GET  / HTTP/1.1'), undefined, 'read to the end of the line before telling')
  t.ok(looksHttp('GET / HTTP/1.1'), 'the strict form is HTTP too')
})

t.test('HTTP that cannot be read safely: invalid (the tunnel fails closed)', async t => {
  const cases: [string, string, RegExp][] = [
    ['two Host fields', 'GET / HTTP/1.1\r\nHost: a.example\r\nHost: x.ngrok-free.app\r\n\r\n', /more than one Host header/],
    ['obs-fold', 'GET / HTTP/1.1\r\nHost: a.example\r\n x.ngrok-free.app\r\n\r\n', /not "name: value"/],
    ['a space before the colon', 'GET / HTTP/1.1\r\nHost : x.ngrok-free.app\r\n\r\n', /not "name: value"/],
    ['a line without a colon', 'GET / HTTP/1.1\r\nHost x.ngrok-free.app\r\n\r\n', /not "name: value"/],
    ['a lone CR in a value', 'GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n', /not "name: value"/],
    ['HTTP/2 with prior knowledge', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', /HTTP\/2 with prior knowledge/],
  ]
  for (const [name, text, reason] of cases) t.match(parse(text), { kind: 'invalid', reason }, name)
})

t.test('the body\'s framing: Content-Length or chunked; an upgrade: CONNECT or an Upgrade field', async t => {
  t.match(parse('POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n'), { kind: 'head', body: 12, upgrade: false })
  t.match(parse('POST / HTTP/1.1\r\ncontent-length:0\r\n\r\n'), { kind: 'head', body: 0 })
  t.match(parse('POST / HTTP/1.1\r\nTransfer-Encoding: Chunked \r\n\r\n'), { kind: 'head', body: 'chunked' }, 'chunked in any case, whitespace around it')
  t.match(parse('GET /ws HTTP/1.1\r\nHost: a.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'), { kind: 'head', body: 0, upgrade: true })
  t.match(parse('CONNECT a.example:443 HTTP/1.1\r\n\r\n'), { kind: 'head', upgrade: true }, 'a CONNECT sent on to a proxy behind')
  t.match(parse('connect a.example:443 HTTP/1.1\r\n\r\n'), { kind: 'head', upgrade: false }, 'methods are case-sensitive: no CONNECT')
})

t.test('body framing that two servers could read two ways: invalid (request smuggling)', async t => {
  const cases: [string, string, RegExp][] = [
    ['two Content-Length', 'Content-Length: 5\r\nContent-Length: 5', /more than one Content-Length header/],
    ['a Content-Length list', 'Content-Length: 5, 5', /not a number of bytes/],
    ['a signed Content-Length', 'Content-Length: +5', /not a number of bytes/],
    ['a hex Content-Length', 'Content-Length: 0x5', /not a number of bytes/],
    ['a Content-Length over 15 digits', `Content-Length: ${'9'.repeat(16)}`, /not a number of bytes/],
    ['an empty Content-Length', 'Content-Length:', /not a number of bytes/],
    ['TE and CL', 'Transfer-Encoding: chunked\r\nContent-Length: 5', /both Transfer-Encoding and Content-Length/],
    ['CL and TE', 'Content-Length: 5\r\nTransfer-Encoding: chunked', /both Transfer-Encoding and Content-Length/],
    ['two TE', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked', /more than one Transfer-Encoding header/],
    ['a TE list', 'Transfer-Encoding: gzip, chunked', /other than chunked/],
    ['chunked twice in one', 'Transfer-Encoding: chunked, chunked', /other than chunked/],
    ['an unknown TE', 'Transfer-Encoding: xchunked', /other than chunked/],
    ['an identity TE', 'Transfer-Encoding: identity', /other than chunked/],
  ]
  for (const [name, fields, reason] of cases) t.match(parse(`POST / HTTP/1.1\r\nHost: a.example\r\n${fields}\r\n\r\n`), { kind: 'invalid', reason }, name)
  t.match(parse('POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n'), { kind: 'invalid', reason: /Transfer-Encoding in an HTTP\/1\.0 request/ })
  t.match(parse('POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n'), { kind: 'head', body: 3 }, 'HTTP/1.0 with a length is fine')
})

t.test('a head over maxBytes is invalid, wherever the cap falls; one that ends within it is read', async t => {
  const head = `GET / HTTP/1.1\r\nHost: x.ngrok-free.app\r\nCookie: ${'a'.repeat(2000)}\r\n\r\n`
  t.same(parse(head, 1024), { kind: 'invalid', reason: 'request head over 1024 bytes' })
  t.match(parse(head, head.length), { kind: 'head' }, 'exactly at the cap')
  t.same(parse(head, head.length - 1), { kind: 'invalid', reason: `request head over ${head.length - 1} bytes` })
  t.same(parse('A'.repeat(5000), 1024), { kind: 'invalid', reason: 'request head over 1024 bytes' }, 'a method that does not end')
  t.same(parse(`GET /${'a'.repeat(5000)}`, 1024), { kind: 'invalid', reason: 'request head over 1024 bytes' }, 'a target that does not end')
  const r = dripped(head, 1024)
  t.equal(r.findIndex(x => x !== undefined), 1023, 'dripped: known at the cap')
  t.same(r[1023], { kind: 'invalid', reason: 'request head over 1024 bytes' })
})

const client = pausedClient

t.test('read from a socket: in segments, with what came first and what follows kept', async t => {
  const head = Buffer.from('GET / HTTP/1.1\r\nhost: a.example:8080\r\n\r\nbody')
  const p = new RequestHeadParser(1024)
  const r = await readFrom(client([head.subarray(3, 9), head.subarray(9, 30), head.subarray(30)]), head.subarray(0, 3), 1000, b => p.parse(b()))
  t.same(r.result, { kind: 'head', method: 'GET', target: '/', host: 'a.example:8080', length: head.length - 4, body: 0, upgrade: false })
  t.ok(r.data.equals(head), 'every byte read is kept for the tunnel')
  const cut = await readFrom(client([head.subarray(3, 20)], true), head.subarray(0, 3), 1000, b => new RequestHeadParser(1024).parse(b()))
  t.same(cut.result, { kind: 'eof' }, 'the client closed first')
  const late = await readFrom(client([head.subarray(3, 20)]), head.subarray(0, 3), 50, b => new RequestHeadParser(1024).parse(b()))
  t.same(late.result, { kind: 'timeout' }, 'not complete in time')
  t.equal(late.data.length, 20)
})
