import t from 'tap'
import { parseConnectHead } from '../../src/proxy/connect-head.js'

const b = (s: string) => Buffer.from(s, 'latin1')
const MAX = 16_384

t.test('the plainest CONNECT head: target, X-Forwarded-For, where the tunnel bytes start', async t => {
  const head = 'CONNECT edge.ngrok-free.app:443 HTTP/1.1\r\nHost: edge.ngrok-free.app:443\r\nUser-Agent: curl/8\r\n\r\n'
  const h = parseConnectHead(b(`${head}\x16\x03\x01`), MAX)
  t.same(h, { url: 'edge.ngrok-free.app:443', headers: {}, length: head.length })
  const bare = parseConnectHead(b('CONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n'), MAX)
  t.same(bare, { url: '127.0.0.1:443', headers: {}, length: 34 }, 'no fields at all')
  const v6 = parseConnectHead(b('CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost:[2001:db8::1]:443\r\n\r\n'), MAX)
  t.equal(v6?.url, '[2001:db8::1]:443', 'bracketed IPv6; no space after the colon')
  const xff = parseConnectHead(b('CONNECT a.example:443 HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1\r\nx-forwarded-for:\t192.168.1.2 \r\nHost: a\r\n\r\n'), MAX)
  t.same(xff?.headers, { 'x-forwarded-for': '10.0.0.1, 192.168.1.2' }, 'repeated X-Forwarded-For joined as node joins it, any case, spaces trimmed')
  const fwd = parseConnectHead(b('CONNECT a.example:443 HTTP/1.1\r\nForwarded: for=10.0.0.1\r\nX-Forwarded-For: 10.0.0.1\r\nFORWARDED: for="[2001:db8::1]:5";proto=https\r\n\r\n'), MAX)
  t.same(fwd?.headers, { 'x-forwarded-for': '10.0.0.1', forwarded: 'for=10.0.0.1, for="[2001:db8::1]:5";proto=https' }, 'repeated Forwarded joined too, any case')
  const tab = parseConnectHead(b('CONNECT a.example:443 HTTP/1.1\r\nUser-Agent: a\tb\r\n\r\n'), MAX)
  t.ok(tab, 'a tab inside a value')
  const empty = parseConnectHead(b('CONNECT a.example:443 HTTP/1.1\r\nX-Forwarded-For:\r\n\r\n'), MAX)
  t.same(empty?.headers, { 'x-forwarded-for': '' }, 'an empty value')
})

t.test('anything else is left to node\'s http parser (undefined)', async t => {
  const cases: [string, string][] = [
    ['GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n', 'another method'],
    ['connect a.example:443 HTTP/1.1\r\n\r\n', 'lowercase method'],
    ['CONNECT a.example:443 HTTP/1.1\r\nHost: a.example', 'head not complete yet'],
    ['CONNECT a.example:443', 'shorter than any complete head'],
    ['CONNECT a.example:443 HTTP/1.0\r\n\r\n', 'HTTP/1.0'],
    ['CONNECT a.example:443  HTTP/1.1\r\n\r\n', 'two spaces'],
    ['CONNECT http://a.example:443/ HTTP/1.1\r\n\r\n', 'a URL, not an authority'],
    ['CONNECT a.example:443 HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n', 'obs-fold (space)'],
    ['CONNECT a.example:443 HTTP/1.1\r\nHost: a\r\n\tfolded\r\n\r\n', 'obs-fold (tab)'],
    ['CONNECT a.example:443 HTTP/1.1\r\nHost : a\r\n\r\n', 'space before the colon'],
    ['CONNECT a.example:443 HTTP/1.1\r\nHost a\r\n\r\n', 'no colon'],
    ['CONNECT a.example:443 HTTP/1.1\r\n: a\r\n\r\n', 'empty field name'],
    ['CONNECT a.example:443 HTTP/1.1\r\nHost: a\nX: b\r\n\r\n', 'a bare LF'],
    ['CONNECT a.example:443 HTTP/1.1\r\nHost: a\rX: b\r\n\r\n', 'a bare CR'],
    ['CONNECT a.example:443 HTTP/1.1\r\nHost: a\r\r\n\r\n', 'CR before the final CRLFCRLF'],
    ['CONNECT a.example:443 HTTP/1.1\r\nHost: a\x00b\r\n\r\n', 'NUL in a value'],
    ['CONNECT a.example:443 HTTP/1.1\r\nHost: caf\xe9\r\n\r\n', 'a byte above 0x7e'],
    ['CONNECT a.example:443 HTTP/1.1\r\nX: \x7f\r\n\r\n', 'DEL'],
    ['CONNECT a.example:443 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello', 'Content-Length: body framing is llhttp\'s call'],
    ['CONNECT a.example:443 HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n', 'Transfer-Encoding'],
  ]
  for (const [head, why] of cases) t.equal(parseConnectHead(b(head), MAX), undefined, why)
  const big = `CONNECT a.example:443 HTTP/1.1\r\nX-Pad: ${'a'.repeat(2000)}\r\n\r\n`
  t.ok(parseConnectHead(b(big), big.length), 'exactly at the limit')
  t.equal(parseConnectHead(b(big), big.length - 1), undefined, 'one byte over maxHeaderBytes: node answers 431')
})
