/**
 * A remote list fetch's parts that keep no state: its response read into a Reply (at most
 * maxBytes of it), and a failed fetch's error said with its cause and the URL redacted.
 */
import type { Reply } from './list-reply.js'
import { errorText } from './observe/alert-output.js'
import { decodeText } from './read-file.js'

/** `text` with the URL, as configured or as requested, replaced by the redacted one. */
export const scrub = (text: string, url: string, requested: string, shown: string) => text.split(url).join(shown).split(requested).join(shown)

/**
 * A failed fetch's error with its cause: fetch says only "fetch failed" and puts what failed
 * (`connect ECONNREFUSED 127.0.0.1:18099`, a TLS or DNS error) and its code in `cause`.
 */
export function errorCause(e: unknown): { error: string; code?: string } {
  const err = e as Error
  if (err.cause === undefined || err.cause === null) return { error: err.message }
  // the innermost cause, or each address tried (an AggregateError), as alert lines say it
  const detail = errorText(err.cause)
  const code = (err.cause as { code?: unknown }).code
  return { error: detail ? `${err.message}: ${detail}` : err.message, code: typeof code === 'string' ? code : undefined }
}

export async function readCapped(res: Response, max: number): Promise<string | undefined> {
  const declared = Number(res.headers.get('content-length') ?? 0)
  if (declared > max) return undefined
  const chunks: Uint8Array[] = []
  let n = 0
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    n += chunk.byteLength
    if (n > max) return undefined
    chunks.push(chunk)
  }
  return decodeText(Buffer.concat(chunks))
}

/** A fetch's answer as the remote lists take it: unchanged (304), another status, too big, or the text with its validators. */
export async function readReply(res: Response, maxBytes: number): Promise<Reply> {
  if (res.status === 304) { await res.arrayBuffer(); return { kind: 'unchanged' } }
  if (res.status !== 200) { await res.body?.cancel(); return { kind: 'status', status: res.status } }
  const text = await readCapped(res, maxBytes)
  if (text === undefined) return { kind: 'too big' }
  return { kind: 'text', text, etag: res.headers.get('etag') ?? undefined, lastModified: res.headers.get('last-modified') ?? undefined }
}
