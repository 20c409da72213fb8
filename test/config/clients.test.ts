import t from 'tap'
import { join } from 'node:path'
import { AppError } from '../../src/errors.js'
import { builtinConfig, parseConfigText } from '../../src/config/load.js'

t.test('clients: off by default', async t => {
  t.same(builtinConfig().clients, { leases: [], leaseCheck: 5000, ptr: false, ptrTtl: 3_600_000, ptrMaxEntries: 10_000 })
})

t.test('clients: lease paths resolve from the config file, durations in ms', async t => {
  const dir = t.testdir({})
  const c = parseConfigText('clients: { leases: [dnsmasq.leases, /var/lib/dhcp/dhcpd.leases], leaseCheck: 2s, ptr: true, ptrTtl: 10m, ptrMaxEntries: 500 }\n', join(dir, 'tg.yaml'))
  t.same(c.clients, { leases: [join(dir, 'dnsmasq.leases'), '/var/lib/dhcp/dhcpd.leases'], leaseCheck: 2000, ptr: true, ptrTtl: 600_000, ptrMaxEntries: 500 })
  t.ok(Object.isFrozen(c.clients.leases))
})

t.test('clients: every mistake named with its line, unknown keys rejected', async t => {
  const text = [
    'clients:',
    '  leases: dnsmasq.leases',       // 2
    '  leaseCheck: 10ms',             // 3
    '  ptr: yes please',              // 4
    '  ptrTtl: 0s',                   // 5
    '  ptrMaxEntries: 0',             // 6
    '  ptrs: true',                   // 7
  ].join('\n')
  let details: string[] = []
  try { parseConfigText(text, 'c.yaml') } catch (e) { details = [...(e as AppError).details] }
  t.equal(details.length, 6, details.join('\n'))
  t.match(details.join('\n'), /c\.yaml:2: clients\.leases: expected a list of file path entries, got a string \("dnsmasq\.leases"\)/)
  t.match(details.join('\n'), /c\.yaml:3: clients\.leaseCheck: check lease files at most every 100ms/)
  t.match(details.join('\n'), /c\.yaml:4: clients\.ptr: /)
  t.match(details.join('\n'), /c\.yaml:5: clients\.ptrTtl: cache PTR names for at least 1s/)
  t.match(details.join('\n'), /c\.yaml:6: clients\.ptrMaxEntries: /)
  t.match(details.join('\n'), /c\.yaml:7: .*unknown key "ptrs"/)
})
