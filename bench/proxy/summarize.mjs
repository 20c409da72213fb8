// Summarize raw lines of bench/proxy/run.sh into markdown: medians over rounds, min–max,
// per-round ratios (median), proxy CPU per tunnel / per GiB, and the issue-4 goals.
// usage: node summarize.mjs RAW.txt [RAW2.txt ...]
import fs from 'node:fs'

const rows = []
const notes = []
for (const f of process.argv.slice(2)) {
  for (const line of fs.readFileSync(f, 'utf8').split('\n')) {
    if (line.startsWith('#')) { notes.push(line); continue }
    if (!line.startsWith('round=')) continue
    const r = {}
    for (const m of line.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S+)/g)) r[m[1]] = m[2]
    rows.push(r)
  }
}
const num = (v) => (v === undefined || v === 'NA' ? NaN : Number(v))
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (!s.length) return NaN
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '–')
const value = (r) => (r.test.startsWith('setup') ? num(r.rate) : (r.ok === 'true' ? num(r.MiBps) : NaN))
const unit = (test) => (test.startsWith('setup') ? 'tunnels/s' : 'MiB/s')

const order = ['direct', 'tunnelguard', 'squid', 'tinyproxy', 'node-pipe']
const targets = order.filter((t) => rows.some((r) => r.target === t))
const tests = ['setup-hello', 'setup-tls', 'bulk-down', 'bulk-up'].filter((t) => rows.some((r) => r.test === t))
const get = (target, test) => rows.filter((r) => r.target === target && r.test === test)
const byRound = (target, test) => new Map(get(target, test).map((r) => [r.round, value(r)]))
/** median over rounds of value(a)/value(b) taken in the same round */
const ratio = (a, b, test) => {
  const ra = byRound(a, test); const rb = byRound(b, test)
  return median([...ra].map(([k, v]) => v / rb.get(k)))
}

const out = []
out.push(notes.filter((n) => !n.startsWith('#   ')).join('\n'))
const refs = ['direct', 'squid', 'tinyproxy', 'node-pipe'].filter((t) => targets.includes(t))
for (const test of tests) {
  const setup = test.startsWith('setup')
  out.push('', `### ${test} (${unit(test)})`, '')
  out.push(`| target | runs | median | min–max | ${refs.map((t) => `× ${t}`).join(' | ')} | proxy CPU % | proxy CPU ${setup ? 'ms/tunnel' : 's/GiB'} | ${setup ? 'p50 / p99 ms | ' : ''}errors | client CPU % | origin CPU % | others CPU % | box busy % | proxy peak RSS MiB |`)
  out.push(`|---|---:|---:|---:|${refs.map(() => '---:').join('|')}|---:|---:|${setup ? '---:|' : ''}---:|---:|---:|---:|---:|---:|`)
  for (const t of targets) {
    const rs = get(t, test)
    if (!rs.length) continue
    const vals = rs.map(value).filter(Number.isFinite)
    const perUnit = median(rs.map((r) => setup
      ? 1000 * num(r.cpu_proxy_s) / num(r.completed)
      : num(r.cpu_proxy_s) / (num(r.bytes) / 2 ** 30)))
    const errors = rs.reduce((s, r) => s + (setup ? num(r.errors) || 0 : (r.ok === 'true' ? 0 : 1)), 0)
    const cells = [
      t, rs.length, `**${fmt(median(vals))}**`, vals.length ? `${fmt(Math.min(...vals))}–${fmt(Math.max(...vals))}` : '–',
      ...refs.map((b) => (b === t ? '1.00' : fmt(ratio(t, b, test), 2))),
      fmt(median(rs.map((r) => num(r.cpu_proxy)))), fmt(perUnit, setup ? 3 : 2),
      ...(setup ? [`${fmt(median(rs.map((r) => num(r.p50_ms))), 1)} / ${fmt(median(rs.map((r) => num(r.p99_ms))), 1)}`] : []),
      errors, fmt(median(rs.map((r) => num(r.cpu_client)))), fmt(median(rs.map((r) => num(r.cpu_origin)))),
      fmt(median(rs.map((r) => num(r.box_busy) - (num(r.cpu_proxy) || 0) - num(r.cpu_client) - num(r.cpu_origin)))),
      fmt(median(rs.map((r) => num(r.box_busy)))), fmt(Math.max(...rs.map((r) => num(r.hwm_MiB)).filter(Number.isFinite)))
    ]
    out.push(`| ${cells.join(' | ')} |`)
  }
  const firstErr = rows.filter((r) => r.test === test && r.first_error && r.first_error !== 'null').map((r) => `${r.target} r${r.round}: ${r.first_error}`)
  const bad = rows.filter((r) => r.test === test && r.error).map((r) => `${r.target} r${r.round}: ${r.error}`)
  if (firstErr.length || bad.length) out.push('', `errors: ${[...firstErr, ...bad].join('; ')}`)
}

if (targets.includes('tunnelguard')) {
  const goal = (label, x, pass) => out.push(`| ${label} | ${fmt(x, 2)} | ${Number.isFinite(x) ? (pass(x) ? 'yes' : '**no**') : '–'} |`)
  out.push('', '### Issue-4 goals (median of per-round ratios)', '', '| goal | ratio | met |', '|---|---:|---|')
  for (const ref of ['squid', 'tinyproxy']) if (targets.includes(ref)) goal(`setup-hello ≥ 0.90 × ${ref}`, ratio('tunnelguard', ref, 'setup-hello'), (x) => x >= 0.9)
  for (const test of ['bulk-down', 'bulk-up']) {
    if (!tests.includes(test)) continue
    for (const ref of ['tinyproxy', 'node-pipe']) if (targets.includes(ref)) goal(`${test} > ${ref}`, ratio('tunnelguard', ref, test), (x) => x > 1)
    if (targets.includes('squid')) goal(`${test} vs squid (aim ≥ 1)`, ratio('tunnelguard', 'squid', test), (x) => x >= 1)
  }
}
console.log(out.join('\n'))
