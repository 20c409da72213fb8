// Benchmark: how long DNS answers wait while responders read `/api/clients` of a full client table.
// Usage: npx tsc -p tsconfig.build.json && node bench/admin-clients.mjs
//   CLIENTS=10000 NAMES=50 READERS=16 SECONDS=10 QPS=200 BUILDS="new=dist old=bench/out/dist-old"
// Each build runs `serve` (its own dist/cli.js) on loopback with one blocking list (bench.test) and
// a dead upstream; the admin listener on a free port. First CLIENTS clients (source addresses
// 127.2.x.y) each ask NAMES names under the list (answered by tunnelguard itself), so that the
// live client table is full. Then, for SECONDS each, two phases: a probe sends one query every
// 1000/QPS ms from 127.0.0.1 and times each answer (unanswered after 2 s: lost), first alone
// (idle), then while READERS loops each GET `/api/clients` (the default 1000 clients) and read it
// to its end. Reported per build and phase: the probe's answers p50 / p99 / max (ms) and losses,
// and the admin responses completed, per second, with their mean time. Loopback only; every
// process started here is stopped here.
import { spawn } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { mkdirSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { cpus, loadavg } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pct, query, sleep } from './probe.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const CLIENTS = Math.min(65536, Number(process.env.CLIENTS ?? 10_000))
const NAMES = Number(process.env.NAMES ?? 50)
const READERS = Number(process.env.READERS ?? 16)
const SECONDS = Number(process.env.SECONDS ?? 10)
const QPS = Number(process.env.QPS ?? 200)
const BUILDS = (process.env.BUILDS ?? 'new=dist').split(/\s+/).filter(Boolean).map(b => { const [name, dir] = b.split('='); return { name, dir: resolve(root, dir) } })
const cfgDir = join(root, 'bench', 'out', 'admin-clients')
mkdirSync(cfgDir, { recursive: true })
writeFileSync(join(cfgDir, 'bench.txt'), 'bench.test\n')
const cfg = join(cfgDir, 'tg.yaml')
writeFileSync(cfg, `dns: { listen: ["127.0.0.1:0"], upstreams: ["udp://127.0.0.1:9"] }\nproxy: { listen: [] }\nadmin: { listen: "127.0.0.1:0", maxConnections: 256 }\n`
  + `lists:\n  bench: { files: ["${join(cfgDir, 'bench.txt')}"], action: block }\nreload: { watch: false }\n`)

/** Client i asks its NAMES names from its own address, ten at a time; resolves with the answers it got. */
async function fill(port, i) {
  const sock = createSocket('udp4')
  await new Promise((r, j) => { sock.once('error', j); sock.bind(0, `127.2.${i >> 8}.${i & 255}`, r) })
  let got = 0
  for (let n = 0; n < NAMES; n += 10) {
    const batch = Math.min(10, NAMES - n)
    let seen = 0
    await new Promise(r => {
      const t = setTimeout(r, 1000)
      const on = () => { got++; if (++seen === batch) { clearTimeout(t); sock.off('message', on); r() } }
      sock.on('message', on)
      for (let k = 0; k < batch; k++) sock.send(query(n + k, `n${n + k}.c${i}.bench.test`), port, '127.0.0.1')
    })
    sock.removeAllListeners('message')
  }
  sock.close()
  return got
}

/** GET path to its end; resolves with the bytes read. */
function get(port, path) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, res => {
      let bytes = 0
      res.on('data', d => { bytes += d.length })
      res.on('end', () => resolve(bytes))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

/** The probe for `ms`, with `readers` loops reading /api/clients meanwhile. */
async function phase(dnsPort, adminPort, readers, ms) {
  const sock = createSocket('udp4')
  await new Promise(r => sock.bind(0, '127.0.0.1', r))
  const sent = new Map()
  const lat = []
  sock.on('message', m => { const at = sent.get(m.readUInt16BE(0)); if (at !== undefined) { sent.delete(m.readUInt16BE(0)); lat.push(performance.now() - at) } })
  let id = 0
  let sends = 0
  const timer = setInterval(() => {
    id = (id + 1) & 0xffff
    sent.set(id, performance.now())
    sends++
    sock.send(query(id, 'probe.bench.test'), dnsPort, '127.0.0.1')
  }, 1000 / QPS)
  // the readers in a process of their own: reading megabytes here would delay the probe's own answers
  const loops = readers === 0 ? undefined : spawn(process.execPath, [fileURLToPath(import.meta.url), '--read', String(adminPort), String(readers), String(ms)], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  loops?.stdout.on('data', d => { out += d })
  await sleep(ms)
  clearInterval(timer)
  if (loops) await new Promise(r => loops.once('exit', r))
  await sleep(2000)                      // answers to the last queries arrive (or count as lost)
  sock.close()
  const { took, bytes, failed } = loops ? JSON.parse(out) : { took: [], bytes: 0, failed: 0 }
  const mean = took.length ? took.reduce((a, b) => a + b, 0) / took.length : NaN
  return { sends, answered: lat.length, p50: pct(lat, 50), p99: pct(lat, 99), max: lat.length ? Math.max(...lat) : NaN, responses: took.length, failed, perSec: took.length / (ms / 1000), meanMs: mean, mb: bytes / 1e6 }
}

/** `--read PORT N MS`: N loops reading /api/clients for MS; prints the response times and the bytes read. */
async function readLoops(adminPort, readers, ms) {
  const end = performance.now() + ms
  const took = []
  let bytes = 0
  let failed = 0
  await Promise.all(Array.from({ length: readers }, async () => {
    while (performance.now() < end) {
      const t0 = performance.now()
      try {
        bytes += await get(adminPort, '/api/clients')
        took.push(performance.now() - t0)
      } catch { failed++ }
    }
  }))
  process.stdout.write(JSON.stringify({ took, bytes, failed }))
}

async function runBuild({ name, dir }) {
  const child = spawn(process.execPath, [join(dir, 'cli.js'), 'serve', '--config', cfg], { stdio: ['ignore', 'pipe', 'inherit'] })
  let log = ''
  let keep = true
  child.stdout.on('data', d => { if (keep) log += d })
  const until = Date.now() + 60_000
  let m
  while (!(m = /"tunnelguard\.dns":\[\{"transport":"udp","address":"127\.0\.0\.1","port":(\d+)\}[^\n]*"tunnelguard\.admin":\{"address":"127\.0\.0\.1","port":(\d+)\}/.exec(log))) {
    if (Date.now() > until) throw new Error(`${name}: serve did not start`)
    await sleep(20)
  }
  keep = false
  log = ''
  const [dnsPort, adminPort] = [Number(m[1]), Number(m[2])]
  const t0 = performance.now()
  let answers = 0
  for (let i = 0; i < CLIENTS; i += 32) {
    const got = await Promise.all(Array.from({ length: Math.min(32, CLIENTS - i) }, (_, k) => fill(dnsPort, i + k)))
    answers += got.reduce((a, b) => a + b, 0)
  }
  const fillS = (performance.now() - t0) / 1000
  const text = path => new Promise((r, j) => {
    const req = request({ host: '127.0.0.1', port: adminPort, path, agent: false }, res => {
      let body = ''
      res.on('data', d => { body += d })
      res.on('end', () => r(body))
    })
    req.on('error', j)
    req.end()
  })
  const rss = async () => (Number(/^process_resident_memory_bytes (\d+)/m.exec(await text('/metrics'))[1]) / 2 ** 20).toFixed(0)
  const total = JSON.parse(await text('/api/clients?limit=0')).total
  const rows = []
  for (const readers of [0, READERS]) {
    const before = await rss()
    rows.push({ build: name, readers, total, fill: `${answers} answers in ${fillS.toFixed(1)} s`, ...await phase(dnsPort, adminPort, readers, SECONDS * 1000), rss: `${before} → ${await rss()}` })
  }
  const t1 = performance.now()
  const all = (await text('/api/clients?limit=9999999')).length
  rows.push({ build: name, readers: 'one read of all', total, sends: 0, answered: 0, responses: 1, perSec: NaN, meanMs: performance.now() - t1, mb: all / 1e6, rss: `→ ${await rss()}` })
  child.kill('SIGTERM')
  await new Promise(r => child.once('exit', r))
  return rows
}

if (process.argv[2] === '--read') {
  await readLoops(Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5]))
  process.exit(0)
}
console.log(`# bench/admin-clients.mjs  CLIENTS=${CLIENTS} NAMES=${NAMES} READERS=${READERS} SECONDS=${SECONDS} QPS=${QPS}  ${new Date().toISOString()}  cpus=${cpus().length} load=${loadavg().map(x => x.toFixed(2)).join(' ')}`)
console.log('| build | clients in table | readers | probe sent / answered | p50 ms | p99 ms | max ms | /api/clients per s | mean ms | MB read | RSS MiB |')
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
for (const b of BUILDS) {
  for (const x of await runBuild(b)) {
    const f = v => Number.isFinite(v) ? v.toFixed(1) : '–'
    console.log(`| ${x.build} | ${x.total} | ${x.readers} | ${x.sends} / ${x.answered} | ${f(x.p50)} | ${f(x.p99)} | ${f(x.max)} | ${f(x.perSec)} | ${f(x.meanMs)} | ${f(x.mb)} | ${x.rss} |${x.failed ? ` (${x.failed} failed)` : ''}`)
  }
  console.error(`# ${b.name}: done`)
}
