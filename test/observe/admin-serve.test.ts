// serve passes the admin settings of the config (admin.maxConnections) to the admin listener.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { configSchema } from '../../src/config/schema.js'
import { serve } from '../../src/serve.js'
import { collect, open } from '../fixtures/admin-http.js'

t.test('admin.maxConnections from the config caps the listener serve starts', async t => {
  const dir = t.testdir({ 'l.txt': 'ngrok.io\n' })
  const cfg = join(dir, 'tg.yaml')
  writeFileSync(cfg, 'lists:\n  l: { files: [l.txt], action: block }\nreload: { watch: false }\nadmin: { listen: "127.0.0.1:0", maxConnections: 4 }\n')
  const r = await serve({ configPath: cfg, stdout: new PassThrough(), signals: false, watchFiles: false, overrides: { dns: [], proxy: [], upstreams: ['udp://127.0.0.1:9'] } })
  t.teardown(() => r.stop())
  const port = r.addresses.admin!.port
  // 4 / 4: one connection per client address
  const first = await open(port, '127.0.0.2')
  t.teardown(() => first.destroy())
  const firstReply = collect(first, 2500)
  const second = await collect(await open(port, '127.0.0.2'), 2500)
  t.same([second.closed, second.text], [true, ''], 'a second connection from the address is closed at once')
  t.ok(second.ms < 2000, `(${second.ms} ms)`)
  t.notOk((await firstReply).closed, 'the first stays open')
})

t.test('admin.maxConnections: 64 by default, a whole number from 1', async t => {
  t.equal(configSchema.parse({}).admin.maxConnections, 64)
  t.notOk(configSchema.safeParse({ admin: { maxConnections: 0 } }).success)
  t.notOk(configSchema.safeParse({ admin: { maxConnections: 1.5 } }).success)
})
