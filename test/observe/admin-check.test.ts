import t from 'tap'
import { get } from 'node:http'
import { createClientTable } from '../../src/observe/client-table.js'
import { createMetrics } from '../../src/observe/metrics.js'
import { startAdmin } from '../../src/observe/admin.js'
import { makeSnapshot } from '../fixtures/snapshot.js'

function fetchJson(port: number, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, res => {
      let b = ''
      res.on('data', d => { b += d })
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(b) }))
    }).on('error', reject)
  })
}

t.test('/api/check: a client that is not an IP address is a 400; one DNS would refuse is named', async t => {
  const snap = makeSnapshot({ config: { dns: { allowClients: ['10.0.0.0/8'] } } })
  const admin = await startAdmin({ listen: '127.0.0.1:0', metrics: createMetrics(), clients: createClientTable(), getSnapshot: () => snap, ready: () => true })
  t.teardown(() => admin.close())
  const bogus = await fetchJson(admin.port, '/api/check?name=a.b&client=bogus')
  t.equal(bogus.status, 400)
  t.same(bogus.body, { error: 'client "bogus" is not an IP address' })
  const inside = await fetchJson(admin.port, '/api/check?name=a.ngrok.io&client=10.1.2.3')
  t.equal(inside.status, 200)
  t.notOk('dnsRefused' in inside.body)
  t.notMatch(inside.body.explanation, /REFUSED/)
  const outside = await fetchJson(admin.port, '/api/check?name=a.ngrok.io&client=192.0.2.7')
  t.equal(outside.body.dnsRefused, true)
  t.match(outside.body.explanation, /\n {2}dns: +REFUSED: 192\.0\.2\.7 is not in dns\.allowClients/)
})
