import t from 'tap'
import dnsPacket from 'dns-packet'
import { optRr } from '../fixtures/dig.js'
import { scanResponse } from '../../src/dns/scan.js'

const resp = (p: Partial<dnsPacket.Packet>): Buffer =>
  dnsPacket.encode({ type: 'response', id: 1, flags: 0x8180, questions: [{ type: 'A', name: 'q.test' }], ...p })

/** SVCB/HTTPS rdata: priority, target name, no params (dns-packet has no encoder for them). */
const svcb = (priority: number, target: string): Buffer => {
  const out = [priority >> 8, priority & 255]
  for (const l of target.split('.').filter(Boolean)) out.push(l.length, ...Buffer.from(l))
  out.push(0)
  return Buffer.from(out)
}

t.test('collects CNAME, DNAME, HTTPS/SVCB and SRV targets, TTLs and addresses', async t => {
  const b = resp({
    answers: [
      { type: 'CNAME', name: 'q.test', ttl: 300, data: 'c.Test' },
      { type: 'A', name: 'c.test', ttl: 60, data: '192.0.2.1' },
      { type: 'AAAA', name: 'c.test', ttl: 120, data: '2001:db8::1' },
      { type: 'AAAA', name: 'c.test', ttl: 120, data: '1:0:2:3:4:5:6:7' },
      { type: 'AAAA', name: 'c.test', ttl: 120, data: '::' },
      { type: 'UNKNOWN_65', name: 'c.test', ttl: 90, data: svcb(1, 'svc.ngrok.io') } as unknown as dnsPacket.Answer,
      { type: 'UNKNOWN_64', name: 'c.test', ttl: 90, data: svcb(0, '') } as unknown as dnsPacket.Answer,
      { type: 'DNAME', name: 'd.test', ttl: 90, data: 'Tunnels.ngrok-free.app' },
      { type: 'SRV', name: '_x._tcp.c.test', ttl: 90, data: { priority: 1, weight: 2, port: 443, target: 'edge.ngrok-agent.com' } },
      { type: 'SRV', name: '_y._tcp.c.test', ttl: 90, data: { priority: 0, weight: 0, port: 0, target: '.' } },
      { type: 'MX', name: 'c.test', ttl: 90, data: { preference: 10, exchange: 'mx.ngrok.io' } },
    ],
    additionals: [optRr(1232)],
  })
  const s = scanResponse(b, true)!
  t.same(s.targets, ['c.test', 'svc.ngrok.io', 'tunnels.ngrok-free.app', 'edge.ngrok-agent.com'],
    'SVCB target "." is the owner itself and SRV target "." no service: neither is a target; an MX exchange is not one')
  t.same(s.addresses, ['192.0.2.1', '2001:db8::1', '1:0:2:3:4:5:6:7', '::'])
  t.equal(s.minTtl, 60)
  t.equal(s.ttlOffsets.length, 11, 'OPT has no TTL to count down')
  t.equal(s.negativeTtl, -1)
  t.equal(s.rcode, 0)
  t.notOk(s.truncated)
  t.same(scanResponse(b)!.addresses, [], 'addresses only when asked')
})

t.test('negative answers: the SOA gives min(TTL, MINIMUM)', async t => {
  const soa = (ttl: number, minimum: number): dnsPacket.Answer => ({
    type: 'SOA', name: 'test', ttl,
    data: { mname: 'ns.test', rname: 'h.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum },
  })
  const nx = scanResponse(resp({ flags: 0x8183, authorities: [soa(3600, 30)] }))!
  t.equal(nx.rcode, 3)
  t.equal(nx.negativeTtl, 30)
  t.equal(nx.minTtl, 3600)
  t.equal(scanResponse(resp({ authorities: [soa(20, 300)] }))!.negativeTtl, 20)
  const noSoa = scanResponse(resp({ flags: 0x8183 }))!
  t.equal(noSoa.negativeTtl, -1)
  t.equal(noSoa.minTtl, -1)
  t.ok(scanResponse(resp({ flags: 0x8380 }))!.truncated)
})

t.test('malformed replies give undefined', async t => {
  const good = resp({ answers: [{ type: 'CNAME', name: 'q.test', ttl: 1, data: 'c.test' }] })
  t.equal(scanResponse(Buffer.alloc(4)), undefined, 'short header')
  t.equal(scanResponse(good.subarray(0, 16)), undefined, 'cut question')
  t.equal(scanResponse(good.subarray(0, 28)), undefined, 'cut record header')
  t.equal(scanResponse(good.subarray(0, good.length - 1)), undefined, 'cut rdata')
  const badTarget = Buffer.from(good)
  badTarget[badTarget.length - 8] = 0x80                       // CNAME target with a bad label type
  t.equal(scanResponse(badTarget), undefined, 'bad CNAME target')
  const longTarget = Buffer.from(good)
  longTarget.writeUInt16BE(3, longTarget.length - 10)         // rdlength shorter than the name
  t.equal(scanResponse(Buffer.concat([longTarget.subarray(0, longTarget.length - 5)])), undefined, 'target runs past its rdata')
  const soa = resp({ flags: 0x8183, authorities: [{ type: 'SOA', name: 'test', ttl: 1, data: { mname: 'ns.test', rname: 'h.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 1 } }] })
  const cutSoa = Buffer.from(soa)
  t.equal(cutSoa.readUInt16BE(cutSoa.length - 39), 37, 'rdlength of the SOA')
  cutSoa.writeUInt16BE(33, cutSoa.length - 39)
  t.equal(scanResponse(cutSoa.subarray(0, cutSoa.length - 4)), undefined, 'SOA rdata too short')
  const badSoaName = Buffer.from(soa)
  badSoaName[badSoaName.length - 37] = 0x80
  t.equal(scanResponse(badSoaName), undefined, 'SOA with a bad name')
  const srv = resp({ answers: [{ type: 'SRV', name: 'q.test', ttl: 1, data: { priority: 0, weight: 0, port: 1, target: 's.test' } }] })
  t.equal(srv.readUInt16BE(srv.length - 16), 14, 'rdlength of the SRV')
  t.same(scanResponse(srv)!.targets, ['s.test'])
  const shortSrv = Buffer.from(srv)
  shortSrv.writeUInt16BE(4, shortSrv.length - 16)
  t.equal(scanResponse(shortSrv), undefined, 'SRV rdata too short for its target')
})
