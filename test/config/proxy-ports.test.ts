import t from 'tap'
import { parseConfigText } from '../../src/config/load.js'
import { isPortOrRange } from '../../src/config/schema.js'
import { detailsOf } from '../fixtures/config-errors.js'

t.test('proxy.httpPorts: ports and LOW-HIGH ranges; the defaults', async t => {
  const d = parseConfigText('{}\n', 'd.yaml').proxy
  t.same(d.httpPorts, [80, 443, 280, 488, 591, 777, '1025-65535'], "squid's Safe_ports without 21, 70 and 210")
  t.equal(d.maxConnectionsPerAddress, 1024)
  t.same(parseConfigText('proxy: { httpPorts: [8080, "1-1024"], maxConnectionsPerAddress: 8 }\n', 'p.yaml').proxy.httpPorts, [8080, '1-1024'])
  for (const ok of [1, 65535, '1-65535', '80-80']) t.ok(isPortOrRange(ok), String(ok))
  for (const bad of [0, 65536, 1.5, '80', '0-5', '9-3', '1-65536', '1-2-3', ' 1-2', true, null, [80]]) t.notOk(isPortOrRange(bad), JSON.stringify(bad))
  t.same(detailsOf(() => parseConfigText('proxy: { httpPorts: [80, 0, "90-80", x], maxConnectionsPerAddress: 0 }\n', 'b.yaml')), [
    'b.yaml:1: proxy.httpPorts[1]: 0 is not a port or a range of ports; write e.g. 80 or 1025-65535',
    'b.yaml:1: proxy.httpPorts[2]: "90-80" is not a port or a range of ports; write e.g. 80 or 1025-65535',
    'b.yaml:1: proxy.httpPorts[3]: "x" is not a port or a range of ports; write e.g. 80 or 1025-65535',
    'b.yaml:1: proxy.maxConnectionsPerAddress: 0 is out of range; must be at least 1',
  ])
})
