// Shared helpers for the proxy bench: real TLS bytes without a TLS library in the hot path.
//   clientHello(servername): the first flight a real node TLS client sends (one ClientHello
//     record), captured once so the load generator can replay it cheaply.
//   recordEnd(buf): length of the first complete TLS record in buf, or 0 when incomplete.
import { Duplex } from 'node:stream'
import tls from 'node:tls'

export function clientHello (servername) {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0)
    const fake = new Duplex({
      read () {},
      write (chunk, _enc, cb) {
        got = Buffer.concat([got, chunk])
        const n = recordEnd(got)
        if (n > 0) { resolve(got.subarray(0, n)); setImmediate(() => t.destroy()) }
        cb()
      }
    })
    const t = tls.connect({ socket: fake, servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
    t.on('error', () => {})
    setTimeout(() => reject(new Error('no ClientHello captured')), 2000).unref()
  })
}

export function recordEnd (buf) {
  if (buf.length < 5) return 0
  const n = 5 + buf.readUInt16BE(3)
  return buf.length >= n ? n : 0
}

export function loopbackOnly (...hosts) {
  for (const h of hosts) {
    if (!/^127\.\d+\.\d+\.\d+$/.test(h)) { console.error(`loopback only: ${h}`); process.exit(2) }
  }
}

export function parseArgs (argv) {
  const a = {}
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '')
    const v = argv[i + 1]
    if (v === undefined || v.startsWith('--')) a[k] = true
    else { a[k] = v; i++ }
  }
  return a
}
