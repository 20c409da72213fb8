import t, { type Test } from 'tap'
import { renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { LeaseFiles } from '../../src/observe/lease-files.js'
import type { LeaseIndex } from '../../src/observe/leases.js'

const NOW = Date.UTC(2026, 10, 21, 10)
const dnsmasq = (host: string, mac = '02:00:00:00:00:05', ip = '10.0.0.5') => `${NOW / 1000 + 3600} ${mac} ${ip} ${host} *\n`

function setup(t: Test, files: Record<string, string>, names: string[] = Object.keys(files), checkMs = 60_000) {
  const dir = t.testdir(files)
  const indexes: LeaseIndex[] = []
  const log: { level: string; msg: string; file: unknown }[] = []
  const lf = new LeaseFiles({
    files: names.map(n => join(dir, n)), checkMs,
    onIndex: i => { indexes.push(i) },
    warn: (msg, f) => { log.push({ level: 'warn', msg, file: f.file }) },
    info: (msg, f) => { log.push({ level: 'info', msg, file: f.file }) },
  })
  t.teardown(() => lf.stop())
  const host = (ip = '10.0.0.5') => indexes.at(-1)?.at(ip, NOW)?.hostname
  return { dir, lf, indexes, log, host }
}

t.test('read at start from every file; a change is seen on the next check; an unchanged file is not re-read', async t => {
  const s = setup(t, {
    'dnsmasq.leases': dnsmasq('laptop-5'),
    'dhcpd.leases': 'lease 10.0.0.6 {\n  starts 6 2026/11/21 09:00:00;\n  ends 6 2026/11/21 11:00:00;\n  hardware ethernet 02:00:00:00:00:06;\n  client-hostname "build-6";\n}\n',
  })
  await s.lf.start()
  t.equal(s.indexes.length, 1)
  t.equal(s.host(), 'laptop-5')
  t.equal(s.host('10.0.0.6'), 'build-6')
  await s.lf.check()
  t.equal(s.indexes.length, 1, 'nothing changed: no new index')
  // dnsmasq writes a new file and renames it over the old one
  writeFileSync(join(s.dir, 'new'), dnsmasq('laptop-5b'))
  renameSync(join(s.dir, 'new'), join(s.dir, 'dnsmasq.leases'))
  await s.lf.check()
  t.equal(s.indexes.length, 2)
  t.equal(s.host(), 'laptop-5b')
  t.equal(s.host('10.0.0.6'), 'build-6', 'the other file\'s leases stay')
  t.same(s.log, [])
})

t.test('a missing or unreadable file, or one without a lease: a warning naming it, once; the last good leases stay', async t => {
  const s = setup(t, { 'a.leases': dnsmasq('laptop-5') }, ['a.leases', 'missing.leases'])
  await s.lf.start()
  t.equal(s.host(), 'laptop-5')
  t.match(s.log, [{ level: 'warn', msg: 'cannot read lease file; keeping its last good leases', file: join(s.dir, 'missing.leases') }])
  writeFileSync(join(s.dir, 'a.leases'), 'this is not a lease file\n')
  await s.lf.check()
  await s.lf.check()
  t.equal(s.host(), 'laptop-5', 'unparseable: old data kept')
  rmSync(join(s.dir, 'a.leases'))
  await s.lf.check()
  await s.lf.check()
  t.equal(s.host(), 'laptop-5', 'missing: old data kept')
  t.same(s.log.map(l => [l.level, l.msg, l.file]), [
    ['warn', 'cannot read lease file; keeping its last good leases', join(s.dir, 'missing.leases')],
    ['warn', 'no lease found in lease file; keeping its last good leases', join(s.dir, 'a.leases')],
    ['warn', 'cannot read lease file; keeping its last good leases', join(s.dir, 'a.leases')],
  ], 'each problem said once')
  writeFileSync(join(s.dir, 'missing.leases'), dnsmasq('phone-7', '02:00:00:00:00:07', '10.0.0.7'))
  writeFileSync(join(s.dir, 'a.leases'), '')
  await s.lf.check()
  t.equal(s.host('10.0.0.7'), 'phone-7', 'a file that appears is read')
  t.equal(s.host(), 'laptop-5', 'read empty once: kept (dnsmasq rewrites its file in place: truncated, then written)')
  await s.lf.check()
  t.equal(s.host(), undefined, 'empty at the next check too: no leases (dnsmasq empties it when all have expired)')
  t.same(s.log.slice(3).map(l => [l.level, l.msg]), [['info', 'lease file readable again'], ['info', 'lease file readable again']])
  // caught between the truncate and the write: the names stay, and the file's new content is read next
  writeFileSync(join(s.dir, 'a.leases'), dnsmasq('laptop-5c'))
  await s.lf.check()
  t.equal(s.host(), 'laptop-5c')
  writeFileSync(join(s.dir, 'a.leases'), '')
  await s.lf.check()
  t.equal(s.host(), 'laptop-5c', 'half way through a rewrite: kept')
  writeFileSync(join(s.dir, 'a.leases'), dnsmasq('laptop-5d'))
  await s.lf.check()
  t.equal(s.host(), 'laptop-5d', 'the rewrite done: its leases')
  // a Kea file down to its header (no lease held): the old leases go (at the second read), with no warning
  writeFileSync(join(s.dir, 'missing.leases'), 'address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state\n')
  await s.lf.check()
  await s.lf.check()
  t.equal(s.host('10.0.0.7'), undefined, 'emptied, not kept')
  t.equal(s.log.length, 5, 'nothing to warn of')
})

t.test('the timer re-reads; one check at a time; stopped: no more indexes', async t => {
  const s = setup(t, { 'a.leases': dnsmasq('laptop-5') }, undefined, 100)
  await s.lf.start()
  writeFileSync(join(s.dir, 'a.leases'), dnsmasq('laptop-5c'))
  for (let i = 0; i < 100 && s.host() !== 'laptop-5c'; i++) await new Promise(r => setTimeout(r, 20))
  t.equal(s.host(), 'laptop-5c', 'seen by the periodic check')
  const a = s.lf.check()
  t.equal(s.lf.check(), a, 'a check while one runs joins it')
  await a
  writeFileSync(join(s.dir, 'a.leases'), dnsmasq('laptop-5d'))
  const n = s.indexes.length
  const pending = s.lf.check()
  s.lf.stop()
  await pending
  t.equal(s.indexes.length, n, 'a check that ends after stop() delivers nothing')
})

t.test('stopped before the first read ends: no timer', async t => {
  const s = setup(t, { 'a.leases': dnsmasq('laptop-5') })
  const started = s.lf.start()
  s.lf.stop()
  await started
  t.equal(s.indexes.length, 0)
})

t.test('a lease file that is a device: refused with a warning before a byte is read, the others still read', async t => {
  const s = setup(t, { 'dnsmasq.leases': dnsmasq('laptop-5') })
  const lf = new LeaseFiles({
    files: [join(s.dir, 'dnsmasq.leases'), '/dev/zero'], checkMs: 60_000,
    onIndex: i => { s.indexes.push(i) },
    warn: (msg, f) => { s.log.push({ level: 'warn', msg, file: `${String(f.file)}: ${String(f.error)}` }) },
    info: () => {},
  })
  t.teardown(() => lf.stop())
  await lf.start()
  t.equal(s.host(), 'laptop-5', 'the regular file is read')
  t.match(s.log, [{ level: 'warn', msg: 'cannot read lease file; keeping its last good leases', file: /^\/dev\/zero: not a regular file \(a FIFO, socket or device/ }])
})
