// Synthetic data for the DNS bench (deterministic: seeded PRNG).
//   node bench/dns/gen-data.js OUTDIR NGROK_LIST
// Writes into OUTDIR:
//   example.test.zone   SOA, NS, 1000 A records h0000..h0999 and a wildcard (unique names get NOERROR)
//   q-forwarded.txt     2,000,000 unique names u<i>.example.test: every query is a cache miss
//   q-hot.txt           the 1000 h* names, shuffled: cache hits after one warm-up pass
//   q-blocked.txt       200,000 names under the entries of the ngrok list (apex, 1 or 2 extra labels)
//   q-soak.txt          1,000,000 lines: 60 % unique (v<i>), 30 % hot, 10 % blocked (memory soak)
//   block-suffixes.txt  the list's block entries as plain suffixes, for the anchors
//   dnsmasq-block.conf, unbound-block.conf   the same suffixes in each daemon's syntax
import { mkdirSync, openSync, writeSync, closeSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const [out, listFile] = process.argv.slice(2)
if (!out || !listFile) {
  console.error('usage: node gen-data.js OUTDIR NGROK_LIST')
  process.exit(2)
}
mkdirSync(out, { recursive: true })

let seed = 0x7e11
function rnd () { // mulberry32
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const pick = (n) => Math.floor(rnd() * n)
const CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789'
function label (min, max) {
  let s = ''
  for (let i = min + pick(max - min + 1); i > 0; i--) s += CHARS[pick(36)]
  return s
}
function writeLines (file, n, line) {
  const fd = openSync(join(out, file), 'w')
  let chunk = []
  for (let i = 0; i < n; i++) {
    chunk.push(line(i))
    if (chunk.length === 50_000) { writeSync(fd, chunk.join('\n') + '\n'); chunk = [] }
  }
  if (chunk.length) writeSync(fd, chunk.join('\n') + '\n')
  closeSync(fd)
}

// --- the ngrok list: the same line formats tunnelguard reads (DESIGN §4, "Names and lists") ---
const domains = [] // domain and subdomains
const subsOnly = [] // *.domain: subdomains only
const exact = [] // hosts-file lines
const allows = [] // @@||x^ exceptions: never generate a blocked name under one
for (const raw of readFileSync(listFile, 'utf8').split('\n')) {
  let s = raw.replace(/\s#.*$/, '').trim().toLowerCase()
  if (!s || s.startsWith('#') || s.startsWith('!')) continue
  const hosts = /^(?:0\.0\.0\.0|127\.0\.0\.1|::1?|::)\s+(\S+)$/.exec(s)
  if (hosts) { exact.push(hosts[1].replace(/\.$/, '')); continue }
  const adb = /^(@@)?\|\|([^/^$]+)\^?$/.exec(s)
  if (adb) { (adb[1] ? allows : domains).push(adb[2]); continue }
  s = s.replace(/\.$/, '')
  if (s.startsWith('*.')) subsOnly.push(s.slice(2))
  else if (/^[a-z0-9_.-]+$/.test(s)) domains.push(s)
}
const underAllow = (name) => allows.some((a) => name === a || name.endsWith('.' + a))
const entries = [
  ...domains.map((d) => ({ d, kind: 'domain' })),
  ...subsOnly.map((d) => ({ d, kind: 'subs' })),
  ...exact.map((d) => ({ d, kind: 'exact' })),
]
if (entries.length === 0) {
  console.error(`no block entries found in ${listFile}`)
  process.exit(1)
}
function blockedName () {
  for (;;) {
    const e = entries[pick(entries.length)]
    let name
    if (e.kind === 'exact') name = e.d
    else {
      const r = rnd()
      if (e.kind === 'domain' && r < 0.1) name = e.d
      else if (r < 0.7) name = `${label(4, 12)}.${e.d}`
      else name = `${label(3, 8)}.${label(2, 6)}.${e.d}`
    }
    if (!underAllow(name)) return name
  }
}

// --- zone ---
const HOT = 1000
const zone = [
  '$ORIGIN example.test.', '$TTL 3600',
  '@ IN SOA ns1.example.test. hostmaster.example.test. 1 3600 600 86400 300',
  '@ IN NS ns1.example.test.', 'ns1 IN A 192.0.2.53', '* IN A 192.0.2.1',
]
const hot = []
for (let i = 0; i < HOT; i++) {
  const h = `h${String(i).padStart(4, '0')}`
  zone.push(`${h} IN A 198.51.100.${i % 250}`)
  hot.push(`${h}.example.test A`)
}
writeFileSync(join(out, 'example.test.zone'), zone.join('\n') + '\n')
for (let i = HOT - 1; i > 0; i--) { const j = pick(i + 1);[hot[i], hot[j]] = [hot[j], hot[i]] }

// --- query files (dnsperf format: "name type") ---
writeLines('q-forwarded.txt', 2_000_000, (i) => `u${i}.example.test A`)
writeLines('q-hot.txt', HOT, (i) => hot[i])
writeLines('q-blocked.txt', 200_000, () => `${blockedName()} A`)
let v = 0
writeLines('q-soak.txt', 1_000_000, () => {
  const r = rnd()
  return r < 0.6 ? `v${v++}.example.test A` : r < 0.9 ? hot[pick(HOT)] : `${blockedName()} A`
})

// --- the list as plain suffixes for the anchors (they cannot express exact / subdomains-only / allow) ---
const suffixes = [...new Set([...domains, ...subsOnly, ...exact])]
writeFileSync(join(out, 'block-suffixes.txt'), suffixes.join('\n') + '\n')
writeFileSync(join(out, 'dnsmasq-block.conf'), suffixes.map((d) => `address=/${d}/`).join('\n') + '\n')
writeFileSync(join(out, 'unbound-block.conf'),
  'server:\n' + suffixes.map((d) => `    local-zone: "${d}." always_nxdomain`).join('\n') + '\n')
console.log(`data in ${out}: ${entries.length} list entries (${domains.length} domain, ${subsOnly.length} *., ` +
  `${exact.length} exact, ${allows.length} allow exceptions skipped)`)
