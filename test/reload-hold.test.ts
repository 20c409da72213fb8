import t, { type Test } from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../src/config/load.js'
import { createReloader, HOLD_MS } from '../src/reload.js'
import { buildSnapshot } from '../src/snapshot.js'
import { memoryEvidence } from './fixtures/evidence.js'

const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))
const six = 'a.test\nb.test\nc.test\nd.test\ne.test\nf.test\n'
const CONFIG = 'dns: { upstreams: ["udp://127.0.0.1:9"] }\nlog: { queries: all }\nlists:\n  l: { files: [l.txt], action: block }\n  m: { files: [m.txt], action: block }\n'

// A non-atomic writer (an editor saving in place, scp, a config tool) that pauses mid-file leaves
// a shorter file that still parses: a list with a few of its names, a config without its last
// sections (the built-in upstreams, the shipped lists, fewer lines). Read by the watch, it was
// applied at once: listed names passed until the writer went on.
function setup(t: Test, holdMs = 400) {
  const dir = t.testdir({ 'l.txt': six, 'm.txt': 'x.test\n', 'tg.yaml': CONFIG })
  const cfg = join(dir, 'tg.yaml')
  const ev = memoryEvidence()
  let snap = buildSnapshot(loadConfig(cfg, { resolvConf: '/nonexistent' }))
  const results: boolean[] = []
  const rl = createReloader({
    configPath: cfg, overrides: {}, resolvConf: '/nonexistent', evidence: ev, current: () => snap, swap: s => { snap = s },
    debounceMs: () => 20, pollMs: 50, holdMs, onResult: ok => results.push(ok),
  })
  t.teardown(() => rl.close())
  rl.watch()
  const entries = (name: string) => snap.lists.find(l => l.name === name)?.entries
  const until = async (ok: () => boolean, ms = 3000): Promise<boolean> => {
    for (let waited = 0; waited < ms && !ok(); waited += 20) await sleep(20)
    return ok()
  }
  const held = () => ev.messages.filter(m => m.msg === 'reload held: the change weakens the protection')
  return { dir, cfg, ev, rl, entries, until, held, results, snap: () => snap }
}

t.test('HOLD_MS is ten seconds', async t => { t.equal(HOLD_MS, 10_000) })

t.test('a list file caught half-written is held; the whole file, written meanwhile, is applied and the half never is', async t => {
  const s = setup(t, 600)
  writeFileSync(join(s.dir, 'l.txt'), 'a.test\n')
  t.ok(await s.until(() => s.held().length === 1), 'held')
  t.match(s.held()[0], { level: 'warn', fields: { changes: ['list l: 6 → 1 entries'], hold_ms: 600, reason: /l\.txt/ } })
  t.equal(s.entries('l'), 6, 'the running list is kept while held')
  t.same(s.results, [], 'a hold is neither an accepted nor a rejected reload (reload metrics)')
  writeFileSync(join(s.dir, 'l.txt'), six + 'g.test\n')
  t.ok(await s.until(() => s.entries('l') === 7), 'the finished file: applied at once (it weakens nothing)')
  await sleep(900)
  t.equal(s.entries('l'), 7, 'the held half is never applied')
  t.equal(s.held().length, 1)
  t.same(s.results, [true])
})

t.test('a weakening change that stays is applied once the files read the same after the hold, and said', async t => {
  const s = setup(t, 300)
  writeFileSync(join(s.dir, 'l.txt'), '')
  t.ok(await s.until(() => s.held().length === 1))
  t.equal(s.entries('l'), 6)
  t.ok(await s.until(() => s.entries('l') === 0), 'applied after the hold')
  t.match(s.ev.messages.filter(m => m.msg === 'list shrank at reload'), [{ fields: { list: 'l', was: 6, entries: 0 } }])
  t.match(s.ev.messages.filter(m => m.msg === 'reloaded').at(-1), { fields: { reason: /^files settled: / } })
  writeFileSync(join(s.dir, 'm.txt'), '')
  t.ok(await s.until(() => s.held().length === 2))
  t.match(s.held()[1], { fields: { changes: ['list m: 1 → 0 entries'] } }, 'a list already empty loses nothing')
})

t.test('a file that keeps changing is held again each time; applied only once it is still for the hold', async t => {
  const s = setup(t, 500)
  writeFileSync(join(s.dir, 'l.txt'), 'a.test\n')
  t.ok(await s.until(() => s.held().length === 1))
  await sleep(250)
  writeFileSync(join(s.dir, 'l.txt'), 'a.test\nb.test\n')
  t.ok(await s.until(() => s.held().length === 2), 'held again, the hold starting over')
  t.match(s.held()[1], { fields: { changes: ['list l: 6 → 2 entries'] } })
  await sleep(300)
  t.equal(s.entries('l'), 6, 'the first hold ending does not apply the second read')
  t.ok(await s.until(() => s.entries('l') === 2), 'applied once still for a whole hold')
})

t.test('a config cut short (upstreams, lists, log lines lost) is held; a SIGHUP applies it at once', async t => {
  const s = setup(t, 60_000)
  writeFileSync(s.cfg, 'dns: { upstreams: ["udp://127.0.0.1:9"] }\nlog: { queries: all }\nlists:\n  l: { files: [l.txt], action: block }\n')
  t.ok(await s.until(() => s.held().length === 1))
  t.match(s.held()[0], { fields: { changes: ['list m removed (1 entries)'] } })
  writeFileSync(s.cfg, 'dns: { upstreams: ["udp://127.0.0.1:9"] }\n')
  t.ok(await s.until(() => s.held().length === 2))
  t.match(s.held()[1], { fields: { changes: ['list l removed (6 entries)', 'list m removed (1 entries)', 'log.queries: all → matched'] } })
  writeFileSync(s.cfg, 'log: { level: error }\n')
  t.ok(await s.until(() => s.held().length === 3))
  t.match(s.held()[2].fields!.changes, ['list l removed (6 entries)', 'list m removed (1 entries)', /^dns\.upstreams: udp:\/\/127\.0\.0\.1:9 → /, 'log.level: info → error', 'log.queries: all → matched'])
  t.equal(s.snap().config.dns.upstreams[0], 'udp://127.0.0.1:9', 'the running upstreams are kept')
  t.ok(await s.rl.reload('SIGHUP'), 'a SIGHUP is the admin saying the file is done')
  t.equal(s.snap().config.log.level, 'error')
  t.notOk(s.snap().lists.some(l => l.name === 'm'))
})

t.test('changes that weaken nothing are applied at once: more entries, a list added, a log level lowered, queries: all', async t => {
  const s = setup(t, 60_000)
  writeFileSync(s.cfg, CONFIG.replace('queries: all', 'queries: all, level: debug') + '  n: { files: [m.txt], action: alert }\n')
  t.ok(await s.until(() => s.snap().lists.length === 3))
  writeFileSync(join(s.dir, 'l.txt'), six + 'g.test\n')
  t.ok(await s.until(() => s.entries('l') === 7))
  writeFileSync(join(s.dir, 'l.txt'), 'a.test\nb.test\nc.test\nd.test\n')
  t.ok(await s.until(() => s.entries('l') === 4), '7 → 4: more than half kept')
  t.same(s.held(), [])
})
