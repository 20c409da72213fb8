// Anchor: the plainest Node CONNECT proxy: http server 'connect' event, net.connect,
// pipe both ways. No checks beyond "loopback target only". The floor cost of a Node proxy.
// usage: node pipe-proxy.mjs --addr 127.0.0.1 --port P
import http from 'node:http'
import net from 'node:net'
import { loopbackOnly, parseArgs } from './tls-bytes.mjs'

const a = parseArgs(process.argv.slice(2))
const addr = a.addr ?? '127.0.0.1'
loopbackOnly(addr)
const srv = http.createServer((_req, res) => { res.writeHead(405); res.end() })
srv.on('connect', (req, client, head) => {
  client.on('error', () => {})
  const m = /^(127\.\d+\.\d+\.\d+):(\d+)$/.exec(req.url ?? '')
  if (!m) { client.end('HTTP/1.1 403 Forbidden\r\n\r\n'); return }
  const up = net.connect(+m[2], m[1], () => {
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
    if (head.length) up.write(head)
    up.pipe(client)
    client.pipe(up)
  })
  up.on('error', () => client.destroy())
  client.on('close', () => up.destroy())
})
srv.on('error', (e) => { console.error(e.message); process.exit(1) })
srv.listen({ host: addr, port: +a.port, backlog: 4096 }, () => console.log(`pipe-proxy on ${addr}:${a.port}`))
