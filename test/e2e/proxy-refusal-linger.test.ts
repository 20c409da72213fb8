// A plain-HTTP request refused for its framing or its head (400 for chunked in HTTP/1.0, for
// Content-Length beside Transfer-Encoding, for a bad Host; 501 for a coding before chunked; 431 for
// a head too large or too many fields) by a client that writes its whole body before it reads
// (Python's http.client; curl with --data-binary): the answer reaches it, with no reset, because
// the connection is closed in stages (lingerClose: FIN after the answer, the client's bytes read
// and dropped until its FIN) with node's http parser taken off first, which would otherwise parse
// the body of a request whose framing was refused, and fail on it. The proxy serves on, and
// nothing is left open.
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { fakeResolve, run, startOrigin, testProxy, waitFor, type Origin, type TestProxy } from '../fixtures/origin.js'

const CLIENT = fileURLToPath(new URL('../fixtures/upload-client.py', import.meta.url))
/** The body each client writes in full before it reads: more than the loopback socket buffers hold. */
const SIZE = 4 * 1024 * 1024

interface Answer { status?: number; reason?: string; headers?: [string, string][]; body?: string; data?: string; error?: string }

async function upload(cfg: Record<string, unknown>): Promise<Answer> {
  const r = await run('python3', [CLIENT, JSON.stringify({ size: SIZE, ...cfg })], undefined, 20_000)
  return JSON.parse(r.stdout || `{"error": ${JSON.stringify(`python3 exited ${r.code}: ${r.stderr}`)}}`) as Answer
}

const closeLines = (p: TestProxy) => p.ev.messages.filter(m => m.msg === 'proxy.close').map(m => m.fields!)

/** After each refusal: its close line, a good request still served, and nothing left open. */
async function servesOn(t: Test, p: TestProxy, origin: Origin, lines: number, status: number, what: string, wholeBody = true) {
  t.ok(await waitFor(() => closeLines(p).length === lines + 1, 8000), `${what}: the connection closed`)
  t.match(closeLines(p).at(-1), { 'http.response.status_code': status }, `${what}: its close line keeps the status`)
  if (wholeBody) t.ok((closeLines(p).at(-1)!['source.bytes'] as number) > SIZE, `${what}: the body was read (and dropped) before the close`)
  const before = origin.requests.length
  const r = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', `http://127.0.0.1:${p.port}`, `http://site.example:${origin.port}/ok`])
  t.equal(r.stdout, '200', `${what}: a good request is still served`)
  t.equal(origin.requests.length, before + 1)
  t.ok(await waitFor(() => p.proxy.openConnections === 0, 3000), `${what}: no connection left open`)
}

async function setup(t: Test) {
  const origin = await startOrigin(t)
  const p = await testProxy(t, { config: { proxy: { allowDestinations: ['127.0.0.0/8'] } }, resolve: fakeResolve({ 'site.example': ['127.0.0.1'] }) })
  return { origin, p }
}

t.test("Python's http.client writes its whole body first: the refusal reaches it, no reset", async t => {
  const { origin, p } = await setup(t)
  const url = `http://site.example:${origin.port}/up`
  const cases: [string, Record<string, unknown>, number][] = [
    ['a coding before chunked', { headers: { 'Transfer-Encoding': 'gzip, chunked' }, chunked: true }, 501],
    ['chunked in HTTP/1.0', { headers: { 'Transfer-Encoding': 'chunked' }, chunked: true, http10: true }, 400],
    ['a bad Host header', { headers: { Host: 'a b' } }, 400],
  ]
  for (const [what, cfg, status] of cases) {
    const lines = closeLines(p).length
    const r = await upload({ mode: 'http.client', port: p.port, method: 'POST', url, ...cfg })
    t.notOk(r.error, `${what}: no reset (${r.error})`)
    t.equal(r.status, status, `${what}: ${status} read after the whole body was written`)
    t.match(Object.fromEntries((r.headers ?? []).map(([k, v]) => [k.toLowerCase(), v])), { connection: 'close', 'x-tunnelguard-reason': /./ },
      `${what}: the reason, and the close announced`)
    await servesOn(t, p, origin, lines, status, what)
  }
  t.equal(origin.requests.filter(x => x.url === '/up').length, 0, 'no refused request reached the origin')
})

t.test('a raw client writes a refused head and its whole body, then reads: the answer, then the FIN, no reset', async t => {
  const { origin, p } = await setup(t)
  const start = `POST http://site.example:${origin.port}/up HTTP/1.1\r\nHost: site.example:${origin.port}\r\n`
  const fields = Array.from({ length: 101 }, (_, i) => `X-F${i}: ${i}\r\n`).join('')
  const cases: [string, string, boolean, number][] = [
    ['Content-Length beside Transfer-Encoding', `${start}Content-Length: ${SIZE}\r\nTransfer-Encoding: chunked\r\n\r\n`, true, 400],
    ['a coding before chunked', `${start}Transfer-Encoding: gzip, chunked\r\n\r\n`, true, 501],
    ['a head over maxHeaderBytes', `${start}X-Pad: ${'a'.repeat(20_000)}\r\nContent-Length: ${SIZE}\r\n\r\n`, false, 431],
    ['more than 100 fields', `${start}${fields}Content-Length: ${SIZE}\r\n\r\n`, false, 431],
    // a request behind it in the same read is parsed before the parser is off: not served, and the
    // bytes after it (no request) are dropped, not answered
    ['more than 100 fields, a request pipelined behind', `${start.replace('POST', 'GET')}${fields}\r\n`
      + `GET http://site.example:${origin.port}/up HTTP/1.1\r\nHost: site.example:${origin.port}\r\n\r\n`, false, 431],
  ]
  for (const [what, head, chunked, status] of cases) {
    const lines = closeLines(p).length
    const r = await upload({ mode: 'raw', port: p.port, head, chunked })
    t.notOk(r.error, `${what}: no reset (${r.error})`)
    t.match(r.data, new RegExp(`^HTTP/1\\.1 ${status} [^\\r]*\\r\\n[\\s\\S]*\\r\\nConnection: close\\r\\n`, 'i'), `${what}: ${status}, then the proxy's FIN`)
    t.equal(r.data!.match(/HTTP\/1\.1 \d{3}/g)?.length, 1, `${what}: one answer`)
    await servesOn(t, p, origin, lines, status, what)
  }
  t.equal(origin.requests.filter(x => x.url === '/up').length, 0, 'no refused request reached the origin')
})

t.test('curl --data-binary with a coding before chunked: the 501 reaches curl, which exits cleanly, and the connection closes', async t => {
  const { origin, p } = await setup(t)
  const file = join(t.testdir({ 'body.bin': 'x'.repeat(SIZE) }), 'body.bin')
  const lines = closeLines(p).length
  const r = await run('curl', ['-sS', '-i', '-x', `http://127.0.0.1:${p.port}`, '-H', 'Expect:', '-H', 'Transfer-Encoding: gzip, chunked',
    '--data-binary', `@${file}`, `http://site.example:${origin.port}/up`], undefined, 20_000)
  t.equal(r.code, 0, `curl exits 0 (${r.stderr.trim()})`)
  t.match(r.stdout, /^HTTP\/1\.1 501 [\s\S]*x-tunnelguard-reason: Transfer-Encoding "gzip, chunked" is not implemented/i)
  // curl stops sending when the answer comes, and closes: what it had sent is all there is to drop
  await servesOn(t, p, origin, lines, 501, 'curl', false)
})
