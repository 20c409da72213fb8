import { pipeline, Readable } from 'node:stream'
import { createGunzip } from 'node:zlib'

/** Longest line kept; a longer one is skipped (and counted as malformed). */
export const MAX_LINE = 1 << 20

/** The stream, gunzipped when it starts with the gzip magic bytes (1f 8b). */
export async function decompressed(src: Readable): Promise<Readable> {
  const it = src[Symbol.asyncIterator]() as AsyncIterator<Buffer>
  const head: Buffer[] = []
  let size = 0
  let done = false
  while (size < 2) {
    const n = await it.next()
    if (n.done) { done = true; break }
    const b = Buffer.from(n.value)   // a copy; also takes a string chunk
    head.push(b)
    size += b.length
  }
  const first = Buffer.concat(head)
  const joined = Readable.from((async function* () {
    if (first.length > 0) yield first
    while (!done) {
      const n = await it.next()
      if (n.done) return
      yield n.value
    }
  })(), { objectMode: false })
  if (first[0] !== 0x1f || first[1] !== 0x8b) return joined
  const gz = createGunzip({ chunkSize: 1 << 18 })
  pipeline(joined, gz, () => { /* an error reaches the reader through gz */ })
  return gz
}

/**
 * Calls `onLine` for every line of the stream (without the newline; a final line without one
 * counts too). Memory is bounded by MAX_LINE: longer lines are dropped and counted.
 * Resolves with the number of lines dropped for length.
 */
export async function readLines(src: Readable, onLine: (line: string) => void, maxLine = MAX_LINE): Promise<number> {
  src.setEncoding('utf8')
  let rest = ''
  let skipping = false
  let tooLong = 0
  for await (const chunk of src as AsyncIterable<string>) {
    let start = 0
    let nl = chunk.indexOf('\n')
    while (nl !== -1) {
      if (skipping) skipping = false
      else if (rest.length + nl - start > maxLine) tooLong++
      else {
        onLine(rest.length > 0 ? rest + chunk.slice(start, nl) : chunk.slice(start, nl))
      }
      rest = ''
      start = nl + 1
      nl = chunk.indexOf('\n', start)
    }
    if (!skipping) {
      rest += chunk.slice(start)
      if (rest.length > maxLine) { tooLong++; skipping = true; rest = '' }
    }
  }
  if (rest.length > 0) onLine(rest)
  return tooLong
}
