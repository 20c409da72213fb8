// Load generator for the proxy bench (node:net / node:tls only, loopback only).
// Every tunnel: TCP connect to the proxy, "CONNECT 127.0.0.1:PORT", read the 200, then TLS bytes.
// With --proxy direct the client connects straight to the target (the ceiling).
//
//   setup --kind hello : send a real ClientHello (captured once from node's TLS client, SNI --sni),
//                        wait for the origin's first bytes (a real server flight), end, wait for close.
//   setup --kind tls   : a full TLS handshake (tls.connect over the tunnel), end, wait for close.
//         --conc 32 --dur 10 : closed loop, 32 concurrent loops, 10 s.
//   bulk  --dir down|up --bytes N : one tunnel to the app origin: ClientHello, then N bytes
//                        origin -> client (down) or client -> origin (up). Reports MiB/s.
//   soak  --tunnels 200 --dur 300 --every 1000 --payload 128 --churn 20 --sample 10 --watch-pid PID
//                        holds N echo tunnels, each sending --payload bytes every ~--every ms and
//                        checking the echo; opens --churn short hello tunnels per second (to
//                        --churn-target); every --sample s prints one line with the RSS of PID.
// Output: one "key=value ..." line (setup, bulk), or one line per sample (soak).
import fs from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'
import { clientHello, loopbackOnly, parseArgs } from './tls-bytes.mjs'

const mode = process.argv[2]
const a = parseArgs(process.argv.slice(3))
const [thost, tport] = String(a.target ?? '127.0.0.1:443').split(':')
const direct = !a.proxy || a.proxy === 'direct'
const [phost, pport] = direct ? [thost, tport] : String(a.proxy).split(':')
loopbackOnly(thost, phost)
const SNI = a.sni ?? 'origin.test'
const HELLO = await clientHello(SNI)
const now = () => performance.now()

/** Open a tunnel to host:port (default the target); cb(err, socket) once bytes can flow. */
function tunnel (cb, port = tport, timeoutMs = 15000) {
  const s = net.connect(+(direct ? port : pport), direct ? thost : phost)
  s.setNoDelay(true)
  let settled = false
  const timer = setTimeout(() => s.destroy(new Error('tunnel timeout')), timeoutMs)
  const fail = (e) => { if (!settled) { settled = true; clearTimeout(timer); cb(e ?? new Error('closed during CONNECT')) } s.destroy() }
  const ok = () => { settled = true; clearTimeout(timer); s.off('error', fail); s.off('close', onClose); cb(null, s) }
  const onClose = () => fail()
  s.on('error', fail)
  s.on('close', onClose)
  if (direct) { s.once('connect', ok); return }
  s.once('connect', () => s.write(`CONNECT ${thost}:${port} HTTP/1.1\r\nHost: ${thost}:${port}\r\n\r\n`))
  let head = ''
  const onData = (d) => {
    head += d.toString('latin1')
    const e = head.indexOf('\r\n\r\n')
    if (e < 0) { if (head.length > 16384) fail(new Error('huge proxy answer')); return }
    s.off('data', onData)
    if (!/^HTTP\/1\.[01] 200/.test(head)) return fail(new Error(`proxy said ${head.split('\r\n')[0]}`))
    if (head.length > e + 4) return fail(new Error('bytes after the 200'))
    ok()
  }
  s.on('data', onData)
}

/** end() the socket and call done(err) once it is closed (bounded). */
function closeAndWait (s, done) {
  let fin = false
  const finish = (e) => { if (!fin) { fin = true; clearTimeout(t); done(e) } }
  const t = setTimeout(() => { s.destroy(); finish(new Error('close timeout')) }, 15000)
  s.on('error', (e) => finish(e))
  s.on('close', () => finish(null))
  s.resume()
  s.end()
}

function quantile (sorted, p) { return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : NaN }

function setup () {
  const conc = +(a.conc ?? 32); const dur = +(a.dur ?? 10) * 1000; const kind = a.kind ?? 'hello'
  const lat = []; let errors = 0; let firstErr = null
  const t0 = now(); const deadline = t0 + dur
  let active = conc
  const one = (done) => {
    tunnel((err, s) => {
      if (err) return done(err)
      if (kind === 'tls') {
        const t = tls.connect({ socket: s, servername: SNI, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
        t.once('error', done)
        t.once('secureConnect', () => { t.off('error', done); closeAndWait(t, done) })
        return
      }
      s.once('error', done)
      s.once('close', () => done(new Error('closed before the first server bytes')))
      s.once('data', () => { s.removeAllListeners('error'); s.removeAllListeners('close'); closeAndWait(s, done) })
      s.write(HELLO)
    })
  }
  const loop = () => {
    if (now() >= deadline) { if (--active === 0) report(); return }
    const ts = now()
    let called = false
    one((e) => {
      if (called) return
      called = true
      if (e) { errors++; firstErr ??= e.message } else lat.push(now() - ts)
      setImmediate(loop)
    })
  }
  const report = () => {
    const el = (now() - t0) / 1000
    lat.sort((x, y) => x - y)
    console.log(`completed=${lat.length} errors=${errors} rate=${(lat.length / el).toFixed(1)} p50_ms=${quantile(lat, 0.5).toFixed(2)} p99_ms=${quantile(lat, 0.99).toFixed(2)} elapsed_s=${el.toFixed(2)} first_error=${JSON.stringify(firstErr)}`)
  }
  for (let i = 0; i < conc; i++) loop()
}

function cmd (op, n) { const b = Buffer.alloc(9); b[0] = op.charCodeAt(0); b.writeBigUInt64BE(BigInt(n), 1); return b }

function bulk () {
  const bytes = +(a.bytes ?? 1073741824); const dir = a.dir ?? 'down'
  const chunk = Buffer.alloc(+(a.chunk ?? 262144), 0x62)
  tunnel((err, s) => {
    if (err) { console.log(`error=${JSON.stringify(err.message)}`); process.exitCode = 1; return }
    let got = 0; let reply = ''; let fin = false
    const t0 = now()
    const finish = (okBytes) => {
      if (fin) return
      fin = true
      const secs = (now() - t0) / 1000
      console.log(`dir=${dir} bytes=${bytes} received=${okBytes} ok=${okBytes === bytes} secs=${secs.toFixed(3)} MiBps=${(bytes / 1048576 / secs).toFixed(1)}`)
      if (okBytes !== bytes) process.exitCode = 1
      s.destroy()
    }
    s.on('error', (e) => { if (!fin) { console.log(`error=${JSON.stringify(e.message)} got=${got}`); fin = true; process.exitCode = 1 } })
    s.on('close', () => finish(dir === 'down' ? got : parseInt(reply, 10)))
    if (dir === 'down') {
      s.on('data', (d) => { got += d.length; if (got >= bytes) finish(got) })
      s.write(Buffer.concat([HELLO, cmd('D', bytes)]))
      return
    }
    s.on('data', (d) => { reply += d; if (reply.includes('\n')) finish(parseInt(reply, 10)) })
    s.write(Buffer.concat([HELLO, cmd('U', bytes)]))
    let sent = 0
    const pump = () => {
      while (sent < bytes) {
        const n = Math.min(chunk.length, bytes - sent)
        sent += n
        if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) { s.once('drain', pump); return }
      }
    }
    pump()
  })
  setTimeout(() => { console.log('error="bulk timeout"'); process.exit(1) }, +(a.timeout ?? 120) * 1000).unref()
}

function readMem (pid) {
  try {
    const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
    const f = (k) => +(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(st)?.[1] ?? NaN) / 1024
    return { rss: f('VmRSS'), hwm: f('VmHWM') }
  } catch { return { rss: NaN, hwm: NaN } }
}

function soak () {
  const n = +(a.tunnels ?? 200); const dur = +(a.dur ?? 300) * 1000; const every = +(a.every ?? 1000)
  const payload = Buffer.alloc(+(a.payload ?? 128), 0x65); const churn = +(a.churn ?? 0)
  const churnPort = a['churn-target'] ? String(a['churn-target']).split(':')[1] : tport
  const sampleMs = +(a.sample ?? 10) * 1000; const pid = a['watch-pid']
  const st = { open: 0, opening: 0, echoes: 0, errors: 0, drops: 0, churned: 0, churnErr: 0, firstErr: null }
  const err = (e) => { st.errors++; st.firstErr ??= e.message }
  const t0 = now(); const end = t0 + dur
  let stopping = false
  const held = new Set()
  const hold = (delay) => {
    st.opening++
    tunnel((e, s) => {
      st.opening--
      if (e) { err(e); if (!stopping) setTimeout(() => hold(1000), 1000); return }
      st.open++; held.add(s)
      let want = 0; let timer = null
      const send = () => { want += payload.length; s.write(payload); timer = setTimeout(check, every) }
      const check = () => { if (want > 0) { err(new Error('echo late')); } send() }
      s.on('data', (d) => { want -= d.length; if (want < 0) { err(new Error('echo too long')); want = 0 } if (want === 0) st.echoes++ })
      s.on('error', (x) => err(x))
      s.on('close', () => {
        clearTimeout(timer); held.delete(s); st.open--
        if (!stopping) { st.drops++; setTimeout(() => hold(1000), 1000) }
      })
      s.write(Buffer.concat([HELLO, cmd('E', 0)]))
      setTimeout(send, Math.random() * every)
    })
  }
  for (let i = 0; i < n; i++) setTimeout(() => hold(0), (i * 2000) / n)
  let churnTimer = null
  if (churn > 0) {
    churnTimer = setInterval(() => {
      tunnel((e, s) => {
        if (e) { st.churnErr++; st.firstErr ??= e.message; return }
        s.once('data', () => closeAndWait(s, (x) => { if (x) st.churnErr++; else st.churned++ }))
        s.on('error', () => {})
        s.write(HELLO)
      }, churnPort)
    }, 1000 / churn)
  }
  const line = () => {
    const m = pid ? readMem(pid) : { rss: NaN, hwm: NaN }
    console.log(`t_s=${((now() - t0) / 1000).toFixed(0)} open=${st.open} echoes=${st.echoes} errors=${st.errors} drops=${st.drops} churned=${st.churned} churn_errors=${st.churnErr} rss_MiB=${m.rss.toFixed(1)} hwm_MiB=${m.hwm.toFixed(1)} first_error=${JSON.stringify(st.firstErr)}`)
  }
  const sampler = setInterval(line, sampleMs)
  setTimeout(() => {
    stopping = true
    clearInterval(sampler); clearInterval(churnTimer)
    line()
    for (const s of held) s.destroy()
    setTimeout(() => process.exit(0), 500)
  }, end - now())
}

if (mode === 'setup') setup()
else if (mode === 'bulk') bulk()
else if (mode === 'soak') soak()
else { console.error('usage: node load.mjs setup|bulk|soak [--proxy HOST:PORT|direct] --target 127.0.0.1:PORT ...'); process.exit(2) }
