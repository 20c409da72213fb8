// Platform ceiling: the cheapest thing a Node process can do with a DNS query.
// Sets the QR bit and sends the packet back; no parsing, no allocation beyond dgram's.
//   node bench/dns/node/udp-echo.js ADDR PORT
import { createSocket } from 'node:dgram'

const [addr = '127.0.53.6', port = '25305'] = process.argv.slice(2)
if (!addr.startsWith('127.')) throw new Error('loopback only')
const sock = createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 })
sock.on('message', (msg, rinfo) => {
  if (msg.length < 12) return
  msg[2] |= 0x80
  sock.send(msg, rinfo.port, rinfo.address)
})
sock.on('error', (err) => console.error('udp-echo:', err.message))
sock.bind(Number(port), addr, () => console.log(`udp-echo on ${addr}:${port}`))
process.on('SIGTERM', () => sock.close(() => process.exit(0)))
