// Forwarding floor: a minimal raw-buffer Node UDP forwarder. For each query it
// swaps the 16-bit ID for a slot number, relays the bytes to the upstream over one
// connected socket, and on the reply puts the client's ID back and relays it to the
// client. No parsing, no question check, no cache, no policy, no logging.
//   node bench/dns/node/udp-fwd-raw.js ADDR PORT UPSTREAM_ADDR UPSTREAM_PORT
import { createSocket } from 'node:dgram'

const [addr = '127.0.53.7', port = '25306', upAddr = '127.0.53.1', upPort = '25300'] = process.argv.slice(2)
if (!addr.startsWith('127.') || !upAddr.startsWith('127.')) throw new Error('loopback only')
const opts = { type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 }
const front = createSocket(opts)
const up = createSocket(opts)
const SLOTS = 65536
const clientId = new Uint16Array(SLOTS)
const clientPort = new Uint16Array(SLOTS)
const clientAddr = new Array(SLOTS).fill(null)
let nextSlot = 0

front.on('message', (msg, rinfo) => {
  if (msg.length < 12) return
  const slot = nextSlot
  nextSlot = (nextSlot + 1) & 0xffff
  clientId[slot] = msg.readUInt16BE(0)
  clientPort[slot] = rinfo.port
  clientAddr[slot] = rinfo.address
  msg.writeUInt16BE(slot, 0)
  up.send(msg)
})
up.on('message', (msg) => {
  if (msg.length < 12) return
  const slot = msg.readUInt16BE(0)
  const to = clientAddr[slot]
  if (to === null) return
  clientAddr[slot] = null
  msg.writeUInt16BE(clientId[slot], 0)
  front.send(msg, clientPort[slot], to)
})
for (const s of [front, up]) s.on('error', (err) => console.error('udp-fwd-raw:', err.message))
up.connect(Number(upPort), upAddr, () => {
  front.bind(Number(port), addr, () => console.log(`udp-fwd-raw on ${addr}:${port} -> ${upAddr}:${upPort}`))
})
process.on('SIGTERM', () => { front.close(); up.close(); process.exit(0) })
