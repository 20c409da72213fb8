import t from 'tap'
import { join } from 'node:path'
import { LeaseIndex, loadLeases, parseDnsmasq, parseIscDhcpd, parseKeaCsv, parseLeases } from '../../src/observe/leases.js'

const T = Date.UTC(2026, 10, 21, 10, 0, 0)
const s = (ms: number) => Math.floor(ms / 1000)

const dnsmasq = [
  `${s(T + 3_600_000)} AA:BB:CC:DD:EE:01 10.0.0.5 laptop-7 01:aa:bb:cc:dd:ee:01`,
  `0 aa:bb:cc:dd:ee:02 10.0.0.6 * *`,
  'duid 00:01:00:01:2a:2b:2c:2d:aa:bb:cc:dd:ee:ff',
  `${s(T + 3_600_000)} 1234567 fd00::5 phone-3 00:01:00:01:aa`,
  '',
].join('\n')

const isc = `# The format of this file is documented in the dhcpd.leases(5) manual page.
lease 10.0.0.5 {
  starts 5 2026/11/20 08:00:00;
  ends 5 2026/11/21 09:00:00;
  binding state free;
  hardware ethernet 02:00:00:00:00:0a;
  client-hostname "old-owner";
}
lease 10.0.0.5 {
  starts 6 2026/11/21 09:30:00;
  ends 6 2026/11/21 21:30:00;
  binding state active;
  hardware ethernet 02:00:00:00:00:0B;
  uid "\\001\\002";
  client-hostname "new-owner";
}
lease 10.0.0.7 {
  starts epoch ${s(T - 60_000)};
  ends never;
}
`

const kea = `address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id
10.0.0.8,02:00:00:00:00:0C,01:02,3600,${s(T + 1_800_000)},1,0,0,build-agent.corp.example.,0,,0
10.0.0.9,,,3600,${s(T + 1_800_000)},1,0,0,,0,,0
not-a-row
`

t.test('dnsmasq', async t => {
  t.same(parseDnsmasq(dnsmasq), [
    { ip: '10.0.0.5', mac: 'aa:bb:cc:dd:ee:01', hostname: 'laptop-7', start: -Infinity, end: T + 3_600_000 },
    { ip: '10.0.0.6', mac: 'aa:bb:cc:dd:ee:02', hostname: undefined, start: -Infinity, end: Infinity },
    { ip: 'fd00::5', mac: undefined, hostname: 'phone-3', start: -Infinity, end: T + 3_600_000 },
  ])
})

t.test('ISC dhcpd', async t => {
  const l = parseIscDhcpd(isc)
  t.same(l.map(x => [x.ip, x.mac, x.hostname]), [['10.0.0.5', '02:00:00:00:00:0a', 'old-owner'], ['10.0.0.5', '02:00:00:00:00:0b', 'new-owner'], ['10.0.0.7', undefined, undefined]])
  t.equal(l[1]!.start, Date.UTC(2026, 10, 21, 9, 30))
  t.same([l[2]!.start, l[2]!.end], [T - 60_000, Infinity])
  t.same(parseIscDhcpd('lease 10.0.0.1 {\n  starts garbage;\n}\n'), [{ ip: '10.0.0.1', mac: undefined, hostname: undefined, start: -Infinity, end: Infinity }])
})

t.test('Kea CSV', async t => {
  t.same(parseKeaCsv(kea), [
    { ip: '10.0.0.8', mac: '02:00:00:00:00:0c', hostname: 'build-agent.corp.example', start: T - 1_800_000, end: T + 1_800_000 },
    { ip: '10.0.0.9', mac: undefined, hostname: undefined, start: T - 1_800_000, end: T + 1_800_000 },
  ])
  t.same(parseKeaCsv('address,expire\n10.0.0.1,100\n'), [{ ip: '10.0.0.1', mac: undefined, hostname: undefined, start: 100_000, end: 100_000 }], 'no valid_lifetime column')
})

t.test('detection and the address as of a time', async t => {
  t.equal(parseLeases(kea).length, 2)
  t.equal(parseLeases(isc).length, 3)
  t.equal(parseLeases(dnsmasq).length, 3)
  const idx = new LeaseIndex([...parseLeases(isc), ...parseLeases(dnsmasq)])
  t.equal(idx.at('10.0.0.5', Date.UTC(2026, 10, 20, 12))?.hostname, 'old-owner')
  t.equal(idx.at('10.0.0.5', T + 60 * 60_000)?.hostname, 'new-owner', 'the later lease wins where both cover the time')
  t.equal(idx.at('10.0.0.5', T + 2 * 3_600_000)?.hostname, 'new-owner')
  t.equal(idx.at('10.0.0.5', Date.UTC(2026, 10, 22)), undefined, 'after every lease ended')
  t.equal(idx.at('192.0.2.1', T), undefined)
})

t.test('files', async t => {
  const dir = t.testdir({ 'dnsmasq.leases': dnsmasq, 'dhcpd.leases': isc, 'kea-leases4.csv': kea })
  const idx = await loadLeases(['dnsmasq.leases', 'dhcpd.leases', 'kea-leases4.csv'].map(f => join(dir, f)))
  t.equal(idx.at('10.0.0.8', T)?.mac, '02:00:00:00:00:0c')
  t.equal(idx.at('10.0.0.6', T)?.mac, 'aa:bb:cc:dd:ee:02')
  await t.rejects(loadLeases([join(dir, 'missing')]), { code: 'ENOENT' })
})
