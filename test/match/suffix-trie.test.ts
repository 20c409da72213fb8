import t from 'tap'
import { hashName, SuffixTrie } from '../../src/match/suffix-trie.js'
import type { Entry, MatchKind } from '../../src/match/types.js'
import { simpleMatcher } from '../fixtures/snapshot.js'

function entry(name: string, kind: MatchKind = 'domain', list = 'l', allow = false): Entry {
  return { list, name, kind, allow, pattern: name, source: `${list}.txt:1` }
}
function trieOf(...entries: Entry[]): SuffixTrie {
  const trie = new SuffixTrie()
  for (const e of entries) trie.add(e)
  return trie
}
const names = (r: readonly Entry[]) => r.map(e => `${e.kind}:${e.name}`)

t.test('domain matches the name and its subdomains, by whole labels only', async t => {
  const trie = trieOf(entry('ngrok.io'))
  t.same(names(trie.lookup('ngrok.io')), ['domain:ngrok.io'])
  t.same(names(trie.lookup('x.ngrok.io')), ['domain:ngrok.io'])
  t.same(names(trie.lookup('a.b.c.ngrok.io')), ['domain:ngrok.io'])
  t.same(trie.lookup('myngrok.io'), [])
  t.same(trie.lookup('ngrok.io.example.com'), [])
  t.same(trie.lookup('io'), [])
  t.same(trie.lookup('grok.io'), [])
  t.same(trie.lookup('x.myngrok.io'), [])
})

t.test('exact matches only the name; subdomains only the names below it', async t => {
  const trie = trieOf(entry('host.example', 'exact'), entry('ngrok.app', 'subdomains'))
  t.same(names(trie.lookup('host.example')), ['exact:host.example'])
  t.same(trie.lookup('a.host.example'), [])
  t.same(trie.lookup('ngrok.app'), [])
  t.same(names(trie.lookup('x.ngrok.app')), ['subdomains:ngrok.app'])
  t.same(names(trie.lookup('y.x.ngrok.app')), ['subdomains:ngrok.app'])
  t.same(trie.lookup('xngrok.app'), [])
})

t.test('allow entries are returned like the others; every match is returned, most specific first', async t => {
  const allow = entry('docs.ngrok.com', 'domain', 'ngrok', true)
  const trie = trieOf(entry('ngrok.com', 'domain', 'ngrok'), allow, entry('ngrok.com', 'domain', 'tunnels'),
    entry('com', 'subdomains', 'tlds'), entry('docs.ngrok.com', 'exact', 'other'))
  t.same(trie.lookup('docs.ngrok.com').map(e => `${e.list}:${e.name}:${e.allow}`),
    ['ngrok:docs.ngrok.com:true', 'other:docs.ngrok.com:false', 'ngrok:ngrok.com:false', 'tunnels:ngrok.com:false', 'tlds:com:false'])
  t.equal(trie.lookup('docs.ngrok.com')[0], allow, 'an added object is returned as it is')
  t.same(trie.lookup('a.docs.ngrok.com').map(e => e.list), ['ngrok', 'ngrok', 'tunnels', 'tlds'])
  t.same(trie.lookup('com'), [], 'subdomains of com does not match com')
})

t.test('deep names and single labels', async t => {
  const trie = trieOf(entry('a.b.c.d.e.f.g.h.example'), entry('localhost', 'exact'), entry('top', 'subdomains'))
  t.same(names(trie.lookup('z.y.x.a.b.c.d.e.f.g.h.example')), ['domain:a.b.c.d.e.f.g.h.example'])
  t.same(trie.lookup('b.c.d.e.f.g.h.example'), [])
  t.same(names(trie.lookup('localhost')), ['exact:localhost'])
  t.same(names(trie.lookup('evil.top')), ['subdomains:top'])
  const deep = Array.from({ length: 200 }, (_, i) => `l${i}`).join('.') + '.evil.top'
  t.same(names(trie.lookup(deep)), ['subdomains:top'], 'more labels than a normal name can have still work')
})

t.test('the returned array is reused (one per result count); a miss returns one shared frozen empty array', async t => {
  const trie = trieOf(entry('ngrok.io'), entry('ngrok.app'), entry('x.ngrok.app'))
  const a = trie.lookup('x.ngrok.io')
  t.equal(a.length, 1)
  const b = trie.lookup('y.ngrok.app')
  t.equal(a, b, 'same array object')
  t.equal(a[0]!.name, 'ngrok.app', 'the first result was overwritten')
  const two = trie.lookup('x.ngrok.app')
  t.same(names(two), ['domain:x.ngrok.app', 'domain:ngrok.app'])
  t.equal(trie.lookup('z.x.ngrok.app'), two, 'two results: the two-result array again')
  const miss1 = trie.lookup('example.com')
  const miss2 = trie.lookup('')
  t.equal(miss1, miss2)
  t.ok(Object.isFrozen(miss1))
  t.equal(new SuffixTrie().lookup('ngrok.io'), miss1, 'an empty trie misses too')
})

t.test('many matches for one name grow the scratch space', async t => {
  const trie = new SuffixTrie()
  for (let i = 0; i < 40; i++) trie.add(entry('ngrok.io', 'domain', `list${i}`))
  const r = trie.lookup('a.ngrok.io')
  t.equal(r.length, 40)
  t.same(r.map(e => e.list), Array.from({ length: 40 }, (_, i) => `list${i}`))
})

t.test('duplicates are refused and size counts entries', async t => {
  const trie = new SuffixTrie()
  t.equal(trie.add(entry('ngrok.io')), true)
  t.equal(trie.add(entry('ngrok.io')), false, 'same list, name, kind, allow')
  t.equal(trie.add(entry('ngrok.io', 'subdomains')), true, 'another kind')
  t.equal(trie.add(entry('ngrok.io', 'domain', 'l', true)), true, 'an allow')
  t.equal(trie.add(entry('ngrok.io', 'domain', 'other')), true, 'another list')
  t.equal(trie.insert('l', '', 'domain', false, '', 'f', 1), false, 'an empty name')
  t.equal(trie.insert('l', 'bücher.example', 'domain', false, '', 'f', 1), false, 'a name that is not normalized (not ASCII)')
  const long = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`  // 253 characters
  t.equal(trie.insert('l', long, 'domain', false, long, 'f', 1), true, 'the longest normalized name')
  t.equal(trie.lookup(`x.${long}`)[0]?.name, long, 'and it matches')
  t.equal(trie.insert('l', `e${long}`, 'domain', false, '', 'f', 1), false, 'a name over 253 characters')
  t.equal(trie.size, 5)
  t.equal(trie.lookup('ngrok.io').length, 3)
})

t.test('insert stores parts compactly and builds the same Entry on a match', async t => {
  const trie = new SuffixTrie()
  const sigma = { id: 'r1', title: 'T', author: 'A' }
  const cases: [string, MatchKind, boolean, string][] = [
    ['a.example', 'domain', false, 'a.example'],
    ['b.example', 'subdomains', false, '*.b.example'],
    ['c.example', 'domain', false, '||c.example^'],
    ['d.example', 'domain', true, '@@||d.example^'],
    ['e.example', 'exact', false, '0.0.0.0 e.example'],
    ['f.example', 'exact', false, '127.0.0.1 f.example'],
    ['g.example', 'exact', false, ':: G.example'],
    ['h.example', 'domain', false, 'H.EXAMPLE'],
  ]
  cases.forEach(([name, kind, allow, pattern], i) => trie.insert('l', name, kind, allow, pattern, '/x/list.txt', i + 1))
  trie.insert('s', 'i.example', 'domain', false, 'QueryName|contains: i.example', 'rule.yml', 9, sigma)
  trie.insert('u', 'j.example', 'exact', false, 'j.example', 'https://lists.example/x', -1)
  cases.forEach(([name, kind, allow, pattern], i) => {
    const host = kind === 'subdomains' ? `x.${name}` : name
    t.same(trie.lookup(host), [{ list: 'l', name, kind, allow, pattern, source: `/x/list.txt:${i + 1}` }], pattern)
  })
  const [s] = trie.lookup('i.example')
  t.same(s, { list: 's', name: 'i.example', kind: 'domain', allow: false, pattern: 'QueryName|contains: i.example', source: 'rule.yml:9', sigma })
  t.equal(trie.lookup('i.example')[0], s, 'built once, then reused')
  t.same(trie.lookup('j.example')[0]!.source, 'https://lists.example/x')
  t.notOk('sigma' in trie.lookup('a.example')[0]!, 'no sigma key without a rule')
})

t.test('names whose hashes collide are told apart', async t => {
  // found offline by a birthday search over 3 M names
  const pair: [string, string] = ['c4nn1z7.example', 'c1a03pg4.example']
  const [a, b] = pair
  t.equal(hashName(a), hashName(b))
  const trie = trieOf(entry(a), entry(b, 'exact'))
  t.same(names(trie.lookup(a)), [`domain:${a}`])
  t.same(names(trie.lookup(b)), [`exact:${b}`])
  t.same(names(trie.lookup(`x.${a}`)), [`domain:${a}`])
  t.same(trie.lookup(`x.${b}`), [])
  t.equal(trie.add(entry(b, 'exact')), false, 'a duplicate is found past a colliding name')
  const sameKind = trieOf(entry(a), entry(b))
  t.equal(sameKind.add(entry(b)), false, 'a duplicate is found past a colliding name of another length')
  const [c, d] = ['d0py8ih9.example', 'd10eecj7.example']  // same hash, same length
  t.equal(hashName(c), hashName(d))
  const same = trieOf(entry(c), entry(d))
  t.equal(same.size, 2)
  t.equal(same.add(entry(d)), false)
  t.same(names(same.lookup(`www.${d}`)), [`domain:${d}`])
})

t.test('a candidate is compared to its last byte, a word at a time, whatever its length and where it starts', async t => {
  // verify runs only when a suffix's key is in a table, so it is driven here directly, on the
  // packing of the name last looked up
  const trie = new SuffixTrie()
  type Table = { rw: number; cap: number; t: Int32Array }
  const inside = trie as unknown as {
    tables: (Table | undefined)[]
    verify(t: Int32Array, w: number, len: number): boolean
  }
  const verify = (tbl: Table, b: number, query: string, len: number) => {
    trie.lookup(query)
    return inside.verify(tbl.t, b + 2, len)
  }
  const base = 'abcdefghijklm'
  for (let len = 1; len <= base.length; len++) trie.insert('l', base.slice(0, len), 'domain', false, base.slice(0, len), 'f', len)
  t.equal(trie.size, base.length)
  let wrong = 0
  for (let len = 1; len <= base.length; len++) {
    const name = base.slice(0, len)
    const tbl = inside.tables[(len + 3) >>> 2]!
    let b = 0
    while (tbl.t[b + 1] !== len) b += tbl.rw   // the record of entry len - 1
    t.equal(tbl.rw, ((len + 3) >>> 2) + 2, `${name}: a record of its own length`)
    for (const pre of ['', 'x.', 'xy.', 'wxy.']) {
      if (!verify(tbl, b, pre + name, len)) wrong++
      for (let p = 0; p < len; p++) {
        const other = name.slice(0, p) + 'z' + name.slice(p + 1)
        if (verify(tbl, b, pre + other, len)) wrong++
      }
    }
  }
  t.equal(wrong, 0, 'every name matches itself and nothing differing in one byte, after any prefix')
})

t.test('names that pack alike are told apart: by length, and past ASCII', async t => {
  const trie = trieOf(entry('ngrok.app'), entry('ac.example', 'exact'))
  t.same(trie.lookup('ngrok.app\0'), [], 'a trailing NUL packs as the zero fill of the last word')
  t.same(trie.lookup('x.ngrok.app\0'), [])
  t.equal(trie.add(entry('ngrok.app\0')), true, 'and is another name to add')
  t.same(names(trie.lookup('ngrok.app\0')), ['domain:ngrok.app\0'])
  t.same(names(trie.lookup('ngrok.app')), ['domain:ngrok.app'])
  t.same(trie.lookup('\u0161b.example'), [], 'U+0161 then b packs as a then c, but is not ASCII')
  t.same(names(trie.lookup('\u00fc.x.ngrok.app')), ['domain:ngrok.app'], 'suffixes right of a non-ASCII label still match')
  t.same(names(trie.lookup('a\u00fc.ngrok.app')), ['domain:ngrok.app'])
  t.same(trie.lookup('ngrok.\u00e1pp'), [])
})

t.test('agrees with a reference matcher on many random entries and names', async t => {
  let seed = 7
  const rnd = (n: number) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed >>> 8) % n }
  const labels = ['a', 'b', 'ng', 'io', 'com', 'x-y', 'app', 'ngrok']
  const randName = () => Array.from({ length: 1 + rnd(4) }, () => labels[rnd(labels.length)]).join('.')
  const kinds: MatchKind[] = ['exact', 'domain', 'subdomains']
  const entries: Entry[] = []
  const trie = new SuffixTrie()
  for (let i = 0; i < 3000; i++) {
    const e = entry(randName(), kinds[rnd(3)], `l${rnd(3)}`, rnd(5) === 0)
    if (trie.add(e)) entries.push(e)
  }
  t.ok(trie.size > 500, 'enough distinct entries to grow the table')
  const ref = simpleMatcher(entries)
  let mismatches = 0
  for (let i = 0; i < 3000; i++) {
    const q = randName()
    const key = (r: readonly Entry[]) => r.map(e => `${e.list}|${e.kind}|${e.name}|${e.allow}`).sort().join(',')
    if (key(trie.lookup(q)) !== key(ref.lookup(q))) mismatches++
  }
  t.equal(mismatches, 0)
})

t.test('entries filed under one name: the chain is read past a first entry that does not match', async t => {
  const exact = entry('ngrok.io', 'exact')
  const sub = entry('ngrok.io', 'subdomains')
  const other = entry('ngrok.io', 'domain', 'other')
  const trie = trieOf(exact, sub, other)
  t.same(trie.lookup('x.ngrok.io'), [sub, other], 'the first entry (exact) fails, the two chained after it match')
  t.same(trie.lookup('ngrok.io'), [exact, other], 'the apex: exact and domain, not subdomains')
  const alone = trieOf(entry('ngrok.io', 'exact'))
  t.same(alone.lookup('x.ngrok.io'), [], 'a first entry with nothing chained: a miss')
})

t.test('grows past its first table and column sizes', async t => {
  const trie = new SuffixTrie()
  const early: Entry[] = []
  for (let i = 0; i < 500; i++) {   // the first table (1024 slots) nearly half full, then it grows
    trie.insert('l', `e${i}.example`, 'domain', false, `e${i}.example`, 'f', 0)
    early.push(trie.lookup(`e${i}.example`)[0]!)
  }
  for (let i = 0; i < 5000; i++) trie.insert('l', `n${i}.example`, 'domain', false, `n${i}.example`, 'f', i + 1)
  const moved = early.filter((e, i) => trie.lookup(`www.e${i}.example`)[0] !== e || e.name !== `e${i}.example`)
  t.same(moved, [], 'Entries built before the table grew are found again, each under its own name')
  t.equal(trie.size, 5500)
  t.equal(trie.lookup('www.n4999.example')[0]!.source, 'f:5000')
  t.equal(trie.lookup('n0.example')[0]!.source, 'f:1')
  t.same(trie.lookup('n5000.example'), [])
})

t.test('a trie told how many entries to expect sizes its tables from how names are spread, once it has seen a thousand', async t => {
  const trie = new SuffixTrie(20000)
  const inside = trie as unknown as { tables: ({ cap: number; used: number } | undefined)[] }
  for (let i = 0; i < 20; i++) trie.insert('l', `s${i}.io`, 'domain', false, `s${i}.io`, 'f', i)   // a few short names first
  for (let i = 0; i < 20000; i++) trie.insert('l', `host-${100000 + i}.example`, 'domain', false, 'p', 'f', i)
  t.equal(trie.size, 20020)
  t.equal(trie.lookup('www.host-119999.example')[0]?.source, 'f:19999')
  t.equal(trie.lookup('x.s19.io')[0]?.source, 'f:19')
  const big = inside.tables[5]!                  // 'host-NNNNNN.example': 19 characters, 5 ints
  t.equal(big.used, 20000)
  t.ok(big.cap <= 2 * big.used, `load ${(big.used / big.cap).toFixed(2)}: no more than twice the room needed`)
  t.ok(big.cap >= 4 * big.used / 3, 'and the load stays under 3/4')
  const small = inside.tables[2]!               // 's0.io' .. 's19.io': 5-6 characters, 2 ints
  t.ok(small.cap <= 64, `a table that stopped growing early was not sized for the whole load (${small.cap} slots)`)
})

t.test('a far too high count of expected entries grows a table at most four times at a step', async t => {
  const trie = new SuffixTrie(10_000_000)         // as if every line were an entry, of a file with ten lines per entry
  const inside = trie as unknown as { tables: ({ cap: number; used: number } | undefined)[] }
  for (let i = 0; i < 3000; i++) trie.insert('l', `host-${100000 + i}.example`, 'domain', false, 'p', 'f', i)
  const big = inside.tables[5]!
  t.equal(big.used, 3000)
  t.ok(big.cap <= 4 * 4 * big.used, `${big.cap} slots for ${big.used} names: bounded by the step, not by the count`)
  t.equal(trie.lookup('www.host-102999.example')[0]?.source, 'f:2999')
})
