// `check` and `lists` with remote lists: they use the copies serve keeps in state.dir, fetch nothing,
// and say where the entries came from and when, or that there is no copy yet.
import t from 'tap'
import { PassThrough } from 'node:stream'
import { chmodSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { serve } from '../src/serve.js'
import { runCli } from './fixtures/cli.js'
import { httpServer } from './fixtures/http-server.js'

t.test('check and lists: remote entries from the copy serve fetched; no copy said so; nothing fetched', async t => {
  let requests = 0
  const port = await httpServer(t, (req, res) => {
    requests++
    if (req.headers.authorization !== `Basic ${Buffer.from('u:hunter2').toString('base64')}`) { res.writeHead(401).end(); return }
    res.end('trycloudflare.com\n')
  })
  const url = `http://u:hunter2@127.0.0.1:${port}/tunnels.txt?key=SECRET`
  const shown = `http://u:***@127.0.0.1:${port}/tunnels.txt?key=***`
  const dir = t.testdir({ 'l.txt': 'ngrok.io\n' })
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, [
    'dns: { listen: ["127.0.0.1:0"], upstreams: ["udp://127.0.0.1:9"] }',
    'proxy: { listen: [] }',
    'admin: { listen: null }',
    'state: { dir: st }',
    'reload: { watch: false }',
    'lists:',
    '  local: { files: [l.txt], action: block }',
    `  extra: { urls: ["${url}"], action: block }`,
  ].join('\n'))

  // before serve ever ran: no copy, and both commands say so
  const before = await runCli(['check', 'x.trycloudflare.com', '--config', cfg])
  t.equal(before.code, 0)
  t.match(before.out, /^x\.trycloudflare\.com: PASS\n[^]*reason: +not listed\n/)
  t.match(before.out, `  remote:  the copies serve keeps in ${join(dir, 'st')} (check fetches nothing):\n    extra: ${shown}: 0 entries (remote, not fetched yet: run serve, or check the URL)\n`)
  const lb = await runCli(['lists', '--config', cfg])
  t.match(lb.out, new RegExp(`\\nextra +block +0 +0 +${shown.replace(/[?*.]/g, '\\$&')} \\(not fetched yet\\)\\n`), 'the URL in the sources column, not fetched yet')
  t.match(lb.out, `remote lists: the copies serve keeps in ${join(dir, 'st')} (lists fetches nothing):\n  extra: ${shown}: 0 entries (remote, not fetched yet: run serve, or check the URL)\n1 entries in all; 0 warnings\n`)
  t.match(JSON.parse((await runCli(['lists', '--config', cfg, '--json'])).out).remote, { dir: join(dir, 'st'), copies: [{ list: 'extra', url: shown, fetchedAt: null }] })
  t.equal(requests, 0, 'check and lists fetch nothing')

  // serve fetches the list and keeps its copy in state.dir
  const out = new PassThrough()
  let log = ''
  out.on('data', d => { log += d })
  const r = await serve({ configPath: cfg, stdout: out, signals: false })
  for (let i = 0; i < 200 && r.snapshot().lists.find(l => l.name === 'extra')!.entries === 0; i++) await new Promise(res => setTimeout(res, 20))
  await r.stop()
  t.equal(requests, 1)
  const fetched = JSON.parse(log.split('\n').find(l => l.includes('"remote list fetched"'))!)['@timestamp'] as string

  const after = await runCli(['check', 'x.trycloudflare.com', '--config', cfg])
  t.match(after.out, /^x\.trycloudflare\.com: BLOCK\n/, 'check decides as serve does')
  t.match(after.out, `  entry:   trycloudflare.com (domain) in list extra, ${shown}:1\n`)
  const when = /copy fetched (\S+)\n/.exec(after.out)![1]!
  t.ok(Math.abs(Date.parse(when) - Date.parse(fetched)) < 5000, `when the copy was fetched (${when}, logged ${fetched})`)
  t.match(after.out, `    extra: ${shown}: copy fetched ${when}\n`)
  const j = JSON.parse((await runCli(['check', 'x.trycloudflare.com', '--config', cfg, '--json'])).out)
  t.match(j, { action: 'block', list: 'extra', entry: { source: `${shown}:1` }, remote: { dir: join(dir, 'st'), copies: [{ list: 'extra', url: shown, fetchedAt: when }] } })
  const la = await runCli(['lists', '--config', cfg])
  t.match(la.out, new RegExp(`\\nextra +block +1 +0 +${shown.replace(/[?*.]/g, '\\$&')}\\n`))
  t.match(la.out, `  extra: ${shown}: copy fetched ${when}\n2 entries in all`)
  t.equal(requests, 1, 'still nothing fetched by check or lists')
  t.notMatch(before.out + lb.out + after.out + la.out + JSON.stringify(j), /hunter2|SECRET/, 'no secret shown')

  // the state dir made writable by anyone: its copies are not read, and both commands say why
  chmodSync(join(dir, 'st'), 0o777)
  const open = await runCli(['check', 'x.trycloudflare.com', '--config', cfg])
  t.match(open.out, /^x\.trycloudflare\.com: PASS\n/, 'the copy no longer decides')
  t.match(open.out, `  remote:  the copies in ${join(dir, 'st')} are not read: it is writable by other users (mode 777) (set state.dir to a directory only this user can write; check fetches nothing):\n`)
  t.match((await runCli(['lists', '--config', cfg])).out, `remote lists: the copies in ${join(dir, 'st')} are not read: it is writable by other users (mode 777)`)
  t.match(JSON.parse((await runCli(['lists', '--config', cfg, '--json'])).out).remote, { untrusted: 'writable by other users (mode 777)', copies: [{ fetchedAt: null }] })
})

t.test('check and lists without remote lists: no remote section', async t => {
  const dir = t.testdir({ 'l.txt': 'ngrok.io\n', 'tg.yaml': 'lists:\n  local: { files: [l.txt], action: block }\n' })
  const c = await runCli(['check', 'a.ngrok.io', '--config', join(dir, 'tg.yaml'), '--json'])
  t.notOk('remote' in JSON.parse(c.out))
  t.notMatch((await runCli(['check', 'a.ngrok.io', '--config', join(dir, 'tg.yaml')])).out, /remote( lists)?:/)
  t.notOk('remote' in JSON.parse((await runCli(['lists', '--config', join(dir, 'tg.yaml'), '--json'])).out))
  t.notMatch((await runCli(['lists', '--config', join(dir, 'tg.yaml')])).out, /remote( lists)?:/)
})
