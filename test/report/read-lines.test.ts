import t from 'tap'
import { Readable } from 'node:stream'
import { gzipSync } from 'node:zlib'
import { decompressed, readLines } from '../../src/report/read-lines.js'

async function lines(chunks: (string | Buffer)[], maxLine?: number): Promise<{ lines: string[]; tooLong: number }> {
  const out: string[] = []
  const src = Readable.from((async function* () {
    for (const c of chunks) {
      await new Promise(setImmediate)   // one read per chunk, as from a pipe
      yield c
    }
  })(), { objectMode: false })
  const tooLong = await readLines(await decompressed(src), l => out.push(l), maxLine)
  return { lines: out, tooLong }
}

t.test('lines across chunks, CRLF kept for JSON, final line without newline', async t => {
  t.same(await lines(['a\nb', 'c\n', '\nd\r\n', 'e']), { lines: ['a', 'bc', '', 'd\r', 'e'], tooLong: 0 })
  t.same(await lines([]), { lines: [], tooLong: 0 })
  t.same(await lines(['x', '\n']), { lines: ['x'], tooLong: 0 }, 'a one-byte first chunk')
  t.same(await lines(['日本\n', Buffer.from('é\n').subarray(0, 1), Buffer.from('é\n').subarray(1)]), { lines: ['日本', 'é'], tooLong: 0 }, 'utf-8 split across chunks')
})

t.test('too-long lines are dropped and counted, memory stays bounded', async t => {
  t.same(await lines(['short\n', 'x'.repeat(20), 'y'.repeat(20), '\nok\n'], 16), { lines: ['short', 'ok'], tooLong: 1 })
  t.same(await lines(['0123456789', '0123456789\nok\n'], 16), { lines: ['ok'], tooLong: 1 }, 'over the limit only when the newline comes')
  t.same(await lines(['0123456789abcdefghij\nok'], 16), { lines: ['ok'], tooLong: 1 }, 'within one chunk')
})

t.test('gzip detected by its magic bytes, in pieces', async t => {
  const gz = gzipSync('one\ntwo\n')
  t.same(await lines([gz]), { lines: ['one', 'two'], tooLong: 0 })
  t.same(await lines([gz.subarray(0, 1), gz.subarray(1, 5), gz.subarray(5)]), { lines: ['one', 'two'], tooLong: 0 })
  t.same(await lines(['\x1f']), { lines: ['\x1f'], tooLong: 0 }, 'one byte is not gzip')
  await t.rejects(lines([gz.subarray(0, gz.length - 6)]), /unexpected end of file/, 'a truncated gzip fails the read')
})
