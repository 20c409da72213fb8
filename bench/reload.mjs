// Benchmark: how long DNS answers wait while `serve` reloads a big list (SIGHUP).
// Usage: npx tsc -p tsconfig.build.json && node bench/reload.mjs
//   NAMES=1500000 RELOADS=3 QPS=500 BUILDS="new=dist old=bench/out/dist-s24"
// Each build runs `serve` (its own dist/cli.js) on loopback with one list of NAMES names (written
// once to bench/out/reload-NAMES.txt, about 49 MB for 1.5M) and a dead upstream. A client sends a
// query for a listed name (answered by tunnelguard itself) every 1000/QPS ms from one UDP socket and
// times each answer (a query unanswered after 1 s counts as lost). After 2 s, SIGHUP; when the `reloaded` line comes, 2 s more; RELOADS times.
// Reported per build and reload: the reload's took_ms, then over the queries sent while it ran:
// how many, how many answered, and the answer latency p50 / p99 / max (ms); also the same for
// the 2 s before (the idle baseline). Loopback only; every process started here is stopped here.
import { spawn } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pct, query, sleep } from './probe.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const NAMES = Number(process.env.NAMES ?? 1_500_000)
const RELOADS = Number(process.env.RELOADS ?? 3)
const QPS = Number(process.env.QPS ?? 500)
const BUILDS = (process.env.BUILDS ?? 'new=dist').split(/\s+/).filter(Boolean).map(b => { const [name, dir] = b.split('='); return { name, dir: resolve(root, dir) } })
const out = join(root, 'bench', 'out')
mkdirSync(out, { recursive: true })
const listFile = join(out, `reload-${NAMES}.txt`)
if (!existsSync(listFile)) {
  const lines = []
  for (let i = 0; i < NAMES; i++) lines.push(`host${i}.d${i % 5000}.example-${i % 97}.test`)
  writeFileSync(listFile, lines.join('\n') + '\n')
}
// a config beside the list would be watched; reload.watch is off, and the config lives in its own dir
const cfgDir = join(out, 'reload-cfg')
mkdirSync(cfgDir, { recursive: true })
const cfg = join(cfgDir, 'tg.yaml')
writeFileSync(cfg, `dns: { listen: ["127.0.0.1:0"], upstreams: ["udp://127.0.0.1:9"] }\nproxy: { listen: [] }\nadmin: { listen: null }\n`
  + `lists:\n  big: { files: ["${listFile}"], action: block }\nreload: { watch: false }\nlog: { level: info }\n`)

async function runBuild({ name, dir }) {
  const child = spawn(process.execPath, [join(dir, 'cli.js'), 'serve', '--config', cfg], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=67108864:glibc.malloc.hugetlb=1' },
  })
  let log = ''
  child.stdout.on('data', d => { log += d })
  const waitLine = async (re, from, ms) => {
    const end = Date.now() + ms
    while (Date.now() < end) { const m = re.exec(log.slice(from)); if (m) return m; await sleep(5) }
    throw new Error(`${name}: no ${re} within ${ms} ms`)
  }
  const started = await waitLine(/"port":(\d+)[^\n]*"message":"dns[. ]listening"/, 0, 120_000)
  const port = Number(started[1])
  const sock = createSocket('udp4')
  const sent = new Map()                  // id → send time
  const done = []                         // [sent at, latency ms]
  const sends = []                        // every send time
  sock.on('message', m => { const id = m.readUInt16BE(0); const at = sent.get(id); if (at !== undefined) { sent.delete(id); done.push([at, performance.now() - at]) } })
  await new Promise(r => sock.bind(0, '127.0.0.1', r))
  let id = 0
  const timer = setInterval(() => {
    id = (id + 1) & 0xffff
    const at = performance.now()
    sent.set(id, at)
    sends.push(at)
    sock.send(query(id, `host${id % NAMES}.d${id % 5000}.example-${id % 97}.test`), port, '127.0.0.1')
  }, 1000 / QPS)
  const rows = []
  for (let r = 0; r < RELOADS; r++) {
    await sleep(2000)
    const t0 = performance.now()
    const mark = log.length
    child.kill('SIGHUP')
    const m = await waitLine(/"(?:tunnelguard\.)?took_ms":(\d+)[^\n]*"message":"reloaded"|"message":"reloaded"/, mark, 300_000)
    const t1 = performance.now()
    await sleep(1000)                    // answers to queries sent late in the window arrive
    const within = (a, b) => done.filter(([at]) => at >= a && at < b).map(([, l]) => l)
    const sentIn = (a, b) => sends.filter(x => x >= a && x < b).length
    const during = within(t0, t1)
    const before = within(t0 - 2000, t0)
    rows.push({
      build: name, reload: r + 1, took_ms: m[1] ? Number(m[1]) : Math.round(t1 - t0), window_ms: Math.round(t1 - t0),
      sent: sentIn(t0, t1), answered: during.length,
      p50: pct(during, 50), p99: pct(during, 99), max: Math.max(...during),
      idle_p50: pct(before, 50), idle_max: Math.max(...before),
    })
  }
  clearInterval(timer)
  sock.close()
  child.kill('SIGTERM')
  await new Promise(r => child.once('exit', r))
  return rows
}

console.log(`# bench/reload.mjs  NAMES=${NAMES} RELOADS=${RELOADS} QPS=${QPS}  ${new Date().toISOString()}  cpus=${cpus().length} load=${loadavg().map(x => x.toFixed(2)).join(' ')}`)
console.log('| build | reload | took ms | queries sent during | answered | p50 ms | p99 ms | max ms | idle p50 / max ms |')
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
for (const b of BUILDS) {
  for (const x of await runBuild(b)) {
    const f = v => Number.isFinite(v) ? v.toFixed(1) : '–'
    console.log(`| ${x.build} | ${x.reload} | ${x.took_ms} | ${x.sent} | ${x.answered} | ${f(x.p50)} | ${f(x.p99)} | ${f(x.max)} | ${f(x.idle_p50)} / ${f(x.idle_max)} |`)
  }
}
