import t from 'tap'
import { foldName, normalizeName } from '../../src/match/normalize.js'

const ok = (name: string) => ({ ok: true, name })

t.test('already-normal names come back as they are', async t => {
  t.same(normalizeName('ngrok.io'), ok('ngrok.io'))
  t.same(normalizeName('a-b_c.0x0.st'), ok('a-b_c.0x0.st'))
  const s = 'connect.ngrok-agent.com'
  const r = normalizeName(s)
  t.ok(r.ok && r.name === s)
})

t.test('uppercase is lowered, a trailing dot dropped', async t => {
  t.same(normalizeName('NGROK.IO'), ok('ngrok.io'))
  t.same(normalizeName('Tunnel.US.Ngrok.Com.'), ok('tunnel.us.ngrok.com'))
  t.same(normalizeName('ngrok.io.'), ok('ngrok.io'))
})

t.test('the root is the empty name', async t => {
  t.same(normalizeName('.'), ok(''))
  t.same(normalizeName(''), ok(''))
})

t.test('IDNA names become punycode', async t => {
  t.same(normalizeName('bücher.example'), ok('xn--bcher-kva.example'))
  t.same(normalizeName('BÜCHER.example.'), ok('xn--bcher-kva.example'))
  t.same(normalizeName('xn--bcher-kva.example'), ok('xn--bcher-kva.example'))
})

t.test('empty labels are refused', async t => {
  t.same(normalizeName('a..b'), { ok: false, reason: 'empty label' })
  t.same(normalizeName('.a'), { ok: false, reason: 'empty label' })
  t.same(normalizeName('..'), { ok: false, reason: 'empty label' })
})

t.test('label and name length limits (63 / 253)', async t => {
  const l63 = 'a'.repeat(63)
  t.same(normalizeName(`${l63}.io`), ok(`${l63}.io`))
  t.same(normalizeName(`${'a'.repeat(64)}.io`), { ok: false, reason: 'label longer than 63 characters' })
  const n253 = [l63, l63, l63, 'a'.repeat(61)].join('.')
  t.equal(n253.length, 253)
  t.same(normalizeName(n253), ok(n253))
  t.same(normalizeName(`${n253}.`), ok(n253), 'a trailing dot does not count')
  t.same(normalizeName(`a${n253}`), { ok: false, reason: 'name longer than 253 characters' })
})

t.test('characters a host name cannot have', async t => {
  for (const bad of ['a b.com', 'ngrok.io:443', 'a*.io', 'a\u0000b.io', 'a@b.io']) {
    const r = normalizeName(bad)
    t.equal(r.ok, false, bad)
  }
  t.match(normalizeName('Ngrok*.io'), { ok: false, reason: 'character "*" not allowed in a host name' })
  t.match(normalizeName('ngrok.io:443'), { ok: false, reason: 'character ":" not allowed in a host name' })
  t.match(normalizeName('a%.io'), { ok: false, reason: /not allowed|IDNA/ })
})

t.test('an IDNA conversion that fails is refused with the reason', async t => {
  t.match(normalizeName('xn--a.ä'), { ok: false, reason: /IDNA conversion failed/ })
})

t.test('ASCII that IDNA would cut or keep is refused, not silently dropped (no bypass)', async t => {
  for (const n of ['evil/x.ngrok.io', 'a?b.ngrok.io', 'x#.ngrok.io', 'a\\b.ngrok.io', 'a b.com', 'ä!b.ngrok.io']) {
    const r = normalizeName(n)
    t.equal(r.ok, false, `${n} refused`)
    t.match(!r.ok && r.reason, /not allowed in a host name/)
  }
  t.match(normalizeName('a！b.ngrok.io'), { ok: false, reason: 'character "!" not allowed in a host name' }, 'fullwidth ! maps to ASCII !')
  t.match(normalizeName('a／b.ngrok.io'), { ok: false }, 'fullwidth / does not become a path')
  t.match(normalizeName('ä..'), { ok: false, reason: 'empty label' }, 'only one trailing dot is dropped')
  t.same(normalizeName('Bücher.Example.'), { ok: true, name: 'xn--bcher-kva.example' })
})

t.test('foldName: case and one trailing dot folded for grouping, nothing else changed', async t => {
  const s = 'connect.ngrok-agent.com'
  t.equal(foldName(s), s, 'a folded name as it is')
  t.equal(foldName('CONNECT.Ngrok-Agent.COM'), s)
  t.equal(foldName('connect.ngrok-agent.com.'), s)
  t.equal(foldName('Connect.Ngrok-Agent.Com.'), s)
  t.equal(foldName('BÜCHER.example'), 'bücher.example', 'non-ASCII lowered, not converted')
  t.equal(foldName('2001:DB8::7'), '2001:db8::7')
  t.equal(foldName('bad..Name'), 'bad..name', 'a name normalizeName refuses is folded too')
  t.equal(foldName('.'), '.', 'the root stays')
  t.equal(foldName(''), '')
})
