import t from 'tap'
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { closeSync, openSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { CLI } from '../fixtures/serve-process.js'

/** Run `node dist/cli.js …` to its exit (bounded). */
function cli(args: string[], stdin = ''): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', d => { out += d })
    child.stderr.on('data', d => { err += d })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`timeout: ${args.join(' ')}\n${err}`)) }, 20_000)
    child.on('exit', code => { clearTimeout(timer); resolve({ code, out, err }) })
    child.stdin.end(stdin)
  })
}

t.test('validate: a missing list file is exit 2, one message naming config file, line and list', async t => {
  const dir = t.testdir({ 'c.yaml': 'dns: { upstreams: ["udp://127.0.0.1:9"] }\nlists:\n  mine: { files: [nosuch.txt] }\n' })
  const r = await cli(['validate', '--config', join(dir, 'c.yaml')])
  t.equal(r.code, 2)
  const lines = r.err.trim().split('\n')
  t.equal(lines.length, 2, r.err)
  t.equal(lines[1], `  ${join(dir, 'c.yaml')}:3: lists.mine.files[0]: cannot read list file ${join(dir, 'nosuch.txt')}: no such file (relative paths are from the config file's directory)`)
  t.equal(r.err.split('nosuch.txt').length - 1, 1, 'said once')
})

t.test('validate says what serve says of a FIFO list file (an error, exit 2) without waiting for a writer; check still reads one', async t => {
  const { execFileSync } = await import('node:child_process')
  const dir = t.testdir({ 'c.yaml': 'dns: { upstreams: ["udp://127.0.0.1:9"], listen: ["127.0.0.1:0"] }\nlists:\n  mine: { files: [fifo] }\nproxy: { listen: [] }\nadmin: { listen: null }\n' })
  execFileSync('mkfifo', [join(dir, 'fifo')])
  const want = `  ${join(dir, 'c.yaml')}:3: lists.mine.files[0]: cannot read list file ${join(dir, 'fifo')}: not a regular file (a FIFO, socket or device: serve would wait on it, or read it without end); name a regular file or a symlink to one (relative paths are from the config file's directory)`
  for (const cmd of ['validate', 'serve']) {
    const r = await cli([cmd, '--config', join(dir, 'c.yaml')])
    t.equal(r.code, 2, `${cmd}: exit 2, at once`)
    t.ok(r.err.split('\n').includes(want), `${cmd}: the file, its line and the fix\n${r.err}`)
  }
  // check reads a list through a pipe (an ad hoc look at a list): a writer at the other end
  const writer = spawn('sh', ['-c', 'printf "x.example\\n" > "$1"', 'sh', join(dir, 'fifo')], { stdio: 'ignore' })
  t.teardown(() => writer.kill('SIGKILL'))
  const r = await cli(['check', 'a.x.example', '--config', join(dir, 'c.yaml')])
  t.equal(r.code, 0, r.err)
  t.match(r.out, /^a\.x\.example: BLOCK/)
})

t.test('a syslog URL serve would refuse (port 99999, port 0): validate and serve both say file, line, setting and fix, exit 2', async t => {
  for (const port of ['99999', '0']) {
    const dir = t.testdir({ 'l.txt': 'ngrok.io\n' })
    const cfg = join(dir, 'c.yaml')
    writeFileSync(cfg, `dns: { listen: ["127.0.0.1:0"], upstreams: ["udp://127.0.0.1:9"] }\nproxy: { listen: [] }\nadmin: null\nlists:\n  l: { files: [l.txt] }\nalerts:\n  syslog: { url: "udp://127.0.0.1:${port}" }\n`)
    const want = `  ${cfg}:7: alerts.syslog.url: ${port} is not a port (1-65535); write e.g. udp://127.0.0.1:514`
    for (const cmd of ['validate', 'serve']) {
      const r = await cli([cmd, '--config', cfg])
      t.equal(r.code, 2, `${cmd}, port ${port}`)
      t.same(r.err.trim().split('\n').slice(1), [want], `${cmd}, port ${port}: ${r.err}`)
      t.notMatch(r.out, /valid/, `${cmd}: not said valid`)
    }
  }
})

t.test('a webhook header fetch would refuse: validate says file, line, header and fix, exit 2', async t => {
  const dir = t.testdir({ 'c.yaml': 'alerts:\n  webhook:\n    url: "http://127.0.0.1:9/h"\n    headers: { "Bad Header": x }\n' })
  const r = await cli(['validate', '--config', join(dir, 'c.yaml')])
  t.equal(r.code, 2)
  t.same(r.err.trim().split('\n').slice(1), [
    `  ${join(dir, 'c.yaml')}:4: alerts.webhook.headers["Bad Header"]: "Bad Header" is not a header name; write letters, digits and !#$%&'*+-.^_\`|~ only (no spaces, colons or other characters), e.g. X-Api-Key`,
  ], r.err)
  t.equal(r.out, '')
})

t.test('serve: a DNS port another process holds is one line, exit 1, no stack', async t => {
  const busy = createServer()
  await new Promise<void>(r => busy.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>(r => busy.close(() => r())))
  const port = (busy.address() as { port: number }).port
  const dir = t.testdir({ 'l.txt': 'ngrok.io\n' })
  const cfg = join(dir, 'c.yaml')
  writeFileSync(cfg, `dns: { listen: ["127.0.0.1:0", "127.0.0.1:${port}"], upstreams: ["udp://127.0.0.1:9"] }\nproxy: { listen: [] }\nadmin: null\nlists:\n  l: { files: [l.txt] }\n`)
  const r = await cli(['serve', '--config', cfg])
  t.equal(r.code, 1)
  t.equal(r.err, `tunnelguard: dns.listen[1] 127.0.0.1:${port}: address in use (EADDRINUSE)\n`)
  t.notMatch(r.err, /\n\s+at /, 'no stack')
})

t.test('check --client notanip is a usage error', async t => {
  const r = await cli(['check', 'a.b', '--client', 'notanip'])
  t.equal(r.code, 2)
  t.equal(r.err, 'tunnelguard: check: --client notanip: not an IP address (e.g. 10.1.2.3 or fd00::7)\n')
  t.equal(r.out, '')
})

t.test('lists --help, check --help, report --help: usage, exit 0; report --since=-5m works, --since -5m is a usage error', async t => {
  for (const cmd of ['lists', 'check', 'report']) {
    const r = await cli([cmd, '--help'])
    t.equal(r.code, 0, `${cmd} --help`)
    t.match(r.out, new RegExp(`^usage: tunnelguard ${cmd} `))
    t.equal(r.err, '')
  }
  const line = JSON.stringify({
    '@timestamp': new Date().toISOString(), 'log.level': 'warn', message: 'dns.query',
    event: { action: 'block', kind: 'alert' }, client: { ip: '10.4.4.4', port: 5353 }, network: { transport: 'udp' },
    dns: { question: { name: 'a.ngrok.io', type: 'A' } }, rule: { name: 'ngrok.io', ruleset: 'ngrok' },
    tunnelguard: { group: 'default', matched_on: 'qname' },
  }) + '\n'
  const r = await cli(['report', '--since=-5m', '--format', 'csv'], line)
  t.equal(r.code, 0, r.err)
  t.match(r.out, /10\.4\.4\.4/)
  const spaced = await cli(['report', '--since', '-5m', '--format', 'csv'], line)
  t.same([spaced.code, spaced.out, spaced.err], [2, '', 'tunnelguard: report: --since -5m: a value that starts with a dash is written --since=-5m\n'])
})

t.test('a reader that goes away (`| head -1`) ends the command quietly, with its own exit code', async t => {
  const bad = Array.from({ length: 20_000 }, (_, i) => `bad line ${i} !!`).join('\n')
  const dir = t.testdir({ 'bad.txt': `${bad}\n` })
  for (const [cmd, code] of [['validate', 0], ['lists', 0]] as const) {
    const cfg = join(dir, `${cmd}.yaml`)
    writeFileSync(cfg, 'dns: { upstreams: ["udp://127.0.0.1:9"] }\nlists:\n  x: { files: [bad.txt], action: block }\n')
    const r = await new Promise<{ code: number | null; first: string; err: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, cmd, '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] })
      let first = ''
      let err = ''
      child.stdout.once('data', d => {
        first = String(d).split('\n')[0]!
        child.stdout.destroy()                   // as head does after its line
      })
      child.stderr.on('data', d => { err += d })
      const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`timeout: ${cmd}`)) }, 20_000)
      child.on('exit', c => { clearTimeout(timer); resolve({ code: c, first, err }) })
    })
    t.match(r.first, cmd === 'validate' ? /valid, \d+ warnings/ : /^config: /, cmd)
    t.equal(r.code, code, `${cmd}: its own exit code`)
    t.notMatch(r.err, /EPIPE|Unhandled|node:events/, `${cmd}: no stack`)
  }
})

t.test('an endless device (/dev/zero) as a list or as the config: exit 2 naming file, line, path and fix, for every command', async t => {
  const dir = t.testdir({ 'dn.yaml': 'dns: { upstreams: ["udp://127.0.0.1:9"] }\nlists:\n  z: { files: [/dev/zero] }\n' })
  const dn = join(dir, 'dn.yaml')
  const device = 'not a regular file (a device or socket: reading it might never end); name a regular file, a symlink to one, or a pipe (<(…))'
  const serve = 'not a regular file (a FIFO, socket or device: serve would wait on it, or read it without end); name a regular file or a symlink to one'
  for (const args of [['validate'], ['lists'], ['check', 'x.ngrok-free.app']]) {
    const asList = await cli([...args, '--config', dn])
    t.equal(asList.code, 2, `${args[0]}, /dev/zero as a list: ${asList.err}`)
    // validate says of the files a config names what serve would
    const why = args[0] === 'validate' ? serve : device
    t.equal(asList.err, `tunnelguard: ${dn}: 1 error\n  ${dn}:3: lists.z.files[0]: cannot read list file /dev/zero: ${why}\n`, `${args[0]}: a list`)
    t.equal(asList.out, '')
    const asConfig = await cli([...args, '--config', '/dev/zero'])
    t.equal(asConfig.code, 2, `${args[0]}, /dev/zero as the config: ${asConfig.err}`)
    t.equal(asConfig.err, `tunnelguard: /dev/zero: cannot read config: ${device}\n`, `${args[0]}: the config`)
  }
  // serve refused both before (a FIFO, socket or device): still so
  t.equal((await cli(['serve', '--config', dn])).err, `tunnelguard: ${dn}: 1 error\n  ${dn}:3: lists.z.files[0]: cannot read list file /dev/zero: ${serve}\n`)
  t.equal((await cli(['serve', '--config', '/dev/zero'])).err, `tunnelguard: /dev/zero: cannot read config: ${serve}\n`)
})

t.test('what a config may be for validate, check and lists: a symlink to a file (a ConfigMap), a pipe (<(…)), a list through a symlink', async t => {
  const dir = t.testdir({ 'l.txt': 'ngrok-free.app\n', 'c.yaml': 'dns: { upstreams: ["udp://127.0.0.1:9"] }\nlists:\n  l: { files: [l-link.txt] }\n' })
  symlinkSync(join(dir, 'l.txt'), join(dir, 'l-link.txt'))
  symlinkSync(join(dir, 'c.yaml'), join(dir, 'c-link.yaml'))
  const r = await cli(['check', 'x.ngrok-free.app', '--config', join(dir, 'c-link.yaml')])
  t.equal(r.code, 0, r.err)
  t.match(r.out, /^x\.ngrok-free\.app: BLOCK\n/)
  t.match(r.out, `in list l, ${join(dir, 'l-link.txt')}:1`)
  // bash's process substitution: a pipe, read to its end (its lists named by absolute paths:
  // relative ones would be from /dev/fd)
  writeFileSync(join(dir, 'abs.yaml'), `dns: { upstreams: ["udp://127.0.0.1:9"] }\nlists:\n  l: { files: ["${join(dir, 'l-link.txt')}"] }\n`)
  const piped = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
    const child = spawn('bash', ['-c', `"$1" "$2" validate --config <(cat "$3")`, 'bash', process.execPath, CLI, join(dir, 'abs.yaml')], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', d => { out += d })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('timeout: validate --config <(…)')) }, 20_000)
    child.on('exit', code => { clearTimeout(timer); resolve({ code, out }) })
  })
  t.equal(piped.code, 0)
  t.match(piped.out, /^\/dev\/fd\/\d+: valid\n$/)
})

/** Run `node dist/cli.js …` with its stdout on /dev/full (every write: ENOSPC), to its exit. */
function cliOnFullDisk(args: string[]): Promise<{ code: number | null; err: string }> {
  const full = openSync('/dev/full', 'w')
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', full, 'pipe'] })
    closeSync(full)
    let err = ''
    child.stderr!.on('data', d => { err += d })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`timeout: ${args.join(' ')}\n${err}`)) }, 20_000)
    child.on('exit', code => { clearTimeout(timer); resolve({ code, err }) })
  })
}

t.test('stdout on a full disk (/dev/full: ENOSPC): every command that prints says so in one line, exit 1, no stack', async t => {
  const line = JSON.stringify({
    '@timestamp': '2026-11-22T04:00:00.000Z', 'log.level': 'warn', message: 'dns.query',
    event: { action: 'block', kind: 'alert' }, client: { ip: '10.4.4.4', port: 5353 }, network: { transport: 'udp' },
    dns: { question: { name: 'a.ngrok.io', type: 'A' } }, rule: { name: 'ngrok.io', ruleset: 'ngrok' },
    tunnelguard: { group: 'default', matched_on: 'qname' },
  }) + '\n'
  const dir = t.testdir({ 'log.jsonl': line, 'l.txt': 'ngrok.io\n', 'c.yaml': 'dns: { upstreams: ["udp://127.0.0.1:9"] }\nlists:\n  l: { files: [l.txt] }\n' })
  const log = join(dir, 'log.jsonl')
  const cfg = join(dir, 'c.yaml')
  for (const args of [['report', log], ['report', log, '--format', 'json'], ['report', log, '--format', 'csv'],
    ['check', 'x.ngrok.io', '--config', cfg], ['check', 'x.ngrok.io', '--json', '--config', cfg],
    ['lists', '--config', cfg], ['lists', '--json', '--config', cfg], ['validate', '--config', cfg], ['--help'], ['report', '--help']]) {
    const r = await cliOnFullDisk(args)
    t.equal(r.err, 'tunnelguard: cannot write the output to stdout: ENOSPC (no space left on device)\n', args.join(' '))
    t.equal(r.code, 1, `${args.join(' ')}: exit 1`)
  }
  // a command that fails anyway keeps its own code, and says both
  const usage = await cliOnFullDisk([])
  t.equal(usage.code, 2, 'no command: the usage text (stdout) and exit 2 as before')
  t.equal(usage.err, 'tunnelguard: cannot write the output to stdout: ENOSPC (no space left on device)\n')
  const unreadable = await cliOnFullDisk(['report', log, join(dir, 'nosuch.jsonl')])
  t.equal(unreadable.code, 1)
  t.equal(unreadable.err, 'tunnelguard: cannot write the output to stdout: ENOSPC (no space left on device)\n', 'the output failed first: the report that says what was read is not there')
})

t.test('report | head -c 10: the reader goes away (EPIPE), report ends quietly with its own exit code', async t => {
  // enough clients that the report is more than a pipe holds (64 KiB), so that a write meets EPIPE
  const lines = Array.from({ length: 5000 }, (_, i) => JSON.stringify({
    '@timestamp': '2026-11-22T04:00:00.000Z', 'log.level': 'warn', message: 'dns.query',
    event: { action: 'block', kind: 'alert' }, client: { ip: `10.9.${i >> 8}.${i & 255}`, port: 5353 }, network: { transport: 'udp' },
    dns: { question: { name: `a${i}.ngrok.io`, type: 'A' } }, rule: { name: 'ngrok.io', ruleset: 'ngrok' },
    tunnelguard: { group: 'default', matched_on: 'qname' },
  })).join('\n')
  const dir = t.testdir({ 'log.jsonl': `${lines}\n` })
  const headed = (files: string[]) => new Promise<{ status: string; out: string; err: string }>((resolve, reject) => {
    // bash: the report's exit code is PIPESTATUS[0], after head took its 10 bytes and left
    const child = spawn('bash', ['-c', '"$@" 2>"$ERR" | head -c 10; echo " ${PIPESTATUS[0]}"; cat "$ERR"', 'bash', process.execPath, CLI, 'report', ...files],
      { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ERR: join(dir, `err-${files.length}`) } })
    let out = ''
    child.stdout.on('data', d => { out += d })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('timeout: report | head -c 10')) }, 20_000)
    child.on('exit', () => {
      clearTimeout(timer)
      const [first, ...rest] = out.split('\n')
      resolve({ out: first!.slice(0, 10), status: first!.slice(11), err: rest.join('\n') })
    })
  })
  const r = await headed([join(dir, 'log.jsonl')])
  t.equal(r.out, 'CLIENT 10.', 'head had its 10 bytes')
  t.equal(r.status, '0', 'its own exit code')
  t.equal(r.err, '', 'nothing said: no EPIPE, no stack')
  const bad = await headed([join(dir, 'log.jsonl'), join(dir, 'nosuch.jsonl')])
  t.equal(bad.status, '1', 'an input that cannot be read: exit 1 as ever')
  t.equal(bad.err, `tunnelguard: report: ${join(dir, 'nosuch.jsonl')}: ENOENT: no such file or directory\n`, 'and only that is said')
})
