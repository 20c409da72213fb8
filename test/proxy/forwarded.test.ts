import t from 'tap'
import { CidrSet } from '../../src/policy/cidr.js'
import { effectiveClient } from '../../src/proxy/context.js'
import { forwardedHops, nodeAddress } from '../../src/proxy/forwarded.js'

const trust = new CidrSet(['10.0.0.0/8'])
const peer = { ip: '10.0.0.5', port: 40000 }
const fors = (v: string) => forwardedHops(v)?.map(h => h.for)
const viaF = (forwarded: string | string[]) => effectiveClient(peer, { forwarded } as Record<string, string>, trust)

t.test('Forwarded elements: for, quoted strings, parameter names in any case, several elements and lines', async t => {
  t.same(forwardedHops('for=192.0.2.60;proto=http;by=203.0.113.43'), [{ for: '192.0.2.60', text: 'for=192.0.2.60;proto=http;by=203.0.113.43' }])
  t.same(forwardedHops('for="[2001:db8:cafe::17]:4711"'), [{ for: '[2001:db8:cafe::17]:4711', text: 'for="[2001:db8:cafe::17]:4711"' }])
  t.same(fors('For=192.0.2.43, FOR=198.51.100.17'), ['192.0.2.43', '198.51.100.17'])
  t.same(fors('for=_hidden, for=unknown'), ['_hidden', 'unknown'])
  t.same(fors('proto=https; for = 192.0.2.1 ;by=x'), ['192.0.2.1'], 'whitespace around ; and =')
  t.same(fors('for="a\\"b\\\\c;d,e"'), ['a"b\\c;d,e'], 'a quoted string holds ; , and quoted-pairs')
  t.same(fors(';;for=192.0.2.1;;'), ['192.0.2.1'], 'empty pairs')
  t.same(fors('for=192.0.2.1, , ,for=192.0.2.2,'), ['192.0.2.1', '192.0.2.2'], 'empty elements skipped')
  t.same(fors('for=192.0.2.1:8080'), ['192.0.2.1:8080'], 'a port not quoted, as senders write it')
  t.same(forwardedHops('proto=https;host=a.example, by=10.0.0.1'), undefined, 'no for anywhere: names no client')
  t.same(forwardedHops(''), undefined)
  t.same(forwardedHops('proto=https, for=192.0.2.9'), [{ text: 'proto=https' }, { for: '192.0.2.9', text: 'for=192.0.2.9' }], 'a hop without for')
})

t.test('malformed Forwarded: an element, or the whole field, without a readable for', async t => {
  for (const e of ['for', 'for=', '=x', 'for=1.2.3.4 proto=http', 'for="a"b', 'for=a"b"', 'for=1.1.1.1;for=2.2.2.2', 'fo r=1.1.1.1', 'for=é;x']) {
    t.same(forwardedHops(`${e}, for=192.0.2.1`), [{ text: e }, { for: '192.0.2.1', text: 'for=192.0.2.1' }], e)
  }
  t.same(forwardedHops('for="192.0.2.1, for=192.0.2.2'), [{ text: 'for="192.0.2.1, for=192.0.2.2' }], 'an unclosed quote: the whole field')
  t.same(forwardedHops('for="a\\"'), [{ text: 'for="a\\"' }], 'a quoted-pair taking the closing quote')
  t.same(forwardedHops('for="a\\'), [{ text: 'for="a\\' }], 'a quoted-pair at the end')
  t.same(forwardedHops('for=192.0.2.1\x00, for=192.0.2.2'), [{ text: 'for=192.0.2.1\x00, for=192.0.2.2' }], 'a NUL byte')
  t.same(forwardedHops('for="\x01"'), [{ text: 'for="\x01"' }], 'a control byte in quotes')
  t.same(fors('for=192.0.2.1;x=\t"a\tb"'), ['192.0.2.1'], 'a tab is no control byte')
})

t.test('nodeAddress: an obfuscated port is taken off, the address kept', async t => {
  t.equal(nodeAddress('192.0.2.1:_abc'), '192.0.2.1')
  t.equal(nodeAddress('[2001:db8::1]:_x.y-z'), '[2001:db8::1]')
  t.equal(nodeAddress('192.0.2.1:80'), '192.0.2.1:80')
  t.equal(nodeAddress('_hidden'), '_hidden')
})

t.test('Forwarded from a trusted peer names the client, walked right to left as X-Forwarded-For is', async t => {
  t.same(viaF('for=192.0.2.60;proto=http;by=203.0.113.43'), { client: { ip: '192.0.2.60', port: 0 } })
  t.same(viaF('for="[2001:DB8:cafe::17]:4711"'), { client: { ip: '2001:db8:cafe::17', port: 0 } })
  t.same(viaF('for="192.0.2.7:_port"'), { client: { ip: '192.0.2.7', port: 0 } }, 'an obfuscated port')
  t.same(viaF('for="[::ffff:198.51.100.4]"'), { client: { ip: '198.51.100.4', port: 0 } })
  t.same(viaF('for=6.6.6.6, for=192.168.7.7, for=10.0.0.2'), { client: { ip: '192.168.7.7', port: 0 } }, 'past trusted hops')
  t.same(viaF(['for=7.7.7.7', 'FOR=10.0.0.9;proto=https']), { client: { ip: '7.7.7.7', port: 0 } }, 'several lines')
  t.same(viaF('proto=https'), { client: peer }, 'no for: names no client')
  t.same(effectiveClient({ ip: '192.0.2.1', port: 1 }, { forwarded: 'for=198.51.100.1' }, trust), { client: { ip: '192.0.2.1', port: 1 } }, 'untrusted peer: ignored')
})

t.test('Forwarded that names no address: the peer stays the client, and the line says what was read', async t => {
  for (const [f, unreadable, ip] of [
    ['for=unknown', 'unknown', peer.ip],
    ['for=_hidden', '_hidden', peer.ip],
    ['for=_hidden, for=10.0.0.9', '_hidden', '10.0.0.9'],         // the last hop read stays the client
    ['for="192.0.2.1', 'for="192.0.2.1', peer.ip],
    ['for=1.1.1.1;for=2.2.2.2', 'for=1.1.1.1;for=2.2.2.2', peer.ip],
    ['for=192.0.2.1, proto=https', 'proto=https', peer.ip],      // the nearest hop names no one
    ['for=999.1.1.1', '999.1.1.1', peer.ip],
    ['for=[192.0.2.1]', '[192.0.2.1]', peer.ip],
    ['for=6.6.6.6, garbage', 'garbage', peer.ip],
    [`for="${'x'.repeat(100)}"`, 'x'.repeat(64), peer.ip],
  ] as const) {
    const r = viaF(f)
    t.equal(r.client.ip, ip, f)
    t.equal(r.unreadable, unreadable, f)
  }
  t.equal(viaF('for=unknown').client, peer, 'the peer itself, its port kept')
})

t.test('Forwarded and X-Forwarded-For together: Forwarded is walked when the last hops agree', async t => {
  const both = (forwarded: string, xff: string) => effectiveClient(peer, { forwarded, 'x-forwarded-for': xff }, trust)
  t.same(both('for=192.0.2.1, for=10.0.0.7', '192.0.2.99, 10.0.0.7'), { client: { ip: '192.0.2.1', port: 0 } }, 'agreeing: Forwarded')
  t.same(both('for="[2001:db8::1]:4711"', '2001:DB8::1'), { client: { ip: '2001:db8::1', port: 0 } }, 'the same address in two forms')
  t.same(both('for=192.0.2.1', '198.51.100.7'), { client: peer, unreadable: 'Forwarded 192.0.2.1, X-Forwarded-For 198.51.100.7' },
    'a forged one: neither is taken, both are said')
  t.same(both('for=unknown', '198.51.100.7'), { client: peer, unreadable: 'Forwarded unknown, X-Forwarded-For 198.51.100.7' })
  t.same(both('for=192.0.2.1', 'unknown'), { client: peer, unreadable: 'Forwarded 192.0.2.1, X-Forwarded-For unknown' })
  t.same(both('for="192.0.2.1', '198.51.100.7'), { client: peer, unreadable: 'Forwarded for="192.0.2.1, X-Forwarded-For 198.51.100.7' }, 'malformed Forwarded')
  t.same(both('for=unknown', 'unknown'), { client: peer, unreadable: 'unknown' }, 'neither an address')
  t.same(both('proto=https', '198.51.100.7'), { client: { ip: '198.51.100.7', port: 0 } }, 'Forwarded without for: X-Forwarded-For')
  t.same(effectiveClient(peer, { forwarded: 'proto=https' }, trust), { client: peer })
})

t.test('hostile Forwarded: bounded, never a throw', async t => {
  const elements = Array.from({ length: 1000 }, (_, i) => `for=10.${i >> 8}.${i & 255}.1;proto=http`).join(', ')
  const t0 = process.hrtime.bigint()
  t.same(viaF(`for=192.0.2.1, ${elements}`), { client: { ip: '10.3.200.1', port: 0 } }, '1000 elements: the walk stops after 32 hops (i = 999 − 31)')
  t.equal(forwardedHops(elements)!.length, 1000)
  const big = `for="${'a'.repeat(60_000)}"`
  t.same(viaF(big), { client: peer, unreadable: 'a'.repeat(64) }, 'a 60 KB element')
  t.same(viaF(`for=1.2.3.4;${'x=y;'.repeat(15_000)}`), { client: { ip: '1.2.3.4', port: 0 } }, '15000 pairs')
  t.same(viaF(`${'"'.repeat(60_001)}`), { client: peer, unreadable: '"'.repeat(64) }, '60 KB of quotes, one unclosed')
  t.same(viaF(`for=\\${'\\'.repeat(60_000)}`).unreadable?.length, 64, '60 KB of backslashes')
  t.same(viaF(`${','.repeat(60_000)}for=192.0.2.3`), { client: { ip: '192.0.2.3', port: 0 } }, '60 KB of empty elements')
  t.same(viaF(`for=${'1'.repeat(60_000)}`).unreadable, '1'.repeat(64))
  t.same(viaF(`${'for=192.0.2.1;'.repeat(5000)}`), { client: peer, unreadable: 'for=192.0.2.1;'.repeat(5000).slice(0, 64) }, 'for 5000 times in one element')
  t.same(viaF('for=192.0.2.1\x00'), { client: peer, unreadable: 'for=192.0.2.1\x00' }, 'NUL')
  // generous: linear parsing of all the above is a few ms; a quadratic one would take seconds
  t.ok(process.hrtime.bigint() - t0 < 3_000_000_000n, 'in well under 3 s')
})
