// Benchmark: `tunnelguard report` over 1,000,000 ECS log lines (deterministic), plain and gzip.
// Usage: npx tsc -p tsconfig.build.json && node bench/report.mjs [LINES]
// Writes bench/out/report-LINES.log(.gz) once, then times the report (best of $REPS, default 1) in a child process.
import { spawnSync } from 'node:child_process'
import { closeSync, createWriteStream, existsSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createGzip } from 'node:zlib'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const N = Number(process.argv[2] ?? 1_000_000)
const REPS = Number(process.env.REPS ?? 1)   // best of REPS runs per case
const out = join(root, 'bench', 'out')
mkdirSync(out, { recursive: true })
const plain = join(out, `report-${N}.log`)
const gz = plain + '.gz'

/** mulberry32: a small deterministic PRNG. */
function prng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

const ENTRIES = [['ngrok', 'ngrok.io', 'sinkhole'], ['ngrok', 'ngrok-free.app', 'sinkhole'], ['ngrok', 'ngrok-agent.com', 'sinkhole'], ['tunnels', 'trycloudflare.com', 'alert']]
function* lines(n) {
  const rnd = prng(42)
  const t0 = Date.UTC(2026, 10, 20, 0, 0, 0)
  for (let i = 0; i < n; i++) {
    const time = new Date(t0 + i * 50).toISOString()
    if (i % 1000 === 999) {
      yield `{"log.level":"warn","@timestamp":"${time}","ecs.version":"8.11.0","upstream":"udp://127.0.0.1:5399","message":"upstream down"}\n`
      continue
    }
    const client = `10.0.${(rnd() * 2) | 0}.${(rnd() * 125) | 0}`   // 250 clients
    const r = rnd()
    const [list, entry, action] = ENTRIES[(r * ENTRIES.length) | 0]
    const name = `t${(rnd() * 100) | 0}.${entry}`                   // 400 names
    const port = 1024 + ((rnd() * 60000) | 0)
    const level = 'warn'
    const reason = `${action}: ${name} matches ${entry} in list ${list} (${list}.txt:1); action from list ${list}`
    if (i % 5 === 4) {
      yield `{"log.level":"${level}","@timestamp":"${time}","ecs.version":"8.11.0","message":"proxy.connect","event":{"action":"${action}","kind":"alert","duration":${(rnd() * 1e6) | 0}},"client":{"ip":"${client}","port":${port}},"network":{"transport":"tcp"},"destination":{"domain":"${name}","port":443},"tls":{"client":{"server_name":"${name}"}},"rule":{"name":"${entry}","ruleset":"${list}"},"tunnelguard":{"group":"default","matched_on":"sni","reason":"${reason}"}}\n`
    } else {
      yield `{"log.level":"${level}","@timestamp":"${time}","ecs.version":"8.11.0","message":"dns.query","event":{"action":"${action}","kind":"alert","duration":${(rnd() * 1e6) | 0}},"client":{"ip":"${client}","port":${port}},"network":{"transport":"udp"},"dns":{"question":{"name":"${name}","type":"A"},"response_code":"NOERROR"},"rule":{"name":"${entry}","ruleset":"${list}"},"tunnelguard":{"group":"default","matched_on":"qname","reason":"${reason}"}}\n`
    }
  }
}

async function generate() {
  if (!existsSync(plain)) await pipeline(Readable.from(lines(N)), createWriteStream(plain))
  if (!existsSync(gz)) await pipeline(Readable.from(lines(N)), createGzip(), createWriteStream(gz))
}

const cli = join(root, 'dist', 'cli.js')
const runner = join(root, 'dist', 'report', 'run.js')
if (!existsSync(runner)) {
  console.error('build first: npx tsc -p tsconfig.build.json')
  process.exit(1)
}

function time(file, format) {
  // Through the real CLI when it is built, else runReport from dist in a child process.
  const args = existsSync(cli)
    ? [cli, 'report', file, '--format', format]
    : ['--input-type=module', '-e', `import { runReport } from ${JSON.stringify(runner)}; await runReport({ files: [${JSON.stringify(file)}], format: ${JSON.stringify(format)}, out: process.stdout })`]
  const best = []
  const output = join(out, `report-output.${format}`)
  for (let i = 0; i < REPS; i++) {
    const fd = openSync(output, 'w')
    const start = process.hrtime.bigint()
    // /usr/bin/time adds the child's CPU seconds (user + sys): on a loaded machine wall time is mostly waiting
    const r = spawnSync('/usr/bin/time', ['-f', 'cpu %U %S', process.execPath, ...args], { encoding: 'utf8', stdio: ['ignore', fd, 'pipe'] })
    const s = Number(process.hrtime.bigint() - start) / 1e9
    closeSync(fd)
    if (r.status !== 0) throw new Error(`report failed (${r.status ?? r.signal}): ${r.stderr}`)
    const m = /cpu ([\d.]+) ([\d.]+)/.exec(r.stderr)
    best.push({ s, cpu: m ? Number(m[1]) + Number(m[2]) : NaN, tail: readFileSync(output, 'utf8').trimEnd().split('\n').slice(-2).join(' ') })
  }
  best.sort((a, b) => a.s - b.s)
  return best[0]
}

await generate()
console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}, load ${loadavg()[0].toFixed(1)}; ${N} lines; ${existsSync(cli) ? 'dist/cli.js report' : 'runReport from dist'}`)
for (const [file, label] of [[plain, 'plain'], [gz, 'gzip']]) {
  const mb = (statSync(file).size / 1e6).toFixed(0)
  for (const format of ['table', 'json']) {
    const r = time(file, format)
    console.log(`${label.padEnd(5)} ${mb.padStart(4)} MB  --format ${format.padEnd(5)}  ${r.s.toFixed(2)} s wall, ${r.cpu.toFixed(2)} s cpu  (${((N / r.s) / 1e3).toFixed(0)} k lines/s)  ${format === 'table' ? r.tail : ''}`)
  }
}
