import t from 'tap'
import { JsonBytes, bytes } from '../../src/observe/json-bytes.js'

t.test('str writes what JSON.stringify writes: short and long, plain and escaped, non-ASCII, lone surrogates', async t => {
  const long = 'x'.repeat(40)
  const texts = ['', 'a.ngrok.io', 'x"y', 'back\\slash', 'tab\there', '\u0000', '\u001f', '\u007f', 'café', '😀', '\ud800', 'a\udc00b',
    long, `${long}"`, `${long}\\`, `${long}\n`, `${long}é`, `${long}\u007f`, `${long}\ud800`, `${long}😀`]
  const w = new JsonBytes()
  for (const s of texts) {
    w.reset()
    w.str(s)
    t.equal(w.toString(), JSON.stringify(s), JSON.stringify(s))
  }
})

t.test('num writes what JSON.stringify writes', async t => {
  const w = new JsonBytes()
  for (const v of [0, 7, 9, 10, 99, 100, 65535, 4294967296, 123456789012345, Number.MAX_SAFE_INTEGER, 2 ** 53, -1, -0, 1.5, NaN, Infinity]) {
    w.reset()
    w.num(v)
    t.equal(w.toString(), JSON.stringify(v), String(v))
  }
})

t.test('pieces in order; the buffer grows and keeps what was written', async t => {
  const w = new JsonBytes()
  const start = w.buf.length
  const key = bytes(',"k":')
  const big = 'y'.repeat(start * 3)
  w.raw(bytes('{'))
  w.raw(bytes('"k":'))
  w.str(big)
  w.raw(key)
  w.bool(true)
  w.raw(bytes(',"long key that is copied with a set":'))
  w.bool(false)
  w.raw(bytes(',"json":'))
  w.json('{"é":[1,2]}')
  w.raw(bytes('}'))
  t.ok(w.buf.length > start, 'the buffer grew')
  t.same(JSON.parse(w.toString()), { k: true, 'long key that is copied with a set': false, json: { é: [1, 2] } }, 'the later key wins')
  t.equal(w.n, Buffer.byteLength(w.toString()))
  t.match(w.toString(), `{"k":"${big}","k":true,`)
  w.reset()
  t.equal(w.toString(), '')
})

t.test('plain writes a string with nothing to escape as it is, and nothing for any other', async t => {
  const w = new JsonBytes()
  t.ok(w.plain('a.ngrok.io'))
  t.ok(w.plain('x'.repeat(40)), 'a long plain one')
  const n = w.n
  for (const s of ['a"b', 'back\\slash', 'tab\t', 'café', 'x'.repeat(40) + '"', 'é' + 'x'.repeat(40)]) {
    t.notOk(w.plain(s), JSON.stringify(s))
    t.equal(w.n, n, 'nothing written')
  }
  t.equal(w.toString(), 'a.ngrok.io' + 'x'.repeat(40))
})
