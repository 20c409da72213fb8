import t from 'tap'
import { join } from 'node:path'
import { ecsMac, LeaseIndex, loadLeases, parseDnsmasq, parseIscDhcpd, parseKeaCsv, parseLeases } from '../../src/observe/leases.js'

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
    { ip: '10.0.0.5', mac: 'AA-BB-CC-DD-EE-01', hostname: 'laptop-7', start: -Infinity, end: T + 3_600_000 },
    { ip: '10.0.0.6', mac: 'AA-BB-CC-DD-EE-02', hostname: undefined, start: -Infinity, end: Infinity },
    { ip: 'fd00::5', mac: undefined, hostname: 'phone-3', start: -Infinity, end: T + 3_600_000 },
  ])
})

t.test('ISC dhcpd', async t => {
  const l = parseIscDhcpd(isc)
  t.same(l.map(x => [x.ip, x.mac, x.hostname]), [['10.0.0.5', '02-00-00-00-00-0A', 'old-owner'], ['10.0.0.5', '02-00-00-00-00-0B', 'new-owner'], ['10.0.0.7', undefined, undefined]])
  t.equal(l[1]!.start, Date.UTC(2026, 10, 21, 9, 30))
  t.same([l[2]!.start, l[2]!.end], [T - 60_000, Infinity])
  t.same(parseIscDhcpd('lease 10.0.0.1 {\n  starts garbage;\n}\n'), [{ ip: '10.0.0.1', mac: undefined, hostname: undefined, start: -Infinity, end: Infinity }])
})

t.test('ISC dhcpd for DHCPv6 (dhcpd6.leases): each iaaddr, named by its DDNS name when it has one', async t => {
  const isc6 = `# The format of this file is documented in the dhcpd.leases(5) manual page.
authoring-byte-order little-endian;
server-duid "\\000\\001\\000\\001";
ia-na "\\001\\000\\000\\000\\000\\001" {
  cltt 6 2026/11/21 09:30:00;
  iaaddr 2001:db8:1:2::30 {
    binding state active;
    preferred-life 375;
    max-life 600;
    ends 6 2026/11/21 21:30:00;
    set ddns-fwd-name = "ws-30.corp.example.";
  }
}
ia-na "\\001\\000\\000\\000\\000\\002" {
  cltt 6 2026/11/21 09:30:00;
  iaaddr 2001:DB8:1:2:0:0:0:31 {
    binding state active;
    ends never;
  }
}
`
  const l = parseLeases(isc6)
  t.same(l, [
    { ip: '2001:db8:1:2::30', mac: undefined, hostname: 'ws-30.corp.example', start: -Infinity, end: Date.UTC(2026, 10, 21, 21, 30) },
    { ip: '2001:DB8:1:2:0:0:0:31', mac: undefined, hostname: undefined, start: -Infinity, end: Infinity },
  ])
  const idx = new LeaseIndex(l)
  t.equal(idx.at('2001:db8:1:2::30', T)?.hostname, 'ws-30.corp.example')
  t.ok(idx.at('2001:db8:1:2::31', T), 'an address written out in full is found by the form a line names it in')
})

t.test('the index is keyed by the canonical form of each address (as lines name clients)', async t => {
  const idx = new LeaseIndex(parseDnsmasq(`0 aa:bb:cc:dd:ee:03 2001:DB8:1:2:0:0:0:21 upper-6 *\n0 aa:bb:cc:dd:ee:04 ::ffff:10.0.0.44 mapped-4 *\n`))
  t.equal(idx.at('2001:db8:1:2::21', T)?.hostname, 'upper-6')
  t.equal(idx.at('10.0.0.44', T)?.hostname, 'mapped-4')
  t.equal(idx.get('2001:db8:1:2::21')?.length, 1)
})

t.test('Kea CSV', async t => {
  t.same(parseKeaCsv(kea), [
    { ip: '10.0.0.8', mac: '02-00-00-00-00-0C', hostname: 'build-agent.corp.example', start: T - 1_800_000, end: T + 1_800_000 },
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

t.test('client.mac in the notation ECS gives (RFC 7042: upper case, hyphens)', async t => {
  t.equal(ecsMac('aa:bb:cc:dd:ee:0f'), 'AA-BB-CC-DD-EE-0F')
  t.equal(ecsMac('AA-bb-cc-dd-ee-0f'), 'AA-BB-CC-DD-EE-0F')
  t.equal(ecsMac('2:0:5e:10:0:a'), '02-00-5E-10-00-0A', 'ISC dhcpd leaves out leading zeros')
  t.equal(ecsMac('02:00:5e:ff:fe:10:00:0a'), '02-00-5E-FF-FE-10-00-0A', 'EUI-64')
  for (const bad of ['aa:bb:cc:dd:ee', 'aa:bb:cc:dd:ee:ff:00', 'aa:bb:cc-dd:ee:ff', 'aa:bb:cc:dd:ee:fg', '001:bb:cc:dd:ee:ff', 'aabb.ccdd.eeff', '', '*', '1234567'])
    t.equal(ecsMac(bad), undefined, bad)
  t.equal(ecsMac(undefined), undefined)
  const l = parseIscDhcpd('lease 10.0.0.3 {\n  hardware ethernet 2:0:5e:10:0:a;\n}\n')
  t.equal(l[0]!.mac, '02-00-5E-10-00-0A')
  t.equal(parseKeaCsv('address,hwaddr,expire\n10.0.0.4,,100\n10.0.0.5,not-a-mac,100\n').filter(x => x.mac !== undefined).length, 0, 'Kea rows without a MAC')
})

t.test('files', async t => {
  const dir = t.testdir({ 'dnsmasq.leases': dnsmasq, 'dhcpd.leases': isc, 'kea-leases4.csv': kea })
  const idx = await loadLeases(['dnsmasq.leases', 'dhcpd.leases', 'kea-leases4.csv'].map(f => join(dir, f)))
  t.equal(idx.at('10.0.0.8', T)?.mac, '02-00-00-00-00-0C')
  t.equal(idx.at('10.0.0.6', T)?.mac, 'AA-BB-CC-DD-EE-02')
  await t.rejects(loadLeases([join(dir, 'missing')]), { message: `${join(dir, 'missing')}: ENOENT: no such file or directory` }, 'named once, first')
})

t.test('a lease let go early no longer names its machine after that (dhcpd and Kea append the change to their files)', async t => {
  // dhcpd: the lease, then the same lease written again at its release (its end now the release's time)
  const granted = Date.UTC(2026, 10, 21, 9)
  const released = Date.UTC(2026, 10, 21, 9, 30)
  const isc = (ends: number, state: string) => `lease 10.0.0.13 {\n  starts epoch ${s(granted)};\n  ends epoch ${s(ends)};\n  binding state ${state};\n  next binding state free;\n  hardware ethernet 52:54:00:ee:00:13;\n  client-hostname "echo";\n}\n`
  const idx = new LeaseIndex(parseIscDhcpd(isc(granted + 3_600_000, 'active') + isc(released, 'free')))
  t.equal(idx.at('10.0.0.13', released - 60_000)?.hostname, 'echo', 'held until its release')
  t.equal(idx.at('10.0.0.13', released + 60_000), undefined, 'after it: nobody (was "echo" for the rest of the hour)')
  // then another machine: the address is its from its start
  const other = `lease 10.0.0.13 {\n  starts epoch ${s(released + 600_000)};\n  ends epoch ${s(released + 4_200_000)};\n  binding state active;\n  client-hostname "foxtrot";\n}\n`
  const idx2 = new LeaseIndex(parseIscDhcpd(isc(granted + 3_600_000, 'active') + other))
  t.equal(idx2.at('10.0.0.13', released)?.hostname, 'echo')
  t.equal(idx2.at('10.0.0.13', released + 700_000)?.hostname, 'foxtrot', 'the earlier lease ends where the next begins')
  // Kea: the lease, then its release (a lifetime of 0, expiring at the release), or a decline
  const head = 'address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state\n'
  const row = (lifetime: number, expire: number, state = 0) => `10.0.0.6,02:00:00:00:00:06,,${lifetime},${s(expire)},1,0,0,charlie-two.lan,${state}\n`
  const kea = new LeaseIndex(parseKeaCsv(head + row(3600, granted + 3_600_000) + row(0, released)))
  t.equal(kea.at('10.0.0.6', released - 60_000)?.hostname, 'charlie-two.lan')
  t.equal(kea.at('10.0.0.6', released + 60_000), undefined, 'released: nobody from then on')
  t.same(parseKeaCsv(head + row(3600, granted + 3_600_000, 1)), [], 'a declined address names nobody')
})
