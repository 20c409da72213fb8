// An origin's Transfer-Encoding (RFC 9112 §6.1, §6.3): chunked alone is taken off and the body framed
// anew; identity (no coding) is relayed as the content it is; any other coding, or chunked twice,
// would reach the client as the content, still coded, under the proxy's own framing and with no
// field left to say so: a 502, as squid answers, and the origin's connection closed. With a
// Content-Length beside it, node's client refuses the response (a 502). A response with no body
// (to HEAD, a 204 or a 304) has nothing coded, and passes.
import { gzipSync } from 'node:zlib'
import t from 'tap'
import { exchange, fakeResolve, rawHttpOrigin, run, testProxy, waitFor } from '../fixtures/origin.js'

const LOOPBACK = { allowDestinations: ['127.0.0.1/32'] }
const TEXT = 'hello, world\n'
const GZ = gzipSync(TEXT)
const chunk = (b: Buffer | string) => `${Buffer.byteLength(b).toString(16)}\r\n${Buffer.isBuffer(b) ? b.toString('latin1') : b}\r\n`
const LAST = '0\r\n\r\n'

/** Path → the response's status and fields, its body as sent, and whether the origin closes after it (a body read to the close). */
const ANSWERS: Record<string, { status?: number; fields: string[]; body: string; close?: boolean }> = {
  '/chunked': { fields: ['Transfer-Encoding: chunked'], body: chunk(TEXT) + LAST },
  '/CHUNKED': { fields: ['Transfer-Encoding: CHUNKED'], body: chunk(TEXT) + LAST },
  '/identity': { fields: ['Transfer-Encoding: identity'], body: TEXT, close: true },
  '/gzip-chunked': { fields: ['Transfer-Encoding: gzip, chunked'], body: chunk(GZ) + LAST },
  '/two-fields': { fields: ['Transfer-Encoding: gzip', 'Transfer-Encoding: chunked'], body: chunk(GZ) + LAST },
  '/chunked-gzip': { fields: ['Transfer-Encoding: chunked, gzip'], body: GZ.toString('latin1'), close: true },
  '/gzip': { fields: ['Transfer-Encoding: gzip'], body: GZ.toString('latin1'), close: true },
  '/chunked-chunked': { fields: ['Transfer-Encoding: chunked, chunked'], body: chunk(chunk(TEXT) + LAST) + LAST },
  '/chunked-cl': { fields: ['Transfer-Encoding: chunked', 'Content-Length: 5'], body: chunk(TEXT) + LAST },
  '/gzip-cl': { fields: ['Transfer-Encoding: gzip', `Content-Length: ${GZ.length}`], body: GZ.toString('latin1') },
  '/identity-cl': { fields: ['Transfer-Encoding: identity', `Content-Length: ${TEXT.length}`], body: TEXT },
  '/204': { status: 204, fields: ['Transfer-Encoding: gzip, chunked'], body: '' },
  '/304': { status: 304, fields: ['Transfer-Encoding: gzip, chunked', 'ETag: "1"'], body: '' },
}

async function codingOrigin(t: Parameters<typeof rawHttpOrigin>[0]) {
  const origin = await rawHttpOrigin(t, (head, s) => {
    const [method, path] = head.split(' ')
    const a = ANSWERS[path!]!
    s.write(`HTTP/1.1 ${a.status ?? 200} X\r\n${a.fields.join('\r\n')}\r\n\r\n${method === 'HEAD' ? '' : a.body}`, 'latin1')
    if (a.close && method !== 'HEAD') s.end()
  }, false)
  return origin
}

t.test('chunked alone is framed anew, identity relayed as content; other codings are a 502, the origin connection closed', async t => {
  const origin = await codingOrigin(t)
  const p = await testProxy(t, { config: { proxy: LOOPBACK }, resolve: fakeResolve({ 'te.test': ['127.0.0.1'] }) })
  const curl = (path: string, more: string[] = []) => run('curl', ['-sS', '-i', ...more, '-x', `http://127.0.0.1:${p.port}`, `http://te.test:${origin.port}${path}`])
  const closeLines = () => p.ev.messages.filter(m => m.msg === 'proxy.close').map(m => m.fields!)

  // first, while no connection to the origin is pooled: each of these is closed
  for (const [path, named] of [['/gzip-chunked', 'gzip, chunked'], ['/two-fields', 'gzip, chunked'], ['/chunked-gzip', 'chunked, gzip'],
    ['/gzip', 'gzip'], ['/chunked-chunked', 'chunked, chunked']]) {
    const lines = closeLines().length
    const r = await curl(path!)
    t.equal(r.code, 0, r.stderr)
    t.match(r.stdout, /^HTTP\/1\.1 502 /, `${path}: 502`)
    t.match(r.stdout, new RegExp(`x-tunnelguard-reason: origin sent Transfer-Encoding "${named}": only chunked is relayed`, 'i'))
    t.notOk(r.stdout.includes('\x1f'), `${path}: no coded byte reaches the client (gzip's first, 0x1f)`)
    t.ok(await waitFor(() => closeLines().length === lines + 1))
    t.match(closeLines().at(-1), { 'http.response.status_code': 502, 'error.message': `origin sent Transfer-Encoding "${named}": only chunked is relayed` })
    t.ok(await waitFor(() => origin.open() === 0), `${path}: the origin connection closed, not pooled`)
  }

  for (const path of ['/chunked', '/CHUNKED', '/identity']) {
    const r = await curl(path)
    t.equal(r.code, 0, r.stderr)
    t.match(r.stdout, /^HTTP\/1\.1 200 /, `${path}: relayed`)
    t.ok(r.stdout.endsWith(`\r\n\r\n${TEXT}`), `${path}: the content, as sent`)
    t.notMatch(r.stdout, /identity/i, `${path}: no Transfer-Encoding passed on that no longer describes the bytes`)
  }
  const raw = await exchange(p.port, [`GET http://te.test:${origin.port}/identity HTTP/1.1\r\nHost: te.test\r\nConnection: close\r\n\r\n`])
  t.match(raw.data, /\r\nTransfer-Encoding: chunked\r\n\r\nd\r\nhello, world\n\r\n0\r\n\r\n$/, 'identity: the body read to the close, framed anew in chunks')

  for (const path of ['/chunked-cl', '/gzip-cl', '/identity-cl']) {
    const r = await curl(path)
    t.match(r.stdout, /^HTTP\/1\.1 502 [\s\S]*Content-Length can't be present with Transfer-Encoding/, `${path}: node's client refuses both: 502`)
  }

  const head = await curl('/gzip-chunked', ['-I'])
  t.match(head.stdout, /^HTTP\/1\.1 200 /, 'HEAD: no body, nothing coded: passes')
  t.match((await curl('/204')).stdout, /^HTTP\/1\.1 204 /, '204: passes')
  t.match((await curl('/304')).stdout, /^HTTP\/1\.1 304 [\s\S]*etag: "1"/i, '304: passes')

  const ok = await curl('/chunked')
  t.match(ok.stdout, /^HTTP\/1\.1 200 /, 'the proxy still serves')
  t.ok(await waitFor(() => p.proxy.openConnections === 0), 'nothing left open')
})
