// dialAny: the addresses of a name dialled side by side, each ATTEMPT_DELAY_MS after the one
// before or at once when it fails (RFC 8305 §5); the first to connect wins, the others abandoned.
import { connect, createServer, type Socket } from 'node:net'
import t from 'tap'
import { ATTEMPT_DELAY_MS, connected, dial, dialAny, interleaveFamilies, UpstreamError } from '../../src/proxy/upstream.js'
import { blackhole } from '../fixtures/origin.js'

/** A fake attempt: resolves or rejects `ms` after it starts (a socket stand-in), or waits to be abandoned; what happened when. */
function fake(plan: Record<string, { ms: number; ok: boolean } | 'hang'>) {
  const log: string[] = []
  const at: Record<string, number> = {}
  const t0 = Date.now()
  const note = (what: string) => { log.push(what); at[what] = Date.now() - t0 }
  const attempt = (ip: string, _ms: number, signal?: AbortSignal): Promise<Socket> => new Promise((resolve, reject) => {
    note(`start ${ip}`)
    const p = plan[ip]!
    const abandon = () => { note(`abandoned ${ip}`); reject(new UpstreamError(502, 'abandoned')) }
    signal?.addEventListener('abort', abandon, { once: true })
    if (p === 'hang') return
    setTimeout(() => {
      signal?.removeEventListener('abort', abandon)
      note(`${p.ok ? 'connected' : 'failed'} ${ip}`)
      if (p.ok) resolve({ ip } as unknown as Socket)
      else reject(new UpstreamError(502, `refused ${ip}`))
    }, p.ms)
  })
  return { log, at, attempt }
}

t.test('an address that hangs costs the attempt delay: the next is dialled beside it, and the winner abandons the rest', async t => {
  const { log, at, attempt } = fake({ a: 'hang', b: { ms: 30, ok: true }, c: 'hang' })
  const s = await dialAny(['a', 'b', 'c'], 10_000, attempt, 200)
  t.same(s, { ip: 'b' })
  t.same(log, ['start a', 'start b', 'connected b', 'abandoned a'], 'b dialled beside a, connected first; a abandoned; c never started')
  t.ok(at['start b']! >= 195, `b started once the delay was up (${at['start b']} ms)`)
  t.equal(ATTEMPT_DELAY_MS, 250)
})

t.test('a failure starts the next at once; all failing rejects with the last failure, once every attempt has ended', async t => {
  const { log, at, attempt } = fake({ a: { ms: 3000, ok: false }, b: { ms: 10, ok: false }, c: { ms: 10, ok: false } })
  await t.rejects(dialAny(['a', 'b', 'c'], 10_000, attempt, 1000), { message: 'refused a' }, 'a failed last')
  t.same(log, ['start a', 'start b', 'failed b', 'start c', 'failed c', 'failed a'])
  t.ok(at['start c']! - at['failed b']! < 500, `c started as b failed, not a delay later (${at['start c']! - at['failed b']!} ms)`)
  const one = fake({ x: { ms: 5, ok: false } })
  await t.rejects(dialAny(['x'], 10_000, one.attempt), { message: 'refused x' }, 'one address: the attempt itself, given no signal')
})

t.test('real sockets: a blackholed address beside one that answers; the loser is destroyed, nothing left open', async t => {
  const open = new Set<Socket>()
  const srv = createServer(s => { open.add(s); s.on('close', () => open.delete(s)) })
  await new Promise<void>(r => srv.listen(0, '127.0.0.1', r))
  const port = (srv.address() as { port: number }).port
  t.teardown(() => { for (const s of open) s.destroy(); srv.close() })
  await blackhole(t, '127.0.0.2', port)
  const tracked: Socket[] = []
  const t0 = Date.now()
  const s = await dialAny(['127.0.0.2', '127.0.0.1'], 20_000, (ip, ms, signal) => dial(ip, port, ms, x => tracked.push(x), undefined, signal))
  const took = Date.now() - t0
  t.equal(s.remoteAddress, '127.0.0.1')
  t.ok(took < 5_000, `connected after the attempt delay, not half the 20 s timeout (${took} ms)`)
  t.equal(tracked.length, 2)
  t.ok(tracked[0]!.destroyed, 'the blackholed attempt was abandoned and its socket destroyed')
  s.destroy()
  // an abort after the connect changes nothing; connected() without a signal as before
  const c = new AbortController()
  const again = await connected(connect(port, '127.0.0.1'), `127.0.0.1:${port}`, 5_000, c.signal)
  c.abort()
  t.notOk(again.destroyed)
  again.destroy()
})

t.test('the order of the dial: the families interleaved, IPv6 first, each in its own order (RFC 8305 §4)', async t => {
  t.same(interleaveFamilies(['192.0.2.1', '192.0.2.2', '2001:db8::1', '2001:db8::2']), ['2001:db8::1', '192.0.2.1', '2001:db8::2', '192.0.2.2'])
  t.same(interleaveFamilies(['2001:db8::1', '192.0.2.1', '192.0.2.2', '192.0.2.3', '2001:db8::2']),
    ['2001:db8::1', '192.0.2.1', '2001:db8::2', '192.0.2.2', '192.0.2.3'], 'more IPv4: the rest after the last IPv6')
  t.same(interleaveFamilies(['192.0.2.1', '2001:db8::1', '2001:db8::2', '2001:db8::3']),
    ['2001:db8::1', '192.0.2.1', '2001:db8::2', '2001:db8::3'], 'more IPv6: the rest after the last IPv4')
  t.same(interleaveFamilies(['192.0.2.3', '192.0.2.1', '192.0.2.2']), ['192.0.2.3', '192.0.2.1', '192.0.2.2'], 'only IPv4: as answered')
  t.same(interleaveFamilies(['2001:db8::2', '2001:db8::1']), ['2001:db8::2', '2001:db8::1'], 'only IPv6: as answered')
  t.same(interleaveFamilies(['::ffff:192.0.2.1', '64:ff9b::c000:201', '192.0.2.9']), ['::ffff:192.0.2.1', '192.0.2.9', '64:ff9b::c000:201'],
    'an IPv6 address that carries an IPv4 one (mapped, NAT64) is dialled as IPv6, which it is')
  t.same(interleaveFamilies(['192.0.2.1']), ['192.0.2.1'])
  t.same(interleaveFamilies([]), [])
  const answer = ['192.0.2.1', '2001:db8::1']
  interleaveFamilies(answer)
  t.same(answer, ['192.0.2.1', '2001:db8::1'], 'the answer itself is left as it was')
})

t.test('dialled in that order: an IPv6 address first, an IPv4 one 250 ms later beside it', async t => {
  const { log, at, attempt } = fake({ '192.0.2.1': { ms: 10, ok: true }, '192.0.2.2': 'hang', '2001:db8::1': 'hang', '2001:db8::2': 'hang' })
  const s = await dialAny(interleaveFamilies(['192.0.2.1', '192.0.2.2', '2001:db8::1', '2001:db8::2']), 10_000, attempt, 100)
  t.same(s, { ip: '192.0.2.1' })
  t.same(log, ['start 2001:db8::1', 'start 192.0.2.1', 'connected 192.0.2.1', 'abandoned 2001:db8::1'],
    'the IPv6 address first; the first IPv4 one beside it after the delay, not after every IPv6 one')
  t.ok(at['start 192.0.2.1']! >= 95, `the IPv4 address started once the delay was up (${at['start 192.0.2.1']} ms)`)
})
