import t from 'tap'
import type { Test } from 'tap'
import { startDns } from '../../src/dns/server.js'
import type { ConfigInput } from '../../src/config/schema.js'
import { memoryEvidence, type MemoryEvidence } from '../fixtures/evidence.js'
import { makeSnapshot } from '../fixtures/snapshot.js'
import { TEST_ZONE, startUnbound, type Unbound, type UnboundOptions } from '../fixtures/unbound.js'
import { dig, kdig } from '../fixtures/dig.js'
import { signedRoot } from '../fixtures/dnssec.js'

// What a client of tunnelguard sees beside what unbound, as the resolver it forwards to, answers
// itself: the header flags and TTLs of forwarded and cached answers.

interface Stack {
  ub: Unbound
  ev: MemoryEvidence
  server: { address: string; port: number }
  upstream: { address: string; port: number }
  /** Move tunnelguard's clock (not unbound's) on by `s` seconds. */
  advance(s: number): void
}

async function stack(t: Test, ubOpts: UnboundOptions = {}, dns: NonNullable<ConfigInput['dns']> = {}): Promise<Stack> {
  const ub = await startUnbound(t, ubOpts)
  const ev = memoryEvidence()
  const snap = makeSnapshot({ config: { dns: { upstreams: [ub.url], timeout: '2s', ...dns } } })
  let offset = 0n
  const clock = (): bigint => process.hrtime.bigint() + offset
  const d = await startDns({ listen: ['127.0.0.1:0'], getSnapshot: () => snap, evidence: ev, clock })
  t.teardown(() => d.close())
  return {
    ub, ev, server: d.addresses[0]!, upstream: { address: '127.0.0.1', port: ub.port },
    advance: s => { offset += BigInt(s) * 1_000_000_000n },
  }
}

const hits = (s: Stack): (boolean | undefined)[] => s.ev.events.map(e => e.dns?.cacheHit)

t.test('AD only for a client that asked with AD or DO, whichever client asked first (RFC 6840 §5.7-5.8), as unbound answers itself', async t => {
  const signed = signedRoot([
    { owner: '.', ttl: 3600, type: 'SOA', data: 'ns.test. host.test. 1 3600 600 86400 30' },
    { owner: '.', ttl: 3600, type: 'NS', data: 'ns.test.' },
    { owner: 'ns.test.', ttl: 300, type: 'A', data: '127.0.0.1' },
    { owner: 'a.test.', ttl: 300, type: 'A', data: '192.0.2.1' },
    { owner: 'a.test.', ttl: 300, type: 'AAAA', data: '2001:db8::1' },
  ])
  const s = await stack(t, { zone: signed.zone, forDownstream: false, server: ['module-config: "validator iterator"', signed.trustAnchor] })
  const ad = async (server: Stack['server'], type: string, opts: string[]): Promise<boolean> => {
    const r = await dig(server, 'a.test', type, opts)
    t.equal(r.status, 'NOERROR', `${type} ${opts.join(' ')}`)
    return r.flags.includes('ad')
  }
  // the validating upstream itself: AD when asked for, with or without EDNS, and always with DO
  t.equal(await ad(s.upstream, 'A', ['+noadflag']), false, 'unbound: no AD for a query without AD or DO')
  t.equal(await ad(s.upstream, 'A', ['+adflag']), true, 'unbound: AD for a query with AD')
  t.equal(await ad(s.upstream, 'A', ['+noadflag', '+dnssec']), true, 'unbound: AD for a query with DO')

  t.equal(await ad(s.server, 'A', ['+noadflag']), false, 'A without AD first: no AD')
  t.equal(await ad(s.server, 'A', ['+adflag']), true, 'then A with AD: AD (not the first asker\'s answer)')
  t.equal(await ad(s.server, 'AAAA', ['+adflag']), true, 'AAAA with AD first: AD')
  t.equal(await ad(s.server, 'AAAA', ['+noadflag']), false, 'then AAAA without AD: no AD')
  t.equal(await ad(s.server, 'A', ['+noedns', '+adflag']), true, 'without EDNS (glibc with trust-ad), AD first')
  t.equal(await ad(s.server, 'A', ['+noedns', '+noadflag']), false, 'then without AD')
  t.same(hits(s), [false, false, false, false, false, false], 'AD without DO is a key of its own')
  t.ok((await kdig(s.server, 'a.test', 'A')).flags.includes('ad'), 'kdig (AD by default, no EDNS): from the cache, AD')
  t.notOk((await kdig(s.server, 'a.test', 'A', ['+noadflag'])).flags.includes('ad'), 'kdig without AD: no AD')
  t.same(hits(s).slice(6), [true, true])

  t.equal(await ad(s.server, 'A', ['+dnssec', '+noadflag']), true, 'DO without AD: AD')
  t.equal(await ad(s.server, 'A', ['+dnssec', '+adflag']), true, 'DO with AD: AD')
  t.same(hits(s).slice(8), [false, true], 'with DO the AD bit of the query changes nothing: one entry for both')
})

t.test('minTtl/maxTtl: the answer that fills the cache carries the clamped TTLs too', async t => {
  const s = await stack(t, { zone: [...TEST_ZONE, 'long.test. 604800 IN A 192.0.2.12'] }, { cache: { minTtl: '60s', maxTtl: '1h' } })
  t.same((await dig(s.upstream, 'long.test')).answer.map(a => a.ttl), [604800], 'unbound: the zone\'s TTL')
  t.same((await dig(s.upstream, 'short.test')).answer.map(a => a.ttl), [5])
  const within = (ttl: number | undefined, want: number): boolean => ttl !== undefined && ttl <= want && ttl >= want - 5
  for (let i = 0; i < 2; i++) {
    const long = (await dig(s.server, 'long.test')).answer[0]?.ttl
    t.ok(within(long, 3600), `${i === 0 ? 'first' : 'cached'}: 604800 cut to maxTtl: ${long}`)
    const short = (await kdig(s.server, 'short.test')).answer[0]?.ttl
    t.ok(within(short, 60), `${i === 0 ? 'first' : 'cached'}: 5 raised to minTtl: ${short}`)
    const nx = (await dig(s.server, 'zz.test')).authority[0]?.ttl
    t.ok(within(nx, 60), `${i === 0 ? 'first' : 'cached'}: the NXDOMAIN's SOA (30) raised to minTtl: ${nx}`)
  }
  t.same(hits(s), [false, false, false, true, true, true])
})

t.test('NXDOMAIN through a CNAME lives no longer than the CNAME\'s TTL', async t => {
  // through unbound's iterator: the CNAME is followed to the name that does not exist
  const s = await stack(t, { zone: [...TEST_ZONE, 'cnx.test. 10 IN CNAME nothere.test.'], forDownstream: false })
  const first = await dig(s.server, 'cnx.test')
  t.equal(first.status, 'NXDOMAIN')
  t.same(first.answer.map(a => [a.type, a.ttl]), [['CNAME', 10]])
  t.same(first.authority.map(a => [a.type, a.ttl]), [['SOA', 30]], 'the negative TTL (30) is longer')
  s.advance(2)                                             // the clock runs for real too: a loaded box may take seconds between digs
  t.equal((await dig(s.server, 'cnx.test')).status, 'NXDOMAIN')
  s.advance(9)
  const after = await dig(s.server, 'cnx.test')
  t.equal(after.status, 'NXDOMAIN')
  t.ok(after.answer[0]!.ttl > 0, `past the CNAME's TTL: asked again, not served with TTL 0 (${after.answer[0]!.ttl})`)
  t.same(hits(s), [false, true, false], 'the entry expired with the CNAME, 10 s in')
})

t.test('AA clear and RA set in every answer, forwarded or cached, whatever the upstream set', async t => {
  // unbound answers its auth-zone authoritatively: AA set, and RA only when asked for recursion
  const s = await stack(t)
  const flags = async (server: Stack['server'], name: string, opts: string[] = [], tool = dig): Promise<string> =>
    (await tool(server, name, 'A', opts)).flags.filter(f => f === 'aa' || f === 'ra').join(' ')
  t.equal(await flags(s.upstream, 'a.test'), 'aa ra', 'unbound: AA')
  t.equal(await flags(s.upstream, 'a.test', ['+norec']), 'aa', 'unbound: AA, and no RA without RD')
  for (const round of ['forwarded', 'cached']) {
    t.equal(await flags(s.server, 'a.test'), 'ra', `${round}: RA, no AA`)
    t.equal(await flags(s.server, 'a.test', ['+norec']), 'ra', `${round} without RD: RA, no AA`)
    t.equal(await flags(s.server, 'zz.test', [], kdig), 'ra', `${round} NXDOMAIN: RA, no AA`)
  }
  t.same(hits(s), [false, false, false, true, true, true])
  t.equal(await flags(s.server, 'tunnel.ngrok.io'), 'ra', 'a sinkholed name (tunnelguard\'s own answer): RA, no AA')
  t.equal(await flags(s.server, 'c1.test'), 'ra', 'a CNAME into a sinkholed name: RA, no AA')
})

t.test('an opcode other than QUERY: NOTIMP with its opcode, its question and, with EDNS, an OPT record (ISC EDNS compliance "opcode")', async t => {
  const s = await stack(t)
  const edns = await dig(s.server, 'a.test', 'A', ['+opcode=15', '+edns=0', '+noad'])
  t.equal(edns.status, 'NOTIMP')
  t.match(edns.raw, /opcode: RESERVED15, status: NOTIMP/, 'the opcode asked, echoed')
  t.match(edns.raw, /OPT PSEUDOSECTION:\s*\n; EDNS: version: 0/, 'an OPT record, as for any EDNS query')
  t.match(edns.raw, /QUESTION SECTION:\s*\n;a\.test\.\s+IN\s+A/, 'the question')
  t.notMatch(edns.raw, /AUTHORITY SECTION/, 'no SOA')
  const notify = await dig(s.server, 'test', 'SOA', ['+opcode=notify', '+noedns'])
  t.equal(notify.status, 'NOTIMP')
  t.match(notify.raw, /opcode: NOTIFY/)
  t.notMatch(notify.raw, /EDNS/, 'no OPT record for a query without one')
  t.match(notify.raw, /QUESTION SECTION:\s*\n;test\.\s+IN\s+SOA/)
  t.equal(s.ev.events.length, 0, 'not a decision: nothing asked of the lists')
  t.equal(s.ev.counts['dropped.malformed'], 2, 'counted as malformed')
  t.equal((await dig(s.server, 'a.test')).status, 'NOERROR', 'and the next query is served')
})
