// /api/clients streams a response longer than V8's longest string (red-team F4: the whole table
// as one JSON.stringify gave "500 {"error":"Invalid string length"}").
import t from 'tap'
import { request } from 'node:http'
import { startAdmin } from '../../src/observe/admin.js'
import type { ClientView } from '../../src/observe/client-table.js'
import { createMetrics } from '../../src/observe/metrics.js'
import { fakeTable, view } from '../fixtures/admin-http.js'

t.test('a response longer than the longest string (red-team F4: "Invalid string length")', async t => {
  // 1000 clients of 540 kB of JSON each: 540 MB, more than V8's 2^29 - 24 characters
  const names = [{ name: 'n'.repeat(540_000), count: 1 }]
  const views: ClientView[] = Array.from({ length: 1000 }, (_, i) => view(`10.0.${i >> 8}.${i & 255}`, names))
  const admin = await startAdmin({ listen: '127.0.0.1:0', metrics: createMetrics(), clients: fakeTable(() => views), getSnapshot: () => undefined, ready: () => true })
  t.teardown(() => admin.close())
  const result = await new Promise<{ status: number; bytes: number; tail: string }>((resolve, reject) => {
    request({ host: '127.0.0.1', port: admin.port, path: '/api/clients' }, res => {
      let bytes = 0
      let tail = ''
      res.on('data', (c: Buffer) => { bytes += c.length; tail = (tail + c.subarray(-40).toString('latin1')).slice(-40) })
      res.on('end', () => resolve({ status: res.statusCode!, bytes, tail }))
    }).on('error', reject).end()
  })
  t.equal(result.status, 200)
  t.ok(result.bytes > 2 ** 29, `${result.bytes} bytes`)
  t.match(result.tail, /"where":\{"qname":1\}\}\]\}\n$/, 'complete')
})
