// The registry of open CONNECT tunnels a reload decides again (src/proxy/tunnels.ts).
import t from 'tap'
import type { Decision, Where } from '../../src/policy/types.js'
import type { Snapshot } from '../../src/snapshot-types.js'
import { decideAgain, SLICE_MS, Tunnels, type OpenTunnel } from '../../src/proxy/tunnels.js'
import { makeSnapshot, type TestLists } from '../fixtures/snapshot.js'

const snapOf = (lists: TestLists = {}) => makeSnapshot({ lists })
const CLIENT = { ip: '192.0.2.7', port: 4000 }

interface Fake extends OpenTunnel { readonly closed: Decision[]; readonly alerted: Decision[] }

function tunnel(snap: Snapshot, host: string, o: { names?: [string, Where][]; seen?: Set<string>; ip?: string } = {}): Fake {
  const closed: Decision[] = []
  const alerted: Decision[] = []
  const target = o.ip === undefined ? { host, port: 443 } : { host: o.ip, ip: o.ip, port: 443 }
  return {
    client: CLIENT, target, names: o.names ?? [], seen: o.seen, snap, closed, alerted,
    last: snap.policy.decide(CLIENT.ip, host, 'connect'),
    close: d => { closed.push(d) },
    alert: d => { alerted.push(d) },
  }
}

t.test('decideAgain: the CONNECT host, the other names, a plain tunnel\'s Hosts; an address passes', async t => {
  const snap = snapOf({ b: { action: 'block', patterns: ['b.test'] }, a: { action: 'alert', patterns: ['a.test'] } })
  t.match(decideAgain(snap, tunnel(snap, 'b.test')), { action: 'block', where: 'connect', list: 'b' })
  t.match(decideAgain(snap, tunnel(snap, 'ok.test')), { action: 'pass' })
  t.match(decideAgain(snap, tunnel(snap, 'ok.test', { names: [['x.a.test', 'sni'], ['y.b.test', 'cname']] })), { action: 'block', name: 'y.b.test', where: 'cname' })
  t.match(decideAgain(snap, tunnel(snap, 'ok.test', { names: [['x.a.test', 'sni']] })), { action: 'alert', name: 'x.a.test', where: 'sni' })
  t.match(decideAgain(snap, tunnel(snap, '', { ip: '192.0.2.1', seen: new Set(['192.0.2.1', 'h.b.test']) })), { action: 'block', name: 'h.b.test', where: 'host' })
  t.match(decideAgain(snap, tunnel(snap, '', { ip: '192.0.2.1' })), { action: 'pass', reason: 'an address, not a name' })
})

t.test('add: registered; a reload since the tunnel\'s decision is applied at once; remove', async t => {
  let snap = snapOf()
  const reg = new Tunnels(() => snap)
  const a = tunnel(snap, 'a.test')
  const remove = reg.add(a)
  t.equal(reg.size, 1)
  t.same(a.closed, [], 'decided with the current snapshot: nothing to do')
  remove()
  t.equal(reg.size, 0)
  const old = snap
  snap = snapOf({ l: { action: 'sinkhole', patterns: ['late.test'] } })
  const late = tunnel(old, 'late.test')
  reg.add(late)
  t.match(late.closed, [{ action: 'sinkhole', list: 'l' }], 'decided with an older snapshot: closed at once')
  t.equal(reg.size, 0, 'and no longer registered')
})

t.test('redecide: block closes, a new alert alerts once, pass does nothing; once per snapshot', async t => {
  let snap = snapOf()
  const reg = new Tunnels(() => snap)
  const blocked = tunnel(snap, 'x.block.test')
  const alerted = tunnel(snap, 'x.alert.test')
  const other = tunnel(snap, 'other.test')
  for (const x of [blocked, alerted, other]) reg.add(x)
  snap = snapOf({ b: { action: 'block', patterns: ['block.test'] }, a: { action: 'alert', patterns: ['alert.test'] } })
  t.match(await reg.redecide(), { tunnels: 3, closed: 1, alerted: 1 })
  t.match(blocked.closed, [{ action: 'block', list: 'b' }])
  t.match(alerted.alerted, [{ action: 'alert', list: 'a', name: 'x.alert.test' }])
  t.same(other.closed.concat(other.alerted), [])
  t.equal(reg.size, 2)
  t.match(await reg.redecide(), { tunnels: 2, closed: 0, alerted: 0 }, 'the same snapshot again: nothing')
  snap = snapOf({ a: { action: 'alert', patterns: ['alert.test'] } })
  t.match(await reg.redecide(), { alerted: 0 }, 'a new snapshot, the same alert: not said again')
  snap = snapOf({ a2: { action: 'alert', patterns: ['x.alert.test'] } })
  t.match(await reg.redecide(), { alerted: 1 }, 'another list\'s alert is said')
  snap = snapOf()
  t.match(await reg.redecide(), { alerted: 0, closed: 0 }, 'unlisted: nothing')
  snap = snapOf({ a2: { action: 'alert', patterns: ['x.alert.test'] } })
  t.match(await reg.redecide(), { alerted: 1 }, 'listed again: said again')
  t.equal(alerted.alerted.length, 3)
  t.equal(other.alerted.length, 0)
})

t.test('a tunnel let through on an alert is not alerted again for it', async t => {
  let snap = snapOf({ a: { action: 'alert', patterns: ['alert.test'] } })
  const reg = new Tunnels(() => snap)
  const x = tunnel(snap, 'x.alert.test')
  t.equal(x.last.action, 'alert')
  reg.add(x)
  snap = snapOf({ a: { action: 'alert', patterns: ['alert.test'] } })
  t.match(await reg.redecide(), { tunnels: 1, alerted: 0 })
})

t.test('redecide in slices: yields between them, the newest snapshot in each, closed tunnels passed over', async t => {
  t.equal(SLICE_MS, 5)
  let snap = snapOf()
  let clock = 0
  // every look at the clock is 1 ms later: a slice of 3 ms takes three tunnels
  const reg = new Tunnels(() => snap, 3, () => clock++)
  const all = Array.from({ length: 10 }, (_, i) => tunnel(snap, `t${i}.listed.test`))
  const removes = all.map(x => reg.add(x))
  snap = snapOf({ l: { action: 'block', patterns: ['listed.test'] } })
  let sync = true
  const pass = reg.redecide()
  t.equal(all.filter(x => x.closed.length > 0).length, 3, 'the first slice, at once')
  removes[5]!()                                                    // one closes between slices
  void Promise.resolve().then(() => { sync = false })
  const did = await pass
  t.notOk(sync)
  t.match(did, { tunnels: 10, closed: 9, alerted: 0 })
  t.ok(did!.tookMs > 0)
  t.same(all[5]!.closed, [], 'closed before its turn: passed over')
  t.equal(reg.size, 0)
})

t.test('a pass that a newer one takes over resolves undefined; the newer one does the rest', async t => {
  let snap = snapOf()
  let clock = 0
  const reg = new Tunnels(() => snap, 1, () => clock++)
  const all = Array.from({ length: 4 }, (_, i) => tunnel(snap, `t${i}.listed.test`))
  for (const x of all) reg.add(x)
  snap = snapOf({ l: { action: 'block', patterns: ['listed.test'] } })
  const first = reg.redecide()
  const closedByFirst = all.filter(x => x.closed.length > 0).length
  t.ok(closedByFirst < 4, 'the first pass yielded')
  const second = reg.redecide()
  t.equal(await first, undefined)
  t.match(await second, { tunnels: 4 - closedByFirst, closed: 4 - closedByFirst })
  t.ok(all.every(x => x.closed.length === 1), 'each closed once')
})

t.test('ten thousand tunnels: no slice holds the event loop long', async t => {
  let snap = snapOf()
  const reg = new Tunnels(() => snap)
  for (let i = 0; i < 10_000; i++) reg.add(tunnel(snap, `t${i}.example.test`, { names: [[`t${i}.example.test`, 'sni']] }))
  snap = snapOf({ l: { action: 'block', patterns: ['other.test'] } })
  let worst = 0
  let last = performance.now()
  const timer = setInterval(() => {
    const now = performance.now()
    worst = Math.max(worst, now - last)
    last = now
  }, 1)
  const did = await reg.redecide()
  clearInterval(timer)
  t.match(did, { tunnels: 10_000, closed: 0 })
  t.ok(worst < 100, `the longest gap between timer ticks: ${worst.toFixed(1)} ms`)
})
