import t from 'tap'
import { readdirSync, writeFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { startServe } from '../fixtures/serve-process.js'
import { freePort, probe, startUnbound } from '../fixtures/unbound.js'
import { dig, kdig } from '../fixtures/dig.js'

// `tunnelguard serve` under a small open-files limit (prlimit on the child): a warning at the start
// (and at a reload that raises the caps past it) that the connection caps exceed the limit, and a
// reserve of descriptors kept: idle TCP DNS connections from many clients cannot take the ones
// upstream sockets and the admin listener need. Reloads by SIGHUP only (a file watched would reload too).

const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))
const config = (port: number, upstream: string, state: string, maxConnections: number): string => [
  'dns:', `  listen: ["127.0.0.1:${port}"]`, `  upstreams: ["${upstream}"]`,
  `  tcp: { idleTimeout: 60s, maxConnections: ${maxConnections} }`,
  'proxy: { listen: [] }', 'admin: { listen: "127.0.0.1:0" }', 'reload: { watch: false }', `state: { dir: ${JSON.stringify(state)} }`, '',
].join('\n')
const CAPS = /the connection caps need up to \d+ file descriptors, more than the open-files limit/

t.test('open-files limit 256, 320 idle TCP DNS connections from 20 clients: UDP, TCP and /metrics are still served', async t => {
  const up = await startUnbound(t)
  const port = await freePort()
  const dir = t.testdir({ 'tg.yaml': config(port, up.url, join(t.testdirName, 'state'), 1000) })
  const serve = await startServe(t, ['--config', join(dir, 'tg.yaml')], ['prlimit', '--nofile=256:256', '--'])
  const pid = serve.child.pid!
  const warned = serve.lines().filter(l => CAPS.test(String(l.message)))
  t.match(warned, [{
    'log.level': 'warn', 'tunnelguard.fd_limit': 256, 'tunnelguard.fd_needed': 1000 + 64 + 64, 'tunnelguard.fd_reserve': 64,
    'tunnelguard.fix': /raise the open-files limit to 1128 or more \(systemd LimitNOFILE=.*ulimit -n\) or lower dns\.tcp\.maxConnections \(1000 on each of 1 listeners\)/,
  }], 'said once at the start, with both figures and the fix')
  t.equal(warned.length, 1)

  const held: Socket[] = []
  t.teardown(() => { for (const s of held) s.destroy() })
  // 16 from each of 20 addresses: within maxConnectionsPerClient and maxConnections, past the descriptors
  for (let a = 0; a < 20; a++) {
    await Promise.all(Array.from({ length: 16 }, () => new Promise<void>(resolve => {
      const s = connect({ port, host: '127.0.0.1', localAddress: `127.0.1.${a + 1}` })
      s.on('error', () => {})
      s.once('connect', () => resolve())
      s.once('close', () => resolve())
      held.push(s)
    })))
  }
  await sleep(500)
  const inUse = readdirSync(`/proc/${pid}/fd`).length
  t.ok(inUse <= 256 - 32, `descriptors kept free (${inUse} of 256 in use)`)
  const open = held.filter(s => !s.destroyed && s.readyState === 'open').length
  t.ok(open > 100 && open < 256 - 32, `the idle connections kept fill the rest (${open} of 320 open)`)

  // every query needs an upstream socket (unbound's NXDOMAIN for names never asked): answered, not SERVFAIL
  for (let i = 0; i < 20; i++) {
    const rcode = await probe(port, `fd${i}.test`, 4000)
    t.ok(rcode !== undefined && rcode !== 2, `UDP query ${i} answered (rcode ${rcode})`)
  }
  t.equal((await dig({ address: '127.0.0.1', port }, 'a.test', 'A', ['+tcp'])).status, 'NOERROR', 'dig +tcp is answered')
  t.equal((await kdig({ address: '127.0.0.1', port }, 'a.test', 'A', ['+tcp'])).status, 'NOERROR', 'kdig +tcp is answered')
  const admin = (serve.lines().find(l => l.message === 'started')!['tunnelguard.admin'] as { port: number }).port
  const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
  const shed = Number(/^tunnelguard_dropped_total\{reason="shed"\} (\d+)$/m.exec(metrics)?.[1])
  t.ok(shed > 0, `/metrics answers; idle connections closed to make room counted (${shed})`)
  t.notMatch(metrics, /^tunnelguard_fd_exhausted_total\{[^}]*\} [1-9]/m, 'no descriptor ever ran out')
  t.ok(serve.lines().some(l => l.message === 'dns tcp connection closed: idle, to make room for a new one'), 'and logged')
  t.equal(await serve.stop(), 0, 'stops cleanly')
})

t.test('a reload that raises the caps past the open-files limit says so; one that does not change them is quiet', async t => {
  const up = await startUnbound(t)
  const port = await freePort()
  const state = join(t.testdirName, 'state')
  const dir = t.testdir({ 'tg.yaml': config(port, up.url, state, 100) })
  const file = join(dir, 'tg.yaml')
  const serve = await startServe(t, ['--config', file], ['prlimit', '--nofile=4096:4096', '--'])
  t.equal(serve.lines().filter(l => CAPS.test(String(l.message))).length, 0, 'within the limit at the start: nothing said')
  const reloaded = async (n: number): Promise<void> => {
    serve.child.kill('SIGHUP')
    await serve.waitFor(() => serve.lines().filter(l => l.message === 'reloaded').length === n)
  }
  writeFileSync(file, config(port, up.url, state, 5000))
  await reloaded(1)
  const warned = serve.lines().filter(l => CAPS.test(String(l.message)))
  t.match(warned, [{ 'tunnelguard.fd_limit': 4096, 'tunnelguard.fd_needed': 5000 + 64 + 512, 'tunnelguard.fix': /dns\.tcp\.maxConnections \(5000 on each of 1 listeners\)/ }])
  writeFileSync(file, `${config(port, up.url, state, 5000)}log: { level: info }\n`)
  await reloaded(2)
  t.equal(serve.lines().filter(l => CAPS.test(String(l.message))).length, 1, 'caps unchanged: not said again')
  t.equal(await serve.stop(), 0)
})
