import t from 'tap'
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { startServe } from '../fixtures/serve-process.js'
import { freePort, probe, startUnbound } from '../fixtures/unbound.js'

// A real `serve` run out of file descriptors (prlimit on the running process, then connections
// held open until none is free), and given them back: what an admin sees, and that it recovers.

const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))
const cpuTicks = (pid: number): number => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return Number(f[11]) + Number(f[12])              // utime + stime
}
/** A UDP query's rcode and how long it took (rcode undefined: no answer within `ms`). */
const timed = async (port: number, name: string, ms: number): Promise<{ rcode: number | undefined; ms: number }> => {
  const t0 = performance.now()
  const rcode = await probe(port, name, ms)
  return { rcode, ms: performance.now() - t0 }
}

t.test('out of file descriptors: no crash and no spin, a warning and a metric, fast SERVFAIL, full service once they are back', async t => {
  const up = await startUnbound(t)
  const port = await freePort()
  const dir = t.testdir({
    'tg.yaml': [
      'dns:', `  listen: ["127.0.0.1:${port}"]`, `  upstreams: ["${up.url}"]`, '  timeout: 5s',
      'proxy: { listen: [] }', 'admin: { listen: "127.0.0.1:0" }', `state: { dir: ${JSON.stringify(join(t.testdirName, 'state'))} }`, '',
    ].join('\n'),
  })
  const serve = await startServe(t, ['--config', join(dir, 'tg.yaml')])
  const pid = serve.child.pid!
  // no upstream socket is open yet: the first forwarded queries need new ones
  const limit = readdirSync(`/proc/${pid}/fd`).length + 16
  execFileSync('prlimit', ['--pid', String(pid), `--nofile=${limit}:${limit}`])
  const held: Socket[] = []
  t.teardown(() => { for (const s of held) s.destroy() })
  // 48 connections from four addresses (12 each, under maxConnectionsPerClient): more than the 16 free
  for (let i = 0; i < 48; i++) {
    const s = connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${2 + (i % 4)}` })
    s.on('error', () => {})
    held.push(s)
  }
  for (let i = 0; i < 200 && readdirSync(`/proc/${pid}/fd`).length < limit; i++) await sleep(10)
  const inUse = readdirSync(`/proc/${pid}/fd`).length
  t.ok(inUse >= limit - 1, `every descriptor in use (${inUse} of ${limit}; libuv may hold its reserve one free)`)

  // a query that needs an upstream socket: SERVFAIL at once (it waited out dns.timeout, 5 s)
  for (const name of ['a.test', 'c1.test', 'short.test']) {
    const r = await timed(port, name, 4000)
    t.equal(r.rcode, 2, `${name}: SERVFAIL`)
    t.ok(r.ms < 2000, `${name}: at once (${r.ms.toFixed(0)} ms), not after dns.timeout`)
  }
  const warned = await serve.waitFor(l => l['error.code'] === 'EMFILE', 5000)
  t.match(warned, { 'log.level': 'warn', message: /no file descriptor free/, fix: /LimitNOFILE/ })
  t.equal(serve.lines().filter(l => l['error.code'] === 'EMFILE').length, 1, 'said once per 10 s')
  const before = cpuTicks(pid)
  await sleep(1000)
  const spent = cpuTicks(pid) - before
  t.ok(spent < 30, `no busy loop on the listeners while out of descriptors (${spent} ticks of CPU in 1 s)`)
  t.equal(serve.child.exitCode, null, 'still running')

  for (const s of held) s.destroy()
  for (let i = 0; i < 200 && readdirSync(`/proc/${pid}/fd`).length >= limit - 4; i++) await sleep(10)
  // descriptors back: every query answered (a socket that had failed to open took its share of
  // them into the timeout for up to a minute)
  const names = ['a.test', 'c1.test', 'short.test', 'alert.test', 'svc.test', 'plainsvc.test', 'dn.test', 'tunnel.ngrok.io', 'x.trycloudflare.com', 'zero.test']
  for (let round = 0; round < 3; round++) {
    for (const name of names) {
      const r = await timed(port, `${round === 0 ? '' : `r${round}.`}${name}`, 4000)
      t.ok(r.rcode !== undefined && r.rcode !== 2 && r.ms < 2000, `${name} (round ${round}): answered (rcode ${r.rcode}, ${r.ms.toFixed(0)} ms)`)
    }
  }
  const admin = serve.lines().find(l => l.message === 'started')!.admin as { port: number }
  const metrics = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text()
  t.match(metrics, /^tunnelguard_fd_exhausted_total\{where="dns-upstream"\} [1-9]/m)
  t.equal(await serve.stop(), 0, 'stops cleanly')
})
