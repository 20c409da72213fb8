import t from 'tap'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createHash } from 'node:crypto'
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createRemoteLists, storedCopies } from '../src/remote-lists.js'
import { errorCause } from '../src/remote-fetch.js'
import { makeSnapshot } from './fixtures/snapshot.js'
import { memoryEvidence } from './fixtures/evidence.js'
import { httpServer } from './fixtures/http-server.js'
import type { Config } from '../src/snapshot-types.js'

/** A local list server: /list (ETag + Last-Modified), /big, /down. */
async function listServer(t: { teardown(fn: () => unknown): void }) {
  const seen: IncomingMessage[] = []
  let body = 'ngrok.io\n'
  let etag = '"v1"'
  const port = await httpServer(t, (req, res) => {
    seen.push(req)
    if (req.url === '/down') { res.writeHead(503).end(); return }
    if (req.url === '/big') { res.writeHead(200).end('x'.repeat(5000)); return }
    if (req.url === '/bigdeclared') { res.writeHead(200, { 'content-length': '999999' }).end(); return }
    if (req.headers['if-none-match'] === etag) { res.writeHead(304).end(); return }
    res.writeHead(200, { etag, 'last-modified': 'Sun, 22 Nov 2026 00:00:00 GMT' }).end(body)
  })
  const base = `http://127.0.0.1:${port}`
  return { base, seen, set(b: string, e: string) { body = b; etag = e } }
}

function configWith(base: Config, dir: string, urls: string[], maxBytes = 1 << 20): Config {
  return { ...base, state: { dir }, lists: { remote: { files: [], urls, refresh: 50, maxBytes, action: 'block' } } }
}

t.test('fetch, conditional refresh, change detection, last good copy on disk', async t => {
  const srv = await listServer(t)
  const dir = t.testdir()
  const ev = memoryEvidence()
  let changes = 0
  const config = configWith(makeSnapshot().config, dir, [`${srv.base}/list`])
  const rl = createRemoteLists({ config: () => config, evidence: ev, onChange: () => { changes++ } })
  t.same(rl.texts(), {}, 'nothing before the first fetch')
  await rl.refreshAll()
  t.same(rl.texts(), { remote: [{ source: `${srv.base}/list`, text: 'ngrok.io\n' }] })
  t.equal(changes, 1)
  await rl.refreshAll()
  t.equal(srv.seen.at(-1)!.headers['if-none-match'], '"v1"', 'conditional request with the ETag')
  t.equal(srv.seen.at(-1)!.headers['if-modified-since'], 'Sun, 22 Nov 2026 00:00:00 GMT')
  t.equal(changes, 1, '304: no change')
  srv.set('ngrok.io\nngrok.app\n', '"v2"')
  await rl.refreshAll()
  t.equal(changes, 2, 'new content: onChange')
  t.ok(readdirSync(dir).some(f => f.endsWith('.txt')), 'kept on disk')

  // a new process (new instance) starts from the disk copy, before any fetch
  const again = createRemoteLists({ config: () => config, evidence: ev, onChange: () => {} })
  t.same(again.texts().remote![0]!.text, 'ngrok.io\nngrok.app\n', 'last good copy used until the first fetch returns')
})

t.test('failures keep the last good copy: HTTP error, too large, unreachable', async t => {
  const srv = await listServer(t)
  const dir = t.testdir()
  const ev = memoryEvidence()
  const good = configWith(makeSnapshot().config, dir, [`${srv.base}/list`])
  await createRemoteLists({ config: () => good, evidence: ev, onChange: () => {} }).refreshAll()
  for (const [path, max, msg] of [['/down', 1 << 20, /^remote list fetch failed; no copy yet: the list is empty until a fetch succeeds$/],
    ['/big', 1024, /^remote list larger than maxBytes; no copy yet/], ['/bigdeclared', 1024, /larger than maxBytes/]] as const) {
    const url = `${srv.base}${path}`
    const c = configWith(makeSnapshot().config, dir, [url], max)
    const rl = createRemoteLists({ config: () => c, evidence: ev, onChange: () => t.fail('no change expected') })
    await rl.refreshAll()
    t.same(rl.texts(), {}, `${path}: nothing new taken`)
    t.match(ev.messages.at(-1)!.msg, msg)
    // the cause and a code, as every failed fetch's line has them (a SIEM rule keys on them)
    if (max === 1024) t.match(ev.messages.at(-1)!.fields, { error: 'the response is larger than lists.remote.maxBytes (1024 bytes)', code: 'TOO_LARGE', maxBytes: 1024 })
  }
  // a port nothing listens on (just closed): fetch's own message is "fetch failed", the cause says why
  const closed = createServer()
  await new Promise<void>(r => closed.listen(0, '127.0.0.1', r))
  const deadPort = (closed.address() as AddressInfo).port
  await new Promise<void>(r => closed.close(() => r()))
  const dead = configWith(makeSnapshot().config, dir, [`http://127.0.0.1:${deadPort}/list`])
  const rl = createRemoteLists({ config: () => dead, evidence: ev, onChange: () => {}, timeoutMs: 2000 })
  await rl.refreshAll()
  t.match(ev.messages.at(-1)!, {
    level: 'warn', msg: 'remote list fetch failed; no copy yet: the list is empty until a fetch succeeds',
    fields: { error: `fetch failed: connect ECONNREFUSED 127.0.0.1:${deadPort}`, code: 'ECONNREFUSED', have_copy: false },
  }, 'the cause and its code; no copy to keep, and it says so')
  const stillGood = createRemoteLists({ config: () => good, evidence: ev, onChange: () => {}, fetch: async () => { throw new Error('boom') } })
  await stillGood.refreshAll()
  t.equal(stillGood.texts().remote![0]!.text, 'ngrok.io\n', 'a failed fetch leaves the disk copy in use')
  t.match(ev.messages.at(-1)!, { msg: 'remote list fetch failed; keeping the last good copy', fields: { error: 'boom', have_copy: true } })
  t.notOk('code' in ev.messages.at(-1)!.fields!, 'no cause, no code')
  const downWithCopy = createRemoteLists({ config: () => good, evidence: ev, onChange: () => {}, fetch: async () => new Response(null, { status: 500 }) })
  await downWithCopy.refreshAll()
  t.match(ev.messages.at(-1)!, { msg: 'remote list fetch failed; keeping the last good copy', fields: { status: 500, have_copy: true } })
})

t.test('start fetches at once and every refresh; stop ends the timers', async t => {
  const srv = await listServer(t)
  const ev = memoryEvidence()
  const c = configWith(makeSnapshot().config, t.testdir(), [`${srv.base}/list`])
  const rl = createRemoteLists({ config: () => c, evidence: ev, onChange: () => {} })
  rl.start()
  await new Promise(r => setTimeout(r, 400))
  rl.stop()
  // a fetch started by the last tick before stop() may reach the server a little later: let it land
  await new Promise(r => setTimeout(r, 100))
  const n = srv.seen.length
  t.ok(n >= 3, `fetched at start and on refresh (${n} requests)`)
  await new Promise(r => setTimeout(r, 300))
  t.equal(srv.seen.length, n, 'no fetch after stop')
})

t.test('an unwritable state dir is reported, the copy is still used in memory', async t => {
  const srv = await listServer(t)
  const ev = memoryEvidence()
  const file = join(t.testdir({ 'a-file': 'x' }), 'a-file')
  const c = configWith(makeSnapshot().config, join(file, 'state'), [`${srv.base}/list`])
  const rl = createRemoteLists({ config: () => c, evidence: ev, onChange: () => {} })
  await rl.refreshAll()
  t.ok(ev.messages.some(m => /cannot keep the last good copy/.test(m.msg)))
  t.equal(rl.texts().remote![0]!.text, 'ngrok.io\n')
})

t.test('timers skip lists without urls and lists removed by a reload', async t => {
  const srv = await listServer(t)
  const ev = memoryEvidence()
  const base = makeSnapshot().config
  let c: Config = { ...configWith(base, t.testdir(), [`${srv.base}/list`]), lists: { ...configWith(base, '', [`${srv.base}/list`]).lists, local: { files: ['/x'], urls: [], refresh: 10, maxBytes: 1024, action: 'block' } } }
  let changes = 0
  const rl = createRemoteLists({ config: () => c, evidence: ev, onChange: () => { changes++ } })
  rl.start()
  await new Promise(r => setTimeout(r, 120))
  srv.set('ngrok.io\nngrok.dev\n', '"v9"')
  // a refresh every 50 ms: the next one finds the new content (waited for, at most 2 s)
  for (let i = 0; i < 200 && changes < 2; i++) await new Promise(r => setTimeout(r, 10))
  t.ok(changes >= 2, `a refresh that finds new content calls onChange (${changes})`)
  t.ok(srv.seen.length >= 1, 'the list with urls is fetched')
  c = { ...c, lists: {} }
  // a fetch its timer started just before the reload may still reach the server: let it land
  await new Promise(r => setTimeout(r, 100))
  const n = srv.seen.length
  await new Promise(r => setTimeout(r, 150))   // three refresh periods
  rl.stop()
  t.equal(srv.seen.length, n, 'a list removed by a reload is not fetched any more')
})

t.test('a reload that adds a list or changes its urls: fetched at once (sync), the others left to their timers', async t => {
  const srv = await listServer(t)
  const ev = memoryEvidence()
  const base = makeSnapshot().config
  const list = (urls: string[]) => ({ files: [], urls, refresh: 3_600_000, maxBytes: 1 << 20, action: 'block' as const })
  let c: Config = { ...base, state: { dir: t.testdir() }, lists: { a: list([`${srv.base}/list?a`]) } }
  let changes = 0
  const rl = createRemoteLists({ config: () => c, evidence: ev, onChange: () => { changes++ } })
  t.teardown(() => rl.stop())
  const urls = () => srv.seen.map(r => r.url)
  const until = async (n: number) => { for (let i = 0; i < 200 && srv.seen.length < n; i++) await new Promise(r => setTimeout(r, 10)) }
  rl.sync()
  await new Promise(r => setTimeout(r, 50))
  t.same(urls(), [], 'before start, a reload fetches nothing (start does)')
  rl.start()
  await until(1)
  t.same(urls(), ['/list?a'])
  c = { ...c, lists: { a: list([`${srv.base}/list?a`]), b: list([`${srv.base}/list?b`]) } }
  rl.sync()
  await until(2)
  t.same(urls(), ['/list?a', '/list?b'], 'the new list at once; the unchanged one not again')
  for (let i = 0; i < 200 && changes < 2; i++) await new Promise(r => setTimeout(r, 10))
  t.equal(changes, 2, 'its content reloads the lists')
  c = { ...c, lists: { a: list([`${srv.base}/list?a2`]) } }
  rl.sync()
  await until(3)
  t.same(urls(), ['/list?a', '/list?b', '/list?a2'], 'changed urls: fetched at once; the list gone: not')
  rl.sync()
  await new Promise(r => setTimeout(r, 50))
  t.equal(srv.seen.length, 3, 'a reload that changes nothing fetches nothing')
})

t.test('without state.dir the last good copy goes to the temp directory', async t => {
  const srv = await listServer(t)
  const base = makeSnapshot().config
  const c: Config = { ...base, lists: { remote: { files: [], urls: [`${srv.base}/list?tmp=${process.pid}`], refresh: 1000, maxBytes: 1 << 20, action: 'block' } } }
  const rl = createRemoteLists({ config: () => c, evidence: memoryEvidence(), onChange: () => {} })
  await rl.refreshAll()
  const { tmpdir } = await import('node:os')
  const dir = join(tmpdir(), `tunnelguard-state-${process.getuid!()}`)
  t.ok(readdirSync(dir).length > 0)
  t.equal(statSync(dir).mode & 0o777, 0o700, 'a directory of this user\'s own')
})

t.test('a state dir another user made or can write to is neither read nor written (a copy there could allow what the lists block)', async t => {
  const srv = await listServer(t)
  const url = `${srv.base}/down`                    // no fetch succeeds: only a copy on disk could fill the list
  const forge = (dir: string): void => {
    const base = join(dir, createHash('sha256').update(url).digest('hex').slice(0, 32))
    writeFileSync(base + '.txt', '@@||ngrok.io^\n')
    writeFileSync(base + '.json', JSON.stringify({ url, fetchedAt: 1 }))
  }
  const root = t.testdir({ f: 'x' })               // one per test: the three cases are made inside it
  const open = join(root, 'open')
  mkdirSync(open)
  chmodSync(open, 0o777)
  const foreign = join(root, 'foreign')
  mkdirSync(foreign)
  chownSync(foreign, 65534, 65534)
  const notDir = join(root, 'f')
  const group = join(root, 'group')                  // writable by a group this process is not in
  mkdirSync(group)
  chownSync(group, process.getuid!(), 65534)
  chmodSync(group, 0o770)
  for (const [dir, why] of [[open, /writable by other users \(mode 777\)/], [foreign, /owned by uid 65534/], [notDir, /not a directory/],
    [group, /writable by group 65534, not this process's own \(mode 770\)/]] as const) {
    if (dir !== notDir) forge(dir)
    const ev = memoryEvidence()
    const c = configWith(makeSnapshot().config, dir, [url])
    t.match(storedCopies(c), { dir, untrusted: why, copies: [{ fetchedAt: null }] }, 'check and lists do not read it either')
    t.same(storedCopies(c).texts, {})
    const rl = createRemoteLists({ config: () => c, evidence: ev, onChange: () => {} })
    t.same(rl.texts(), {}, 'the forged copy is not read')
    await rl.refreshAll()
    t.same(rl.texts(), {})
    const warned = ev.messages.filter(m => m.msg.startsWith('state dir not used'))
    t.equal(warned.length, 1, 'said once')
    t.match(warned[0]!.fields, { dir, reason: why, fix: /state\.dir/ })
  }
  // a good fetch into an untrusted dir: used in memory, nothing written there
  const ok = `${srv.base}/list`
  const ev = memoryEvidence()
  const c = configWith(makeSnapshot().config, open, [ok])
  const rl = createRemoteLists({ config: () => c, evidence: ev, onChange: () => {} })
  await rl.refreshAll()
  t.equal(rl.texts().remote![0]!.text, 'ngrok.io\n')
  t.equal(readdirSync(open).length, 2, 'only the two forged files there')
  // not there: nothing read, and nothing said (the first save makes it, private)
  const missing = storedCopies(configWith(makeSnapshot().config, join(root, 'none'), [url]))
  t.notOk('untrusted' in missing)
  t.same(missing.texts, {})
  // writable by this process's own group (Kubernetes' fsGroup): trusted
  chownSync(group, process.getuid!(), process.getgid!())
  t.notOk(storedCopies(configWith(makeSnapshot().config, group, [url])).untrusted)
  // the same directory made private: its copies are used again
  chmodSync(open, 0o700)
  t.notOk(storedCopies(configWith(makeSnapshot().config, open, [url])).untrusted)
  t.same(Object.keys(storedCopies(configWith(makeSnapshot().config, open, [url])).texts), ['remote'])
})

t.test('a URL with credentials: fetched with Basic auth; password and query values never logged, stored or shown', async t => {
  const auths: (string | undefined)[] = []
  const paths: (string | undefined)[] = []
  const port = await httpServer(t, (req, res) => {
    auths.push(req.headers.authorization)
    paths.push(req.url)
    if (req.headers.authorization !== `Basic ${Buffer.from('u:p@ss hunter2').toString('base64')}`) { res.writeHead(401).end(); return }
    res.writeHead(200).end('trycloudflare.com\n')
  })
  const dir = t.testdir()
  const ev = memoryEvidence()
  const url = `http://u:p%40ss%20hunter2@127.0.0.1:${port}/tunnels.txt?key=SECRET`
  const shown = `http://u:***@127.0.0.1:${port}/tunnels.txt?key=***`
  const config = configWith(makeSnapshot().config, dir, [url])
  let changes = 0
  const rl = createRemoteLists({ config: () => config, evidence: ev, onChange: () => { changes++ } })
  await rl.refreshAll()
  t.same(auths, [`Basic ${Buffer.from('u:p@ss hunter2').toString('base64')}`], 'the percent-decoded user and password as Basic auth')
  t.same(paths, ['/tunnels.txt?key=SECRET'], 'the query is sent as it is')
  t.equal(changes, 1, 'the list was fetched (it stayed empty before: fetch refused the URL)')
  t.same(rl.texts(), { remote: [{ source: shown, text: 'trycloudflare.com\n' }] }, 'the source every entry carries is redacted')
  t.match(ev.messages, [{ msg: 'remote list fetched', fields: { url: shown } }])
  const json = readdirSync(dir).filter(f => f.endsWith('.json')).map(f => readFileSync(join(dir, f), 'utf8'))
  t.match(JSON.parse(json[0]!), { url: shown }, 'the state dir\'s .json has the redacted URL')

  // failures: wrong password (401), the server gone (an error naming the URL) — still nothing secret
  const wrong = configWith(makeSnapshot().config, dir, [`http://u:wrong-hunter2@127.0.0.1:${port}/tunnels.txt?key=SECRET`])
  await createRemoteLists({ config: () => wrong, evidence: ev, onChange: () => {} }).refreshAll()
  t.match(ev.messages.at(-1), { level: 'warn', fields: { status: 401, url: `http://u:***@127.0.0.1:${port}/tunnels.txt?key=***` } })
  const echo = createRemoteLists({ config: () => config, evidence: ev, onChange: () => {}, fetch: async u => { throw new TypeError(`cannot fetch ${String(u)} (from ${url})`) } })
  await echo.refreshAll()
  t.equal(ev.messages.at(-1)!.fields!.error, `cannot fetch ${shown} (from ${shown})`, 'a URL in an error message is redacted, as requested and as configured')
  const logged = JSON.stringify(ev.messages)
  t.notMatch(logged, /hunter2|SECRET|p%40ss|p@ss/, 'no password or query value in any log line')
})

t.test('a copy kept by an older version, its .json with the password in it: used, and written again redacted', async t => {
  const dir = t.testdir()
  const url = 'http://u:hunter2@127.0.0.1:9/tunnels.txt?key=SECRET'
  const base = join(dir, createHash('sha256').update(url).digest('hex').slice(0, 32))
  writeFileSync(base + '.txt', 'trycloudflare.com\n')
  writeFileSync(base + '.json', JSON.stringify({ url, etag: '"v1"', fetchedAt: 1_700_000_000_000 }))
  const ev = memoryEvidence()
  const rl = createRemoteLists({ config: () => configWith(makeSnapshot().config, dir, [url]), evidence: ev, onChange: () => {},
    fetch: async () => { throw new TypeError('fetch failed') } })
  await rl.refreshAll()
  const shown = 'http://u:***@127.0.0.1:9/tunnels.txt?key=***'
  t.same(rl.texts(), { remote: [{ source: shown, text: 'trycloudflare.com\n' }] }, 'the copy is in use')
  const json = JSON.parse(readFileSync(base + '.json', 'utf8')) as Record<string, unknown>
  t.same(json, { url: shown, etag: '"v1"', fetchedAt: 1_700_000_000_000 }, 'the same metadata, the URL redacted')
  t.notMatch(readFileSync(base + '.json', 'utf8'), /hunter2|SECRET/)
})

t.test('errorCause: the message, then the cause\'s (each address tried, when several), or its code', async t => {
  const failed = (cause: unknown) => new Error('fetch failed', { cause })
  t.same(errorCause(new Error('boom')), { error: 'boom' })
  t.same(errorCause(failed(null)), { error: 'fetch failed' })
  t.same(errorCause(failed('socket hang up')), { error: 'fetch failed: socket hang up' })
  t.same(errorCause(failed(Object.assign(new Error('getaddrinfo ENOTFOUND lists.invalid'), { code: 'ENOTFOUND' }))),
    { error: 'fetch failed: getaddrinfo ENOTFOUND lists.invalid', code: 'ENOTFOUND' })
  const agg = Object.assign(new AggregateError([new Error('connect ECONNREFUSED ::1:1'), new Error('connect ECONNREFUSED 127.0.0.1:1')], ''), { code: 'ECONNREFUSED' })
  t.same(errorCause(failed(agg)), { error: 'fetch failed: connect ECONNREFUSED ::1:1; connect ECONNREFUSED 127.0.0.1:1', code: 'ECONNREFUSED' })
  t.same(errorCause(failed({ code: 'UND_ERR_SOCKET' })), { error: 'fetch failed: UND_ERR_SOCKET', code: 'UND_ERR_SOCKET' })
  t.same(errorCause(failed({ code: 7 })), { error: 'fetch failed', code: undefined })
})

t.test('a 200 that is not a list (an error page, empty, only comments, mostly junk) is a failed fetch: the last good copy stays, in use and on disk', async t => {
  const srv = await listServer(t)
  const dir = t.testdir()
  const ev = memoryEvidence()
  const url = `${srv.base}/list?key=SECRET`
  const shown = `${srv.base}/list?key=***`
  const config = configWith(makeSnapshot().config, dir, [url])
  let changes = 0
  const rl = createRemoteLists({ config: () => config, evidence: ev, onChange: () => { changes++ } })
  srv.set('ngrok.io\nngrok.app\n', '"good"')
  await rl.refreshAll()
  t.equal(changes, 1)
  const txt = () => readdirSync(dir).filter(f => f.endsWith('.txt')).map(f => readFileSync(join(dir, f), 'utf8'))
  const fix = /^make the URL serve the list \(not an error or login page\); an empty response never empties a list: to drop its entries, remove the URL from lists\.remote\.urls$/
  const html = '<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><h1>Bad Gateway</h1></body>\n</html>\n'
  const mostly = '<html>\n<p>This list moved</p>\n<a href="/new">ngrok.io</a>\nngrok.io\n</html>\n'
  for (const [i, [name, body, why, entries, invalid]] of ([
    ['an HTML error page', html, 'no list entry in it', 0, 4],
    ['an empty body', '', 'no list entry in it', 0, 0],
    ['only comments', '# this list is empty now\n! nothing here\n\n', 'no list entry in it', 0, 0],
    ['mostly junk, one line an entry', mostly, 'most of its lines are not list entries', 1, 4],
    ['one word alone (a 200 with an error text)', 'Unauthorized\n', 'one word alone, an error text rather than a list of one top-level domain', 1, 0],
  ] as const).entries()) {
    srv.set(body, `"junk${i}"`)
    const before = ev.messages.length
    await rl.refreshAll()
    const said = ev.messages.slice(before)
    t.match(said, [{
      level: 'warn', msg: `remote list fetch failed: the response is not a list (${why}); keeping the last good copy`,
      fields: { list: 'remote', url: shown, status: 200, bytes: Buffer.byteLength(body), entry_lines: entries, invalid_lines: invalid, have_copy: true, fix },
    }], `${name}: one warn line, with the counts and the fix`)
    t.equal(said.length, 1, `${name}: nothing else said`)
    t.same(rl.texts(), { remote: [{ source: shown, text: 'ngrok.io\nngrok.app\n' }] }, `${name}: the last good copy stays in use`)
    t.same(txt(), ['ngrok.io\nngrok.app\n'], `${name}: and on disk`)
    t.equal(srv.seen.at(-1)!.headers['if-none-match'], '"good"', `${name}: the next request is still conditional on the good copy`)
  }
  t.equal(changes, 1, 'no reload')
  t.notMatch(JSON.stringify(ev.messages), /SECRET/, 'the URL is redacted')
  const restarted = createRemoteLists({ config: () => config, evidence: ev, onChange: () => {} })
  t.equal(restarted.texts().remote![0]!.text, 'ngrok.io\nngrok.app\n', 'a restart starts from the good copy')

  // as many invalid lines as entries (not more than half): a list with some stray lines, taken
  srv.set('ngrok.io\nnot a name\n# a comment\n\n', '"half"')
  await rl.refreshAll()
  t.equal(rl.texts().remote![0]!.text, 'ngrok.io\nnot a name\n# a comment\n\n')
  t.equal(changes, 2)
  t.match(ev.messages.at(-1), { level: 'info', msg: 'remote list fetched', fields: { changed: true } })
})

t.test('a 200 that is not a list, with no copy yet: nothing kept, the list stays unloaded; lines read in the format of the URL', async t => {
  const srv = await listServer(t)
  const dir = t.testdir()
  const ev = memoryEvidence()
  srv.set('<html><body>Sign in</body></html>\n', '"login"')
  for (const path of ['/list', '/rules.yml', '/list.csv']) {
    const c = configWith(makeSnapshot().config, dir, [`${srv.base}${path}`])
    const rl = createRemoteLists({ config: () => c, evidence: ev, onChange: () => t.fail('no change expected') })
    await rl.refreshAll()
    t.match(ev.messages.at(-1), { level: 'warn', msg: /^remote list fetch failed: the response is not a list \(no list entry in it\); no copy yet: the list is empty until a fetch succeeds$/,
      fields: { url: `${srv.base}${path}`, have_copy: false } }, path)
    t.same(rl.texts(), {})
    t.same(rl.copies(), [{ list: 'remote', url: `${srv.base}${path}`, fetchedAt: null }], 'no copy: /readyz names it unloaded')
  }
  t.same(readdirSync(dir), [], 'nothing written')
  // a Sigma rule served at a .yml URL reads as one (as lines, most of its lines would be junk)
  srv.set('title: t\nid: 11111111-1111-1111-1111-111111111111\nauthor: a\nlogsource: { category: dns }\n'
    + 'detection:\n  selection:\n    QueryName|endswith: .ngrok.io\n  condition: selection\n', '"sigma"')
  const c = configWith(makeSnapshot().config, dir, [`${srv.base}/rules.yml`])
  let changes = 0
  const rl = createRemoteLists({ config: () => c, evidence: ev, onChange: () => { changes++ } })
  await rl.refreshAll()
  t.equal(changes, 1, 'taken')
  // a rule with more values it cannot use (partial labels) than values it can is still a rule
  srv.set('title: t\nid: 22222222-2222-2222-2222-222222222222\nauthor: a\nlogsource: { category: dns }\n'
    + 'detection:\n  selection:\n    QueryName|endswith:\n      - .ngrok-free.app\n      - .ngrok.app\n'
    + '  partial:\n    QueryName|contains:\n      - ngrok\n      - tunnel\n      - grok-\n  condition: selection or partial\n', '"sigma2"')
  await rl.refreshAll()
  t.equal(changes, 2, 'taken, its three partial values warned as from a file')
  t.match(rl.texts(), { remote: [{ text: /ngrok-free\.app/ }] })
})

/** A list server that holds every request until told to answer it: its requests, in order. */
async function heldServer(t: { teardown(fn: () => unknown): void }) {
  const held: { req: IncomingMessage; answer(body: string, etag: string): void; closed: Promise<void> }[] = []
  const port = await httpServer(t, (req, res) => {
    const closed = new Promise<void>(r => res.on('close', () => r()))
    held.push({ req, closed, answer: (body, etag) => { res.writeHead(200, { etag }).end(body) } })
  })
  const until = async (n: number) => { for (let i = 0; i < 300 && held.length < n; i++) await new Promise(r => setTimeout(r, 10)) }
  return { base: `http://127.0.0.1:${port}`, held, until }
}

t.test('one fetch per URL at a time: a refresh while one runs waits for it, so an older response cannot replace a newer copy', async t => {
  const srv = await heldServer(t)
  const dir = t.testdir()
  const ev = memoryEvidence()
  const config = configWith(makeSnapshot().config, dir, [`${srv.base}/list`])
  let reloaded: unknown = null
  const rl = createRemoteLists({ config: () => config, evidence: ev, onChange: () => { reloaded = rl.texts() } })
  const seed = rl.refreshAll()
  await srv.until(1)
  srv.held[0]!.answer('ngrok.io\n', '"v1"')
  await seed
  const first = rl.refreshAll()
  await srv.until(2)
  const second = rl.refreshAll()                   // e.g. a reload's fetch while the timer's is still running
  await new Promise(r => setTimeout(r, 100))
  t.equal(srv.held.length, 2, 'no second request while the first runs')
  // had a second request gone out and brought the newer list first, the slower, older answer would land after it
  srv.held[2]?.answer('ngrok.io\nngrok.app\n', '"v2"')
  await new Promise(r => setTimeout(r, 50))
  srv.held[1]!.answer('ngrok.io\n', '"v1-mirror"')
  await Promise.all([first, second])
  t.same(rl.texts(), reloaded, 'the copy in use is the one the last reload loaded')
  const onDisk = readdirSync(dir).filter(f => f.endsWith('.txt')).map(f => readFileSync(join(dir, f), 'utf8'))
  t.same(onDisk, [rl.texts().remote![0]!.text], 'and the one on disk')
  t.equal(ev.messages.filter(m => m.msg === 'remote list fetched').length, 2, 'one response taken per request')
})

t.test('a hung server: a refresh does not open another connection while the fetch runs', async t => {
  const srv = await heldServer(t)
  const config = configWith(makeSnapshot().config, t.testdir(), [`${srv.base}/list`])   // refresh: 50 ms
  const rl = createRemoteLists({ config: () => config, evidence: memoryEvidence(), onChange: () => {}, timeoutMs: 10_000 })
  t.teardown(() => rl.stop())
  rl.start()
  await srv.until(1)
  await new Promise(r => setTimeout(r, 300))       // six refresh periods
  t.equal(srv.held.length, 1, 'one connection')
  srv.held[0]!.answer('ngrok.io\n', '"v1"')
  await srv.until(2)
  t.ok(srv.held.length >= 2, 'refreshes go on once it is done')
})

t.test('stop() aborts the fetches in flight: the connection closes at once; nothing is logged, kept or reloaded after it', async t => {
  const srv = await heldServer(t)
  const dir = t.testdir()
  const ev = memoryEvidence()
  const config = configWith(makeSnapshot().config, dir, [`${srv.base}/list`])
  let changes = 0
  const rl = createRemoteLists({ config: () => config, evidence: ev, onChange: () => { changes++ } })
  rl.start()
  await srv.until(1)
  const t0 = Date.now()
  rl.stop()
  const closed = await Promise.race([srv.held[0]!.closed.then(() => true), new Promise(r => setTimeout(r, 2000, false))])
  t.ok(closed, `the connection closed at stop (after ${Date.now() - t0} ms), not at the fetch's timeout (30 s)`)
  await new Promise(r => setTimeout(r, 50))
  t.same(ev.messages, [], 'an aborted fetch is no failure to report')

  // a fetch that finishes after stop() (one that does not heed its signal): nothing taken; a fetch
  // that finished before it changed the list, but the reload is not done after stop() either
  let late!: (r: Response) => void
  const fake: typeof fetch = async u => String(u).endsWith('/late')
    ? new Promise<Response>(r => { late = r })
    : new Response('ngrok.io\n', { status: 200 })
  const two = configWith(makeSnapshot().config, dir, [`${srv.base}/early`, `${srv.base}/late`])
  const rl2 = createRemoteLists({ config: () => two, evidence: ev, onChange: () => { changes++ }, fetch: fake })
  const all = rl2.refreshAll()
  await new Promise(r => setTimeout(r, 50))
  rl2.stop()
  late(new Response('ngrok.io\nngrok.app\n', { status: 200 }))
  await all
  t.equal(changes, 0, 'no reload after stop')
  t.same(ev.messages.map(m => m.fields!.url), [`${srv.base}/early`], 'only the fetch done before stop() is logged')
  t.same(rl2.texts().remote!.map(x => x.source), [`${srv.base}/early`], 'the late one is not kept')
  t.equal(readdirSync(dir).filter(f => f.endsWith('.txt')).length, 1, 'nor written')
})

t.test('a copy that cannot be written (a full disk) leaves no temporary file behind, and the last one whole', async t => {
  const { readCopy, writeCopy } = await import('../src/state-dir.js')
  const url = 'https://lists.example/list.txt'
  const dir = t.testdir()
  writeCopy(dir, url, { text: 'first.example\n', etag: '"1"', fetchedAt: 1 })
  const [txt, json] = ['.txt', '.json'].map(ext => readdirSync(dir).find(f => f.endsWith(ext))!)
  // a rename that fails stands for any failed write: the temporary file (part-written on a full disk) stayed, taking the room
  const blocking = (name: string, f: () => void): void => {
    const saved = readFileSync(join(dir, name))
    rmSync(join(dir, name))
    mkdirSync(join(dir, name))
    t.throws(() => writeCopy(dir, url, { text: 'second.example\n', etag: '"2"', fetchedAt: 2 }))
    t.same(readdirSync(dir).filter(f => f.endsWith('.tmp')), [], `no temporary file left (${name.slice(name.indexOf('.'))})`)
    rmdirSync(join(dir, name))
    writeFileSync(join(dir, name), saved)
    f()
  }
  blocking(txt!, () => t.match(readCopy(dir, url), { text: 'first.example\n', etag: '"1"', fetchedAt: 1 }, 'the text failed: the last good copy, whole'))
  // the text goes first: a new text with the old validators is asked for again in full, never the reverse (an old text kept by a 304)
  blocking(json!, () => t.match(readCopy(dir, url), { text: 'second.example\n', etag: '"1"', fetchedAt: 1 }, 'the .json failed: still read, not left empty'))
  writeCopy(dir, url, { text: 'third.example\n', fetchedAt: 3 })
  t.match(readCopy(dir, url), { text: 'third.example\n', fetchedAt: 3 })
})

t.test('a failed fetch is tried again before the refresh: 30 s doubled each time (here ms), until one succeeds', async t => {
  let up = false
  const times: number[] = []
  const port = await httpServer(t, (_req, res) => {
    times.push(Date.now())
    if (!up) { res.writeHead(503).end(); return }
    res.writeHead(200).end('ngrok.io\n')
  })
  const ev = memoryEvidence()
  const base = makeSnapshot().config
  const c: Config = { ...base, state: { dir: t.testdir() }, lists: { remote: { files: [], urls: [`http://127.0.0.1:${port}/l`], refresh: 3_600_000, maxBytes: 1 << 20, action: 'block' } } }
  let changes = 0
  const rl = createRemoteLists({ config: () => c, evidence: ev, onChange: () => { changes++ }, retryMs: 40 })
  t.teardown(() => rl.stop())
  rl.start()
  for (let i = 0; i < 100 && times.length < 4; i++) await new Promise(r => setTimeout(r, 20))
  t.ok(times.length >= 4, `fetched again after failing, long before the hour's refresh (${times.length} requests)`)
  const gaps = times.slice(1, 4).map((x, i) => x - times[i]!)
  t.ok(gaps[0]! >= 35 && gaps[1]! >= 75 && gaps[2]! >= 155, `waits of 40, 80, 160 ms (${gaps.join(', ')})`)
  const failed = ev.messages.filter(m => m.msg.startsWith('remote list fetch failed'))
  t.same(failed.slice(0, 3).map(m => m.fields!.retry_in_ms), [40, 80, 160], 'each failure line says when the next try is')
  up = true
  for (let i = 0; i < 100 && changes === 0; i++) await new Promise(r => setTimeout(r, 20))
  t.equal(changes, 1, 'the list is taken once a try succeeds')
  const n = times.length
  await new Promise(r => setTimeout(r, 700))
  t.equal(times.length, n, 'and no more tries after it: the refresh is an hour away')
  up = false
  await rl.refreshAll()
  t.equal(ev.messages.at(-1)!.fields!.retry_in_ms, 40, 'a new run of failures starts at the first wait again')
  rl.stop()
  const m = times.length
  await new Promise(r => setTimeout(r, 200))
  t.equal(times.length, m, 'stop() ends the retries too')
})

t.test('no retry sooner than the refresh, nor before start (refreshAll alone), nor for a list a reload removed', async t => {
  const ev = memoryEvidence()
  const base = makeSnapshot().config
  let c: Config = { ...base, state: { dir: t.testdir() }, lists: { remote: { files: [], urls: ['http://127.0.0.1:9/l'], refresh: 60_000, maxBytes: 1 << 20, action: 'block' } } }
  let calls = 0
  const rl = createRemoteLists({ config: () => c, evidence: ev, onChange: () => {}, retryMs: 60_000, fetch: async () => { calls++; return new Response(null, { status: 502 }) } })
  await Promise.all([rl.refreshAll(), rl.refreshAll()])
  t.equal(calls, 1, 'two refreshes at once share one failed fetch')
  t.notOk('retry_in_ms' in ev.messages.at(-1)!.fields!, 'not started: one fetch, no retry')
  rl.start()
  t.teardown(() => rl.stop())
  await new Promise(r => setTimeout(r, 50))
  t.notOk('retry_in_ms' in ev.messages.at(-1)!.fields!, 'a first wait of a minute is no sooner than the refresh: none')
  const quick = createRemoteLists({ config: () => c, evidence: ev, onChange: () => {}, retryMs: 30, fetch: async () => {
    calls++
    c = { ...c, lists: {} }                         // a reload removes the list while it is fetched
    return new Response(null, { status: 502 })
  } })
  quick.start()
  t.teardown(() => quick.stop())
  const before = calls
  await new Promise(r => setTimeout(r, 200))
  t.equal(calls, before, 'the removed list is not tried again')
})

t.test('a fetch that does not complete in time: said as a timeout, with its code', async t => {
  const port = await httpServer(t, (_req, res) => { res.writeHead(200); res.write('ngrok.io\n') })   // the body never ends
  const c = configWith(makeSnapshot().config, t.testdir(), [`http://127.0.0.1:${port}/list`])
  const ev = memoryEvidence()
  await createRemoteLists({ config: () => c, evidence: ev, onChange: () => {}, timeoutMs: 300 }).refreshAll()
  t.match(ev.messages.at(-1), { level: 'warn', msg: 'remote list fetch failed; no copy yet: the list is empty until a fetch succeeds',
    fields: { error: 'no complete response within 0.3s', code: 'ETIMEDOUT' } })
})

t.test('a copy removed from disk (a tmp cleaner) is written again at the next 304, so a restart still starts from it', async t => {
  const srv = await listServer(t)
  const dir = t.testdir()
  const config = configWith(makeSnapshot().config, dir, [`${srv.base}/list`])
  const rl = createRemoteLists({ config: () => config, evidence: memoryEvidence(), onChange: () => {} })
  await rl.refreshAll()
  const files = () => readdirSync(dir).filter(f => !f.endsWith('.tmp')).sort()
  const kept = files()
  t.equal(kept.length, 2, 'the text and its .json')
  for (const f of kept) rmSync(join(dir, f))
  await rl.refreshAll()
  t.equal(srv.seen.at(-1)!.headers['if-none-match'], '"v1"', 'still a conditional request')
  t.same(files(), kept, 'written again from the copy in use')
  const restarted = createRemoteLists({ config: () => config, evidence: memoryEvidence(), onChange: () => {} })
  t.equal(restarted.texts().remote![0]!.text, 'ngrok.io\n', 'a restart starts from it')
  // a 304 with the copy on disk writes nothing
  const before = statSync(join(dir, kept[0]!)).mtimeMs
  await new Promise(r => setTimeout(r, 20))
  await rl.refreshAll()
  t.equal(statSync(join(dir, kept[0]!)).mtimeMs, before, 'not rewritten when it is there')
  // a 304 with no copy anywhere (a server that answers 304 to anything): nothing to keep or write
  const empty = t.testdir()
  const bare = configWith(makeSnapshot().config, empty, [`${srv.base}/list`])
  const odd = createRemoteLists({ config: () => bare, evidence: memoryEvidence(), onChange: () => t.fail('no change'), fetch: async () => new Response(null, { status: 304 }) })
  await odd.refreshAll()
  t.same(odd.texts(), {})
  t.same(readdirSync(empty), [])
})
