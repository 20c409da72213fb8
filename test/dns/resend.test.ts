import t, { type Test } from 'tap'
import { createSocket } from 'node:dgram'
import dnsPacket from 'dns-packet'
import { PendingTable, RESEND_MIN_MS, resendPlan } from '../../src/dns/pending.js'
import { UdpTransport } from '../../src/dns/upstream-udp.js'
import { UpstreamPool } from '../../src/dns/upstreams.js'
import { parseQuery, type Query } from '../../src/dns/wire.js'
import type { AppError } from '../../src/errors.js'
import { memoryEvidence } from '../fixtures/evidence.js'
import { decodeMsg } from '../fixtures/dig.js'

const query = (name = 'a.test'): { buf: Buffer; qEnd: number } => {
  const buf = dnsPacket.encode({ type: 'query', id: 0x1234, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] })
  return { buf, qEnd: (parseQuery(buf) as Query).qEnd }
}
const answer = (q: Buffer): Buffer => {
  const d = decodeMsg(q)
  return dnsPacket.encode({ type: 'response', id: d.id, flags: 0x8180, questions: d.questions as dnsPacket.Question[], answers: [{ type: 'A', name: d.questions![0]!.name, ttl: 60, data: '192.0.2.1' }] })
}

t.test('resendPlan: at a third and two thirds of the time; at half when a third is under RESEND_MIN_MS; never when half is', async t => {
  t.equal(RESEND_MIN_MS, 300)
  t.same(resendPlan(2000), { gapMs: 2000 / 3, resends: 2 })
  t.same(resendPlan(900), { gapMs: 300, resends: 2 })
  t.same(resendPlan(899), { gapMs: 449.5, resends: 1 })
  t.same(resendPlan(600), { gapMs: 300, resends: 1 })
  t.same(resendPlan(599), { gapMs: 0, resends: 0 })
})

t.test('PendingTable: a query unanswered is sent again as it was, twice, then times out at its own time', async t => {
  const sent: { at: number; bytes: Buffer }[] = []
  const table = new PendingTable(undefined, undefined, q => sent.push({ at: performance.now() - t0, bytes: Buffer.from(q) }))
  const { buf, qEnd } = query()
  const t0 = performance.now()
  const err = await new Promise<AppError | undefined>(r => table.add(buf, qEnd, 900, e => r(e)))
  const took = performance.now() - t0
  t.equal(err?.code, 'UPSTREAM_TIMEOUT')
  t.equal(sent.length, 2, 'sent again twice')
  t.ok(sent[0]!.at >= 295 && sent[1]!.at >= 595, `at ${sent.map(s => Math.round(s.at)).join(' and ')} ms`)
  t.ok(took >= 895, `timed out at its time (${Math.round(took)} ms), not later by a gap`)
  t.ok(sent.every(s => s.bytes.equals(buf)), 'the same bytes: the same ID and letter case, so either copy\'s answer is taken')
  t.equal(table.size, 0)
})

t.test('PendingTable: an answer after one resend stops the next; a second answer to it is late, not a mismatch', async t => {
  const sent: Buffer[] = []
  const table = new PendingTable(undefined, undefined, q => sent.push(Buffer.from(q)))
  const { buf, qEnd } = query()
  const got = new Promise<Buffer | undefined>(r => table.add(buf, qEnd, 900, (_e, rep) => r(rep)))
  await new Promise(r => setTimeout(r, 450))
  t.equal(sent.length, 1)
  const rep = answer(buf)
  t.ok(table.take(rep))
  t.ok(await got)
  t.notOk(table.take(rep), 'the other copy\'s answer is taken by no one…')
  t.ok(table.isLate(rep), '…and known as the answer to a query sent again')
  await new Promise(r => setTimeout(r, 600))
  t.equal(sent.length, 1, 'no more sends once answered')
  const other = Buffer.from(rep)
  other.writeUInt16BE((rep.readUInt16BE(0) + 1) & 0xffff, 0)
  t.notOk(table.isLate(other), 'another ID is a mismatch')
  t.notOk(table.isLate(Buffer.alloc(1)))
  const once = new PendingTable(undefined, undefined, () => t.fail('no resend'))
  const q2 = query('b.test')
  const quick = new Promise<Buffer | undefined>(r => once.add(q2.buf, q2.qEnd, 900, (_e, rep2) => r(rep2)))
  const rep2 = answer(q2.buf)
  t.ok(once.take(rep2))
  t.ok(await quick)
  t.notOk(once.isLate(rep2), 'an answer to a query sent once: a second one is a mismatch')
})

t.test('PendingTable: without a resend function (TCP), or with too little time, a query is sent once', async t => {
  const table = new PendingTable()
  const { buf, qEnd } = query()
  const err = await new Promise<AppError | undefined>(r => table.add(buf, qEnd, 650, e => r(e)))
  t.equal(err?.code, 'UPSTREAM_TIMEOUT')
  let n = 0
  const short = new PendingTable(undefined, undefined, () => { n++ })
  const q = query()
  await new Promise(r => short.add(q.buf, q.qEnd, 500, r))
  t.equal(n, 0, '500 ms: a half is under RESEND_MIN_MS')
})

/**
 * A UDP upstream on 127.0.0.1 that sees each datagram by its ID (`seen`: how many times each ID
 * came) and answers it `copies` times when `answerOn(n)` says so for its n-th datagram.
 */
async function idUpstream(t: Test, answerOn: (n: number) => boolean, copies = 1): Promise<{ port: number; seen: Map<number, number> }> {
  const up = createSocket('udp4')
  const seen = new Map<number, number>()
  up.on('message', (m, r) => {
    const id = m.readUInt16BE(0)
    const n = (seen.get(id) ?? 0) + 1
    seen.set(id, n)
    if (!answerOn(n)) return
    for (let i = 0; i < copies; i++) up.send(answer(m), r.port, r.address)
  })
  await new Promise<void>(r => up.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => up.close())
  return { port: up.address().port, seen }
}

t.test('UdpTransport: an upstream that loses every first datagram of a query still answers it within the time; the second answer is not counted a mismatch', async t => {
  const { port, seen } = await idUpstream(t, n => n > 1, 2)   // the first lost on the way; the second answered, and a duplicate
  const ev = memoryEvidence()
  const u = new UdpTransport('127.0.0.1', port, ev.counters, () => {})
  t.teardown(() => u.close())
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => {
    const { buf, qEnd } = query(`n${i}.test`)
    return new Promise<string>(r => u.send(buf, qEnd, 1200, (e, rep) => r(e ? e.code : decodeMsg(rep!).answers![0]!.data as string)))
  }))
  t.same(results, Array(20).fill('192.0.2.1'), 'every query answered, none timed out')
  await new Promise(r => setTimeout(r, 100))
  t.equal(ev.counts['dropped.mismatch'] ?? 0, 0, 'the duplicates are late answers, not mismatches')
  t.ok([...seen.values()].every(n => n === 2), 'each query sent twice: the answer stopped the third')
  t.same(Object.entries(ev.counts).filter(([k]) => k.startsWith('resent.')), [[`resent.udp://127.0.0.1:${port}`, 20]], 'each resend counted (tunnelguard_upstream_resends_total)')
})

t.test('a pool counts the resends of an upstream under its URL as the config writes it', async t => {
  const { port } = await idUpstream(t, n => n === 3)          // the first two lost
  const ev = memoryEvidence()
  const url = `udp://127.0.0.1:${port}`
  const pool = new UpstreamPool([url], ev, Date.now)
  t.teardown(() => pool.close())
  const { buf, qEnd } = query('lossy.test')
  const err = await new Promise<AppError | undefined>(r => pool.forward(buf, qEnd, 1200, e => r(e)))
  t.equal(err, undefined, 'answered at the third send')
  t.same(Object.entries(ev.counts).filter(([k]) => k.startsWith('resent.')), [[`resent.${url}`, 2]], 'two resends, under the upstream\'s URL')
})
