// The registry of open CONNECT tunnels a reload decides again (src/proxy/tunnels.ts).
import t from 'tap'
import type { Decision, Where } from '../../src/policy/types.js'
import type { Snapshot } from '../../src/snapshot-types.js'
import { decideAgain, SLICE_MS, Tunnels, type OpenTunnel } from '../../src/proxy/tunnels.js'
import { makeSnapshot, type TestLists } from '../fixtures/snapshot.js'

const snapOf = (lists: TestLists = {}, proxy: Record<string, unknown> = {}) => makeSnapshot({ lists, config: { proxy: { allowClients: ['192.0.2.0/24'], ...proxy } } })
const CLIENT = { ip: '192.0.2.7', port: 4000 }

interface Fake extends OpenTunnel { readonly closed: Decision[]; readonly alerted: Decision[]; readonly errors: (string | undefined)[] }

function tunnel(snap: Snapshot, host: string, o: { names?: [string, Where][]; seen?: Set<string>; ip?: string; ips?: string[]; port?: number; client?: string } = {}): Fake {
  const closed: Decision[] = []
  const alerted: Decision[] = []
  const errors: (string | undefined)[] = []
  const port = o.port ?? 443
  const target = o.ip === undefined ? { host, port } : { host: o.ip, ip: o.ip, port }
  const client = o.client === undefined ? CLIENT : { ip: o.client, port: 4000 }
  return {
    client, target, names: o.names ?? [], seen: o.seen, ips: o.ips, snap, closed, alerted, errors,
    last: snap.policy.decide(client.ip, host, 'connect'),
    close: (d, error) => { closed.push(d); errors.push(error) },
    alert: d => { alerted.push(d) },
  }
}

t.test('decideAgain: the CONNECT host, the other names, a plain tunnel\'s Hosts; an address passes', async t => {
  const snap = snapOf({ b: { action: 'block', patterns: ['b.test'] }, a: { action: 'alert', patterns: ['a.test'] } })
  t.match(decideAgain(snap, tunnel(snap, 'b.test')).decision, { action: 'block', where: 'connect', list: 'b' })
  t.match(decideAgain(snap, tunnel(snap, 'ok.test')).decision, { action: 'pass' })
  t.match(decideAgain(snap, tunnel(snap, 'ok.test', { names: [['x.a.test', 'sni'], ['y.b.test', 'cname']] })).decision, { action: 'block', name: 'y.b.test', where: 'cname' })
  t.match(decideAgain(snap, tunnel(snap, 'ok.test', { names: [['x.a.test', 'sni']] })).decision, { action: 'alert', name: 'x.a.test', where: 'sni' })
  t.match(decideAgain(snap, tunnel(snap, '', { ip: '192.0.2.1', seen: new Set(['192.0.2.1', 'h.b.test']) })).decision, { action: 'block', name: 'h.b.test', where: 'host' })
  t.match(decideAgain(snap, tunnel(snap, '', { ip: '192.0.2.1' })).decision, { action: 'pass', reason: 'an address, not a name' })
})

t.test('decideAgain: the proxy\'s own settings as a new CONNECT meets them (client, port, destinations); a list\'s block first', async t => {
  const lists: TestLists = { b: { action: 'block', patterns: ['b.test'] }, a: { action: 'alert', patterns: ['a.test'] } }
  const snap = snapOf(lists, { allowClients: ['192.0.2.0/25'], connectPorts: [443, 8443] })
  // a fake destination rule: 10.x is refused; the name it was resolved from is named
  const seen: [string, number, string | undefined][] = []
  const check = (ip: string, port: number, allow: { has(ip: string): boolean }, name?: string) => {
    seen.push([ip, port, name])
    return ip.startsWith('10.') && !allow.has(ip) ? `${name === undefined ? ip : `${name} resolves to ${ip}, which`} is private` : undefined
  }
  t.match(decideAgain(snap, tunnel(snap, 'ok.test', { client: '192.0.2.200' }), check), {
    decision: { action: 'block', policy: 'proxy.allowClients', reason: 'client 192.0.2.200 is not in proxy.allowClients', name: 'ok.test', where: 'connect' },
    error: undefined,
  })
  t.match(decideAgain(snap, tunnel(snap, 'x.b.test', { client: '192.0.2.200' }), check).decision, { action: 'block', list: 'b', policy: undefined },
    'a list\'s block says more than the setting\'s')
  t.match(decideAgain(snap, tunnel(snap, 'x.a.test', { client: '192.0.2.200' }), check).decision, {
    action: 'block', policy: 'proxy.allowClients', list: 'a', entry: { pattern: 'a.test' }, reason: /^client 192\.0\.2\.200 is not in proxy\.allowClients; alert: x\.a\.test/,
  }, 'a list\'s alert match is kept on the refusal')
  t.match(decideAgain(snap, tunnel(snap, 'ok.test', { port: 22 }), check), {
    decision: { action: 'block', policy: 'proxy.connectPorts', reason: 'CONNECT to port 22 is not allowed (proxy.connectPorts: 443, 8443)', name: 'ok.test' },
    error: undefined,
  })
  t.match(decideAgain(snap, tunnel(snap, 'ok.test', { port: 8443, ips: ['192.0.2.1', '10.1.2.3'] }), check), {
    decision: { action: 'block', policy: 'proxy.allowDestinations', reason: 'ok.test resolves to 10.1.2.3, which is private', name: 'ok.test' },
    error: 'ok.test resolves to 10.1.2.3, which is private',
  })
  t.same(seen, [['192.0.2.1', 8443, 'ok.test'], ['10.1.2.3', 8443, 'ok.test']], 'every address, under the name')
  seen.length = 0
  t.match(decideAgain(snap, tunnel(snap, '', { ip: '10.9.9.9', ips: ['10.9.9.9'] }), check), {
    decision: { action: 'block', policy: 'proxy.allowDestinations', reason: '10.9.9.9 is private', name: '10.9.9.9' }, error: '10.9.9.9 is private',
  })
  t.same(seen, [['10.9.9.9', 443, undefined]], 'an address literal alone')
  const allowed = snapOf(lists, { allowClients: ['192.0.2.0/25'], allowDestinations: ['10.0.0.0/8'] })
  t.match(decideAgain(allowed, tunnel(allowed, 'ok.test', { ips: ['10.1.2.3'] }), check).decision, { action: 'pass' }, 'allowDestinations lists it: passes')
  t.match(decideAgain(snap, tunnel(snap, 'ok.test', { ips: ['10.1.2.3'] })).decision, { action: 'pass' }, 'no destination rule given: not checked')
  seen.length = 0
  t.match(decideAgain(snap, tunnel(snap, 'ok.test'), check).decision, { action: 'pass' }, 'no addresses (a parent resolved the name): nothing to check')
  t.same(seen, [])
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

t.test('redecide: a refusal by the settings closes, with its error.message', async t => {
  let snap = snapOf()
  const reg = new Tunnels(() => snap, { check: ip => ip === '10.0.0.1' ? 'refused' : undefined })
  const byDest = tunnel(snap, 'dest.test', { ips: ['10.0.0.1'] })
  const byPort = tunnel(snap, 'port.test')
  const kept = tunnel(snap, 'kept.test', { ips: ['192.0.2.1'] })
  for (const x of [byDest, byPort, kept]) reg.add(x)
  t.same(byDest.closed, [], 'nothing at the add: the same snapshot')
  snap = snapOf({}, { connectPorts: [8443] })
  t.match(await reg.redecide(), { tunnels: 3, closed: 3 }, 'port 443 is no longer allowed: all three')
  t.same(byDest.errors, [undefined], 'the port is refused before the destination is checked')
  let snap2 = snapOf()
  const reg2 = new Tunnels(() => snap2, { check: ip => ip === '10.0.0.1' ? 'refused' : undefined })
  const d2 = tunnel(snap2, 'dest.test', { ips: ['10.0.0.1'] })
  const k2 = tunnel(snap2, 'kept.test', { ips: ['192.0.2.1'] })
  reg2.add(d2)
  reg2.add(k2)
  snap2 = snapOf()
  t.match(await reg2.redecide(), { tunnels: 2, closed: 1 })
  t.match(d2.closed, [{ action: 'block', policy: 'proxy.allowDestinations', reason: 'refused' }])
  t.same(d2.errors, ['refused'])
  t.same(k2.closed, [])
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
  const reg = new Tunnels(() => snap, { sliceMs: 3, now: () => clock++ })
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
  const reg = new Tunnels(() => snap, { sliceMs: 1, now: () => clock++ })
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

t.test('ten thousand tunnels: the pass yields to the event loop every slice, each slice bounded', async t => {
  // No wall clock (a timed assertion fails on a loaded CI box): the clock is read once per
  // tunnel, and each read is 0.01 ms later, so a slice of SLICE_MS covers SLICE_MS / 0.01 tunnels.
  let snap = snapOf()
  let reads = 0
  const reg = new Tunnels(() => snap, { now: () => reads++ / 100 })
  for (let i = 0; i < 10_000; i++) reg.add(tunnel(snap, `t${i}.example.test`, { names: [[`t${i}.example.test`, 'sni']] }))
  snap = snapOf({ l: { action: 'block', patterns: ['other.test'] } })
  reads = 0
  const turns: number[] = []
  let pending = true
  const watch = (): void => { turns.push(reads); if (pending) setImmediate(watch) }
  setImmediate(watch)
  const did = await reg.redecide()
  pending = false
  t.match(did, { tunnels: 10_000, closed: 0 })
  const perSlice = SLICE_MS * 100
  t.ok(turns.length >= 10_000 / perSlice - 1, `the event loop turned between slices (${turns.length} turns)`)
  const gaps = turns.slice(1).map((r, i) => r - turns[i]!)
  t.ok(Math.max(...gaps) <= perSlice + 3, `no slice read the clock more than ${perSlice + 3} times (worst ${Math.max(...gaps)})`)
})

t.test("a tunnel closed by a reload, its slot taken by a new one: the first's late remove leaves the new one", async t => {
  let snap = snapOf()
  const tunnels = new Tunnels(() => snap)
  const first = tunnel(snap, 'x.b.test')
  const removeFirst = tunnels.add(first)
  snap = snapOf({ b: { action: 'block', patterns: ['b.test'] } })
  t.match(await tunnels.redecide(), { tunnels: 1, closed: 1 })
  t.equal(tunnels.size, 0)
  const second = tunnel(snap, 'ok.test')
  tunnels.add(second)
  t.equal(second.slot, first.slot, 'the slot the reload gave back is taken again')
  removeFirst()                                     // the first's socket closes now
  removeFirst()
  t.equal(tunnels.size, 1, 'the second is still registered')
  snap = snapOf({ o: { action: 'block', patterns: ['ok.test'] } })
  t.match(await tunnels.redecide(), { tunnels: 1, closed: 1 }, 'and decided again at the next reload')
  t.equal(second.closed.length, 1)
})
