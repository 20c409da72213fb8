// Matcher benchmark: SuffixTrie (via loadLists) vs a plain Set of names (suffix walk with slice).
// usage: npm run build && node bench/match.mjs [--entries 1000000] [--lookups 1000000] [--rounds 3]
// The parent writes the list to bench/out/, then runs each structure in a fresh child process
// (`node --expose-gc bench/match.mjs --one trie|set|none FILE`) so RSS is clean, and prints a
// Markdown table. Deterministic data (seeded PRNG). Lookup times are CPU time of the child.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const HERE = dirname(fileURLToPath(import.meta.url))
// glibc's malloc settings as the Dockerfile, the systemd unit and `npm start` ship them (huge pages
// for big typed arrays); every structure runs with them. GLIBC_TUNABLES= in the environment: glibc's defaults.
const TUNABLES = process.env.GLIBC_TUNABLES ?? 'glibc.malloc.trim_threshold=67108864:glibc.malloc.hugetlb=1'
const ROOT = join(HERE, '..')
const arg = (name, dflt) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : dflt }

function prng(seed) { // mulberry32, as in ../shared/bench-anchors/gen/gen-data.js
  return () => {
    seed |= 0; seed = (seed + 0x6D2B79F5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789'
const label = (rnd, n) => { let s = ''; for (let i = 0; i < n; i++) s += ALNUM[Math.floor(rnd() * 36)]; return s }
const flat = s => Buffer.from(s, 'latin1').latin1Slice() // a flat string, as if decoded from a packet
const mib = x => x / 1048576
const gc = () => { globalThis.gc(); globalThis.gc() }

/** The shipped lists' names (blocklists/*.txt), as plain lines, when the lists and dist/ exist. */
async function shippedNames() {
  const dir = join(ROOT, 'blocklists')
  if (!existsSync(dir)) return []
  const { parseListText } = await import('../dist/match/load-lists.js')
  const out = []
  for (const f of readdirSync(dir).filter(n => n.endsWith('.txt')).sort()) {
    for (const e of parseListText('x', f, readFileSync(join(dir, f), 'utf8')).entries) if (!e.allow) out.push(e.name)
  }
  return out
}

async function parent() {
  const entries = Number(arg('entries', 1_000_000))
  const lookups = arg('lookups', '1000000')
  const rounds = Number(arg('rounds', 3))
  mkdirSync(join(HERE, 'out'), { recursive: true })
  const file = join(HERE, 'out', `match-${entries}.txt`)
  const shipped = await shippedNames()
  const rnd = prng(0x5eed1234)
  const seen = new Set(shipped)
  const names = [...seen]
  const target = names.length + entries
  while (names.length < target) {
    const d = `${label(rnd, 9)}.example-${Math.floor(rnd() * 200000)}.com`
    if (!seen.has(d)) { seen.add(d); names.push(d) }
  }
  writeFileSync(file, names.join('\n') + '\n')
  console.error(`list: ${file}: ${names.length} names (${shipped.length} from blocklists/*.txt)`)
  const runs = { none: [], set: [], trie: [] }
  for (let r = 0; r < rounds; r++) {
    for (const kind of ['none', 'set', 'trie']) {
      const res = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--one', kind, file, '--lookups', lookups],
        { encoding: 'utf8', maxBuffer: 1 << 20, timeout: 600_000, env: { ...process.env, GLIBC_TUNABLES: TUNABLES } })
      if (res.status !== 0) throw new Error(`${kind}: exit ${res.status}\n${res.stderr}`)
      runs[kind].push(JSON.parse(res.stdout))
      console.error(`round ${r + 1} ${kind}: ${res.stdout.trim()}`)
    }
  }
  report(runs, names.length, Number(lookups))
}

const median = xs => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }

function report(runs, n, lookups) {
  const base = median(runs.none.map(x => x.rssMiB))
  const row = (kind, label) => {
    const rs = runs[kind]
    const m = k => median(rs.map(x => x[k]))
    const ns = k => `${m(k).toFixed(0)} ns (${(1000 / m(k)).toFixed(2)} M/s)`
    return `| ${label} | ${m('loadMs').toFixed(0)} | ${m('loadCpuMs').toFixed(0)} | ${(m('rssMiB') - base).toFixed(1)} | ${m('heapMiB').toFixed(1)} | ${ns('hitNs')} | ${ns('missNs')} | ${ns('deepNs')} | ${ns('mixedNs')} | ${ns('trafficNs')} |`
  }
  const ratio = k => (median(runs.set.map(x => x[k])) / median(runs.trie.map(x => x[k]))).toFixed(2)
  console.log(`${n.toLocaleString('en')} names, ${lookups.toLocaleString('en')} lookups per set, median of ${runs.trie.length} runs (each in a fresh process, GLIBC_TUNABLES=${TUNABLES || '(unset)'})\n`)
  console.log('| structure | load ms (wall) | load ms (CPU) | RSS added MiB | heap MiB | hits | misses | deep (9+ labels) | mixed 50/50 | traffic 5/95 |')
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  console.log(row('trie', '`SuffixTrie` via `loadLists`'))
  console.log(row('set', '`Set` of names, suffix walk with `slice`'))
  console.log(`| Set ÷ trie (higher = trie faster) | ${ratio('loadMs')} | ${ratio('loadCpuMs')} | | | ${ratio('hitNs')} | ${ratio('missNs')} | ${ratio('deepNs')} | ${ratio('mixedNs')} | ${ratio('trafficNs')} |`)
  console.log(`\nRSS of a process that only reads the file: ${base.toFixed(1)} MiB (subtracted). Hit counts agree: ${runs.trie.every((t, i) => t.hits === runs.set[i].hits)}.`)
}

/** One structure in this (fresh) process: load it, measure memory, then time the lookup sets. */
async function one(kind, file, nLookups) {
  gc()
  const rss0 = process.memoryUsage().rss
  const heap0 = process.memoryUsage().heapUsed
  const t0 = process.hrtime.bigint()
  const c0 = process.cpuUsage()
  let lookup = () => false
  if (kind === 'trie') {
    const { loadLists } = await import('../dist/match/load-lists.js')
    const { matcher, warnings } = loadLists({ bench: { files: [file], urls: [], refresh: 0, maxBytes: 0, action: 'block' } })
    if (warnings.length) throw new Error(warnings[0].message)
    globalThis.keep = matcher
    lookup = name => matcher.lookup(name).length > 0
  } else if (kind === 'set') {
    const buf = readFileSync(file)
    const set = new Set()
    for (let s = 0, i = buf.indexOf(10); i >= 0; s = i + 1, i = buf.indexOf(10, s)) if (i > s) set.add(buf.latin1Slice(s, i))
    globalThis.keep = set
    lookup = name => { let n = name; for (;;) { if (set.has(n)) return true; const j = n.indexOf('.'); if (j < 0) return false; n = n.slice(j + 1) } }
  } else {
    readFileSync(file, 'latin1')
  }
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6
  const lc = process.cpuUsage(c0)
  const loadCpuMs = (lc.user + lc.system) / 1000
  gc()
  const mem = process.memoryUsage()
  // lookup sets, built after the memory snapshot (same seed in every process)
  const listed = readFileSync(file, 'latin1').split('\n').filter(Boolean)
  const rnd = prng(42)
  const pick = () => listed[Math.floor(rnd() * listed.length)]
  const sets = { hit: [], miss: [], deep: [], mixed: [], traffic: [] }
  const hot = listed.slice(0, 1000) // the shipped lists come first in the file
  for (let i = 0; i < nLookups; i++) {
    sets.hit.push(flat(`www.${pick()}`))
    sets.miss.push(flat(`h${i}.example.test`))
    sets.deep.push(flat(i & 1 ? `a${i}.b.c.d.e.f.${pick()}` : `a${i}.b.c.d.e.f.g.h${i}.example.test`))
    sets.mixed.push(i & 1 ? sets.hit[i] : sets.miss[i])
    sets.traffic.push(i % 20 === 0 ? flat(`x${i}.${hot[i % hot.length]}`) : flat(`u${i}.example.test`))
  }
  const out = { kind, loadMs, loadCpuMs, rssMiB: mib(mem.rss), rssAddedMiB: mib(mem.rss - rss0), heapMiB: mib(mem.heapUsed - heap0), hits: 0 }
  const time = qs => {
    for (let i = 0; i < qs.length; i++) lookup(qs[i]) // warm-up pass: JIT, and the trie builds each Entry on its first match
    const c = process.cpuUsage()
    let hits = 0
    for (let i = 0; i < qs.length; i++) if (lookup(qs[i])) hits++
    const d = process.cpuUsage(c)
    return [(d.user + d.system) * 1000 / qs.length, hits]
  }
  for (const [k, qs] of Object.entries(sets)) {
    const [ns, hits] = time(qs)
    out[`${k}Ns`] = ns
    if (k === 'mixed') out.hits = hits
  }
  process.stdout.write(JSON.stringify(out) + '\n')
}

if (process.argv[2] === '--one') await one(process.argv[3], process.argv[4], Number(arg('lookups', 1_000_000)))
else await parent()
