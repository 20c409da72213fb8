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

t.test('ASCII chunks read as latin1, others decoded as UTF-8, characters split anywhere', async t => {
  const text = 'ascii line\nnaïve 日本 😀 end\nmore ascii\n'
  const bytes = Buffer.from(text)
  const want = ['ascii line', 'naïve 日本 😀 end', 'more ascii']
  for (let cut = 1; cut < bytes.length; cut++) {
    const got = await lines([bytes.subarray(0, cut), bytes.subarray(cut)])
    if (JSON.stringify(got.lines) !== JSON.stringify(want)) { t.fail(`split at byte ${cut}: ${JSON.stringify(got.lines)}`); return }
  }
  t.pass('every split point gives the same lines')
  const third = Math.floor(bytes.length / 3)
  t.same((await lines([bytes.subarray(0, third), bytes.subarray(third, 2 * third), bytes.subarray(2 * third)])).lines, want)
  t.same((await lines([Buffer.from('a\n'), Buffer.from([0xe6, 0x97]), Buffer.from('\n')])).lines, ['a', '\ufffd'], 'a broken sequence is one replacement character, as the decoder gives')
  t.same((await lines([Buffer.from([0x61, 0xf0, 0x9f])])).lines, ['a\ufffd'], 'a sequence cut off at the end of the input')
})

t.test('a stream of strings is read as it is', async t => {
  const out: string[] = []
  await readLines(Readable.from(['one\ntw', 'o\n'], { objectMode: true }), l => out.push(l))
  t.same(out, ['one', 'two'])
})

t.test('endsMidChar: a lead byte whose sequence runs past the end', async t => {
  const { endsMidChar } = await import('../../src/report/read-lines.js')
  const e = (...b: number[]) => endsMidChar(Buffer.from(b))
  t.equal(e(), false, 'empty')
  t.equal(e(0x61), false, 'ASCII')
  t.equal(e(0xc3), true, '2-byte lead alone')
  t.equal(e(0xc3, 0xa9), false, '2-byte complete')
  t.equal(e(0xe6), true)
  t.equal(e(0xe6, 0x97), true, '3-byte with one continuation')
  t.equal(e(0xe6, 0x97, 0xa5), false, '3-byte complete')
  t.equal(e(0xf0, 0x9f, 0x98), true, '4-byte with two continuations')
  t.equal(e(0xf0, 0x9f, 0x98, 0x80), false, '4-byte complete: the lead is 4 back, past the 3 looked at')
  t.equal(e(0x80, 0x80, 0x80), false, 'stray continuation bytes: nothing to wait for')
})
