// Turns the key=value lines of bench/dns/run.sh into Markdown tables (stdout).
//   node bench/dns/summarize.js bench/out/dns-runs-STAMP.txt
// Medians over rounds; ratios are taken per round (same sitting), then their median.
import { readFileSync } from 'node:fs'

const file = process.argv[2]
if (!file) { console.error('usage: node summarize.js RAWFILE'); process.exit(2) }
const text = readFileSync(file, 'utf8')
const header = text.split('\n').filter((l) => l.startsWith('# ')).map((l) => l.slice(2))
const cpus = Number(/cpus=(\d+)/.exec(text)?.[1] ?? 2)

function parse (line) {
  const o = {}
  for (const m of line.matchAll(/(\w+)=("[^"]*"|\S*)/g)) o[m[1]] = m[2].replace(/^"|"$/g, '')
  return o
}
const runs = text.split('\n').filter((l) => l.startsWith('round=')).map(parse).map((r) => {
  if (r.status !== 'ok') return r
  const n = (k) => Number(r[k])
  const wall = n('wall_ns') / 1e9
  const hz = n('hz')
  const completed = n('completed')
  return {
    ...r,
    qps: n('qps'),
    lost: n('lost'),
    completed,
    usPerQ: completed > 0 ? (n('target_ticks') / hz) * 1e6 / completed : NaN,
    cpuPct: 100 * n('target_ticks') / hz / wall,
    busyPct: 100 * cpus * n('box_busy_ticks') / n('box_total_ticks'),
    // CPU used on the box by anything other than the target, nsd, dnsperf and softirq: the other tenants
    foreignPct: 100 * cpus * (n('box_busy_ticks') - n('softirq_ticks')) / n('box_total_ticks') -
      100 * (n('target_ticks') + n('nsd_ticks') + n('gen_ticks')) / hz / wall,
  }
})

const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (!v.length) return NaN
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2
}
const fmtK = (x) => Number.isFinite(x) ? (x >= 1000 ? `${(x / 1000).toFixed(1)}k` : x.toFixed(0)) : '–'
const f = (x, d = 1) => Number.isFinite(x) ? x.toFixed(d) : '–'
const ok = (kind) => runs.filter((r) => r.kind === kind && r.status === 'ok')
const rounds = [...new Set(runs.map((r) => r.round))]
const mixes = ['forwarded', 'hot', 'blocked']
const targets = [...new Set(runs.map((r) => r.target))]
const pick = (kind, mix, target, round) => ok(kind).find((r) => r.mix === mix && r.target === target && (round === undefined || r.round === round))
const all = (kind, mix, target) => ok(kind).filter((r) => r.mix === mix && r.target === target)
const echoQps = (round) => pick('sat', 'hot', 'node-echo', round)?.qps

const out = []
out.push('## DNS bench results', '', ...header.map((h) => `- ${h}`), '')
out.push('### Throughput (closed loop) and CPU cost', '',
  'qps: median over rounds (min–max). × echo: qps ÷ the bare Node UDP echo\'s qps in the same round (median of rounds).',
  'CPU µs/q: the target\'s utime+stime over the run ÷ completed queries (all its threads and child processes).', '',
  '| mix | target | qps | min–max | × echo | CPU µs/q | target CPU % | lost | rcodes (round 1) |',
  '|---|---|---:|---:|---:|---:|---:|---:|---|')
for (const mix of mixes) {
  for (const t of targets) {
    const rs = all('sat', mix, t)
    const failed = runs.some((r) => r.mix === mix && r.target === t && r.status !== 'ok')
    if (!rs.length) {
      if (failed) out.push(`| ${mix} | ${t} | not measured (did not start) | | | | | | |`)
      continue
    }
    const q = rs.map((r) => r.qps)
    const xe = median(rs.map((r) => r.qps / (echoQps(r.round) ?? NaN)))
    out.push(`| ${mix} | ${t} | **${fmtK(median(q))}** | ${fmtK(Math.min(...q))}–${fmtK(Math.max(...q))} | ${f(xe, 2)} | ` +
      `${f(median(rs.map((r) => r.usPerQ)))} | ${f(median(rs.map((r) => r.cpuPct)), 0)} | ${rs.reduce((s, r) => s + r.lost, 0)} | ${rs[0].rcodes} |`)
  }
}

out.push('', `### Latency at a fixed load (dnsperf -Q ${/lat_qps=(\d+)/.exec(text)?.[1] ?? '?'})`, '',
  'Medians over rounds. p50/p99/p99.9 come from dnsperf -v per-response latencies.', '',
  '| mix | target | achieved qps | mean ms | p50 ms | p99 ms | p99.9 ms | CPU µs/q | lost |',
  '|---|---|---:|---:|---:|---:|---:|---:|---:|')
for (const mix of mixes) {
  for (const t of targets) {
    const rs = all('lat', mix, t)
    if (!rs.length) continue
    const m = (k) => median(rs.map((r) => Number(r[k])))
    out.push(`| ${mix} | ${t} | ${fmtK(m('qps'))} | ${f(m('lat_ms'), 3)} | ${f(m('p50_ms'), 3)} | ${f(m('p99_ms'), 3)} | ` +
      `${f(m('p999_ms'), 3)} | ${f(median(rs.map((r) => r.usPerQ)))} | ${rs.reduce((s, r) => s + r.lost, 0)} |`)
  }
}

// the issue's "Done when" goals, as per-round ratios
const goals = []
for (const tg of targets.filter((t) => t.startsWith('tunnelguard'))) {
  goals.push([tg, 'hot', 'node-echo', 'hot', 0.75, '≥'], [tg, 'blocked', 'node-echo', 'hot', 0.75, '≥'],
    [tg, 'forwarded', 'unbound', 'forwarded', 1, '>'], [tg, 'forwarded', 'dnsmasq', 'forwarded', 1, '>'],
    [tg, 'forwarded', 'node-fwd-raw', 'forwarded', 0.8, '≥'], [tg, 'forwarded', 'dnsdist', 'forwarded', null, ''])
}
out.push('', '### Ratios and goals (per round, same sitting)', '',
  '| A | B | qps A ÷ qps B (median) | per round | CPU µs/q A ÷ B | goal | met |',
  '|---|---|---:|---|---:|---|---|')
for (const [a, am, b, bm, goal, op] of goals) {
  const per = rounds.map((rd) => {
    const x = pick('sat', am, a, rd); const y = pick('sat', bm, b, rd)
    return x && y ? { q: x.qps / y.qps, c: x.usPerQ / y.usPerQ } : undefined
  }).filter(Boolean)
  const label = `${a} ${am}`; const blabel = `${b} ${bm}`
  if (!per.length) { out.push(`| ${label} | ${blabel} | not measured | | | ${goal === null ? 'reference' : `${op} ${goal}`} | – |`); continue }
  const mq = median(per.map((p) => p.q))
  const met = goal === null ? '' : (op === '>' ? mq > goal : mq >= goal) ? 'yes' : '**no**'
  out.push(`| ${label} | ${blabel} | **${f(mq, 2)}** | ${per.map((p) => f(p.q, 2)).join(', ')} | ${f(median(per.map((p) => p.c)), 2)} | ` +
    `${goal === null ? 'reference' : `${op} ${goal}`} | ${met} |`)
}

const okRuns = runs.filter((r) => r.status === 'ok')
const fr = okRuns.map((r) => r.foreignPct)
const sat = okRuns.filter((r) => r.kind === 'sat')
out.push('', '### Noise', '',
  `- Box busy during closed-loop runs: median ${f(median(sat.map((r) => r.busyPct)), 0)} % of ${cpus * 100} %.`,
  `- CPU used by other processes on the box (not the target, nsd, dnsperf or softirq) during the runs: ` +
  `median ${f(median(fr), 0)} %, max ${f(Math.max(...fr.filter(Number.isFinite)), 0)} % (of ${cpus * 100} %).`,
  `- Runs: ${okRuns.length} ok, ${runs.length - okRuns.length} failed or skipped.`)
console.log(out.join('\n'))
