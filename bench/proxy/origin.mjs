// Loopback origin for the proxy bench. Three listeners on one address:
//   --tls-port  : a real TLS server (TLS 1.2/1.3, the given key/cert), echoes after the handshake.
//   --hello-port: reads one TLS record (the ClientHello) and answers with the first flight the
//                 real TLS server above sent to such a hello (captured once at start), then waits
//                 for the client to close. Cheap, so the proxy (not the origin) is what is measured.
//   --app-port  : reads one TLS record (ClientHello), then a 9-byte command:
//                 'D' + u64 N: sends N bytes, then FIN (bulk download)
//                 'U' + u64 N: reads N bytes, answers "N\n", then FIN (bulk upload)
//                 'E' + u64 0: echoes everything until the client closes (soak)
//   --dns-port  : (udp) the name the clients send as SNI: A <sni> → the address, TTL 300;
//                 anything else NXDOMAIN/NODATA with an SOA (kept 300 s). tunnelguard resolves an
//                 SNI that is not the CONNECT host (an address here) for its CNAME chain.
// usage: node origin.mjs --addr 127.0.0.1 --tls-port P --hello-port P --app-port P --dns-port P --key K --cert C --sni NAME
import dgram from 'node:dgram'
import fs from 'node:fs'
import dnsPacket from 'dns-packet'
import net from 'node:net'
import tls from 'node:tls'
import { clientHello, loopbackOnly, parseArgs, recordEnd } from './tls-bytes.mjs'

const a = parseArgs(process.argv.slice(2))
const addr = a.addr ?? '127.0.0.1'
loopbackOnly(addr)
const MAX_HELLO = 16 * 1024 + 5
const CHUNK = Buffer.alloc(256 * 1024, 0x61)

function listen (srv, port) {
  return new Promise((resolve, reject) => {
    srv.on('error', reject)
    srv.listen({ host: addr, port: +port, backlog: 4096 }, () => { srv.off('error', reject); srv.on('error', (e) => console.error('server error', e.message)); resolve() })
  })
}

// collects one TLS record, then calls next(rest) with the bytes after it
function afterHello (sock, next) {
  let buf = Buffer.alloc(0)
  const onData = (d) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d
    const n = recordEnd(buf)
    if (n === 0) { if (buf.length > MAX_HELLO) sock.destroy(); return }
    sock.off('data', onData)
    next(buf.subarray(n))
  }
  sock.on('data', onData)
}

const tlsSrv = tls.createServer({ key: fs.readFileSync(a.key), cert: fs.readFileSync(a.cert) }, (s) => {
  s.on('error', () => {})
  s.pipe(s)
})
tlsSrv.on('tlsClientError', () => {})
await listen(tlsSrv, a['tls-port'])

// capture the real server's answer to a real ClientHello
const hello = await clientHello(a.sni ?? 'origin.test')
const flight = await new Promise((resolve, reject) => {
  const s = net.connect(+a['tls-port'], addr, () => s.write(hello))
  const parts = []
  let timer
  s.on('data', (d) => { parts.push(d); clearTimeout(timer); timer = setTimeout(() => { s.destroy(); resolve(Buffer.concat(parts)) }, 100) })
  s.on('error', reject)
  setTimeout(() => reject(new Error('no answer from the TLS origin')), 3000).unref()
})

const helloSrv = net.createServer((s) => {
  s.setNoDelay(true)
  s.on('error', () => {})
  afterHello(s, () => { s.write(flight); s.resume() })
  s.on('end', () => s.end())
})
await listen(helloSrv, a['hello-port'])

const appSrv = net.createServer((s) => {
  s.setNoDelay(true)
  s.on('error', () => {})
  s.on('end', () => s.end())
  afterHello(s, (rest) => {
    let cmd = Buffer.alloc(0)
    const onCmd = (d) => {
      cmd = cmd.length ? Buffer.concat([cmd, d]) : d
      if (cmd.length < 9) return
      s.off('data', onCmd)
      const op = String.fromCharCode(cmd[0])
      const n = Number(cmd.readBigUInt64BE(1))
      const extra = cmd.subarray(9)
      if (op === 'D') {
        let sent = 0
        const pump = () => {
          while (sent < n) {
            const k = Math.min(CHUNK.length, n - sent)
            sent += k
            if (!s.write(k === CHUNK.length ? CHUNK : CHUNK.subarray(0, k))) { s.once('drain', pump); return }
          }
          s.end()
        }
        pump()
      } else if (op === 'U') {
        let got = extra.length
        const done = () => s.end(`${got}\n`)
        if (got >= n) return done()
        const onUp = (d) => { got += d.length; if (got >= n) { s.off('data', onUp); done() } }
        s.on('data', onUp)
      } else if (op === 'E') {
        if (extra.length) s.write(extra)
        s.on('data', (d) => s.write(d))
      } else s.destroy()
    }
    s.on('data', onCmd)
    if (rest.length) onCmd(rest)
  })
})
await listen(appSrv, a['app-port'])

if (a['dns-port']) {
  const sni = (a.sni ?? 'origin.test').toLowerCase()
  const soa = { type: 'SOA', name: 'test', ttl: 300, data: { mname: 'ns.test', rname: 'h.test', serial: 1, refresh: 300, retry: 300, expire: 300, minimum: 300 } }
  const udp = dgram.createSocket('udp4')
  udp.on('message', (m, r) => {
    let q
    try { q = dnsPacket.decode(m) } catch { return }
    const qn = q.questions?.[0]
    if (!qn) return
    const name = qn.name.toLowerCase()
    const base = { type: 'response', id: q.id, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE, questions: q.questions }
    const reply = name === sni && qn.type === 'A'
      ? { ...base, answers: [{ type: 'A', name: qn.name, ttl: 300, data: addr }] }
      : { ...base, rcode: name === sni ? 'NOERROR' : 'NXDOMAIN', authorities: [soa] }
    udp.send(dnsPacket.encode(reply), r.port, r.address)
  })
  await new Promise((resolve, reject) => { udp.once('error', reject); udp.bind(+a['dns-port'], addr, resolve) })
}
console.log(`origin on ${addr}: tls=${a['tls-port']} hello=${a['hello-port']} app=${a['app-port']} dns=${a['dns-port'] ?? '-'} hello_bytes=${hello.length} flight_bytes=${flight.length}`)
