// serve passes the admin settings of the config (admin.maxConnections) to the admin listener.
import t from 'tap'
import { configSchema } from '../../src/config/schema.js'
import { collect, open, serveAdmin } from '../fixtures/admin-http.js'

t.test('admin.maxConnections from the config caps the listener serve starts', async t => {
  const port = await serveAdmin(t, 'maxConnections: 4')
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
