import t from 'tap'
import { parseConfigText } from '../../src/config/load.js'
import { detailsOf } from '../fixtures/config-errors.js'

const FIX = 'give each listener its own port (or address)'

t.test('listeners on one address and port are config errors naming both paths, as serve would fail (address in use)', async t => {
  const text = [
    'dns: { listen: ["127.0.0.1:33010"] }',                 // 1
    'proxy: { listen: ["127.0.0.1:33010"] }',               // 2
    'admin: { listen: "127.0.0.1:33010" }',                 // 3
    'sinkhole: { listen: ["127.0.0.1:33010"] }',            // 4
  ].join('\n')
  t.same(detailsOf(() => parseConfigText(text, 'c.yaml')), [
    `c.yaml:2: proxy.listen[0]: 127.0.0.1:33010 clashes with dns.listen[0] (127.0.0.1:33010): the same address and port; ${FIX}`,
    `c.yaml:3: admin.listen: 127.0.0.1:33010 clashes with dns.listen[0] (127.0.0.1:33010): the same address and port; ${FIX}`,
    `c.yaml:4: sinkhole.listen[0]: 127.0.0.1:33010 clashes with dns.listen[0] (127.0.0.1:33010): the same address and port; ${FIX}`,
  ])
  // one address written two ways, twice in one list; beside other errors
  t.same(detailsOf(() => parseConfigText('proxy: { listen: ["[::1]:8080", "[0:0:0:0:0:0:0:1]:8080"], connectPorts: [0] }\n', 'p.yaml')), [
    'p.yaml:1: proxy.connectPorts[0]: 0 is not a port (1-65535)',
    `p.yaml:1: proxy.listen[1]: [0:0:0:0:0:0:0:1]:8080 clashes with proxy.listen[0] ([::1]:8080): the same address and port; ${FIX}`,
  ])
})

t.test('a wildcard takes its port on every address of its family; a proxy, admin or capture :: on IPv4 too, a DNS :: not', async t => {
  const clashes = (text: string) => detailsOf(() => parseConfigText(text, 'w.yaml'))
  t.same(clashes('dns: { listen: ["0.0.0.0:5353"] }\nproxy: { listen: ["192.0.2.1:5353"] }\n'),
    [`w.yaml:2: proxy.listen[0]: 192.0.2.1:5353 clashes with dns.listen[0] (0.0.0.0:5353): 0.0.0.0 takes port 5353 on every IPv4 address; ${FIX}`])
  t.same(clashes('dns: { listen: ["[::]:5353"] }\nproxy: { listen: ["[::1]:5353"] }\n'),
    [`w.yaml:2: proxy.listen[0]: [::1]:5353 clashes with dns.listen[0] ([::]:5353): :: takes port 5353 on every IPv6 address; ${FIX}`])
  t.same(clashes('sinkhole: { listen: ["[::]:443", "0.0.0.0:443"] }\n'),
    [`w.yaml:1: sinkhole.listen[1]: 0.0.0.0:443 clashes with sinkhole.listen[0] ([::]:443): :: takes port 443 on every IPv4 address too (dual-stack); ${FIX}`])
  t.same(clashes('proxy: { listen: ["127.0.0.1:8080", "[::]:8080"] }\n'),
    [`w.yaml:1: proxy.listen[1]: [::]:8080 clashes with proxy.listen[0] (127.0.0.1:8080): :: takes port 8080 on every IPv4 address too (dual-stack); ${FIX}`])
  // an IPv4-mapped address binds its IPv4 address
  t.same(clashes('dns: { listen: ["127.0.0.1:5353"] }\nadmin: { listen: "[::ffff:127.0.0.1]:5353" }\n'),
    [`w.yaml:2: admin.listen: [::ffff:127.0.0.1]:5353 clashes with dns.listen[0] (127.0.0.1:5353): the same address and port; ${FIX}`])
})

t.test('a listener clashing with a default is said where the file sets one', async t => {
  t.same(detailsOf(() => parseConfigText('proxy: { listen: ["127.0.0.1:9153"] }\n', 'd.yaml')),
    [`d.yaml:1: proxy.listen[0]: 127.0.0.1:9153 clashes with admin.listen (127.0.0.1:9153, the default): the same address and port; ${FIX}`])
  t.same(detailsOf(() => parseConfigText('admin: { listen: "0.0.0.0:1053" }\n', 'd.yaml')),
    [`d.yaml:1: admin.listen: 0.0.0.0:1053 clashes with dns.listen[0] (127.0.0.1:1053, the default): 0.0.0.0 takes port 1053 on every IPv4 address; ${FIX}`])
  t.same(detailsOf(() => parseConfigText('dns: {}\nsinkhole: { listen: ["127.0.0.1:3128"] }\n', 'd.yaml')),
    [`d.yaml:2: sinkhole.listen[0]: 127.0.0.1:3128 clashes with proxy.listen[0] (127.0.0.1:3128, the default): the same address and port; ${FIX}`])
})

t.test('what can listen together is valid: other ports or addresses, DNS on 0.0.0.0 and [::], port 0, names, listeners turned off', async t => {
  for (const text of [
    '',
    'dns: { listen: ["0.0.0.0:53", "[::]:53"] }\nproxy: { listen: ["0.0.0.0:3128"] }\nadmin: { listen: "0.0.0.0:9153" }\n',
    'dns: { listen: ["127.0.0.1:53", "127.0.0.2:53", "[::1]:53", "[fd00::1]:53"] }\n',
    'dns: { listen: ["[::]:53"] }\nsinkhole: { listen: ["192.0.2.10:53"] }\n',
    'dns: { listen: ["127.0.0.1:0"] }\nproxy: { listen: ["127.0.0.1:0"] }\nadmin: { listen: "127.0.0.1:0" }\n',
    'proxy: { listen: ["localhost:1053"] }\n',
    'admin: null\nproxy: { listen: ["127.0.0.1:9153"] }\n',
    'admin: { listen: null }\nproxy: { listen: ["127.0.0.1:9153"] }\n',
    'dns: { listen: [] }\nproxy: { listen: ["127.0.0.1:1053"] }\n',
  ]) {
    t.doesNotThrow(() => parseConfigText(text, 'ok.yaml'), JSON.stringify(text))
  }
  // a part the schema refuses is not compared (its own error says why)
  t.same(detailsOf(() => parseConfigText('dns: 5\nproxy: { listen: "127.0.0.1:1053" }\nadmin: 3\n', 'x.yaml')).map(d => d.replace(/: expected .*/, '')),
    ['x.yaml:1: dns', 'x.yaml:2: proxy.listen', 'x.yaml:3: admin'])
})
