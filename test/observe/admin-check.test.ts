import t from 'tap'
import { get } from 'node:http'
import { createClientTable } from '../../src/observe/client-table.js'
import { createMetrics } from '../../src/observe/metrics.js'
import { shortSource, startAdmin } from '../../src/observe/admin.js'
import type { Entry } from '../../src/match/types.js'
import { makeSnapshot, simpleMatcher } from '../fixtures/snapshot.js'

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
  const mapped = await fetchJson(admin.port, '/api/check?name=a.ngrok.io&client=::ffff:10.1.2.3')
  t.equal(mapped.body.client, '10.1.2.3', 'named as the log lines name it')
  t.notOk('dnsRefused' in mapped.body)
})

t.test('/api/check names a list entry by its file name, or by its URL without credentials and query', async t => {
  const entry = (name: string, source: string): Entry => ({ list: 'l', name, kind: 'domain', allow: false, pattern: name, source })
  const matcher = simpleMatcher([
    entry('file.example', '/etc/tunnelguard/private/lists/ngrok.txt:12'),
    entry('url.example', 'https://user:secret@lists.example:8443/feeds/t.txt?token=SECRET#frag:3'),
    entry('odd.example', 'http://[not-a-url/x.txt:4'),
    entry('whole.example', '/srv/lists/whole.txt'),
  ])
  const snap = makeSnapshot({ lists: { l: { action: 'block', patterns: [] } }, matcher })
  const admin = await startAdmin({ listen: '127.0.0.1:0', metrics: createMetrics(), clients: createClientTable(), getSnapshot: () => snap, ready: () => true })
  t.teardown(() => admin.close())
  const cases: [string, string][] = [
    ['file.example', 'ngrok.txt:12'],
    ['url.example', 'https://lists.example:8443/feeds/t.txt:3'],
    ['odd.example', 'x.txt:4'],
    ['whole.example', 'whole.txt'],
  ]
  for (const [name, shown] of cases) {
    const r = await fetchJson(admin.port, `/api/check?name=${name}&client=10.1.2.3`)
    t.equal(r.status, 200)
    t.match(r.body, { action: 'block', entry: { pattern: name, source: shown } }, name)
    t.match(r.body.reason, `(${shown})`, 'the reason names it so')
    t.match(r.body.explanation, `in list l, ${shown}\n`, 'and the explanation')
    const all = JSON.stringify(r.body)
    t.notMatch(all, /etc\/tunnelguard|private|secret|SECRET|user|frag|\/srv/, 'no directory, credential or query anywhere')
  }
  t.same(shortSource('ngrok.txt:1'), 'ngrok.txt:1', 'a bare name stays')
  // a URL or host:port: its host, as `check` takes it, and from what
  const url = await fetchJson(admin.port, `/api/check?name=${encodeURIComponent('https://a.file.example/x?y')}&client=10.1.2.3`)
  t.match(url.body, { name: 'a.file.example', action: 'block', entry: { pattern: 'file.example', source: 'ngrok.txt:12' }, from: 'https://a.file.example/x?y' })
  t.match(url.body.explanation, /^a\.file\.example \(from https:\/\/a\.file\.example\/x\?y\): BLOCK\n/)
  const hp = await fetchJson(admin.port, '/api/check?name=whole.example:443&client=10.1.2.3')
  t.match(hp.body, { name: 'whole.example', action: 'block', from: 'whole.example:443' })
  t.notOk('from' in (await fetchJson(admin.port, '/api/check?name=whole.example&client=10.1.2.3')).body, 'a name: no from')
  // a target the proxy refuses as malformed: said so, with the decision it logs or none
  const bad = await fetchJson(admin.port, '/api/check?name=whole.example:99999&client=10.1.2.3')
  t.match(bad.body, { name: 'whole.example', action: 'block', from: 'whole.example:99999', invalid: 'port 99999 is out of range (1-65535)', entry: { source: 'whole.txt' } })
  t.match(bad.body.explanation, /\n {2}target: +invalid \(port 99999 is out of range \(1-65535\)\): the proxy refuses it \(400\) and logs this decision\n$/)
  t.match((await fetchJson(admin.port, '/api/check?name=other.example:0&client=10.1.2.3')).body, { action: 'invalid', invalid: 'port 0 is out of range (1-65535)' })
  // a name DNS answers itself
  t.match((await fetchJson(admin.port, '/api/check?name=use-application-dns.net&client=10.1.2.3')).body,
    { action: 'pass', dnsAnswer: { rcode: 'NXDOMAIN', setting: 'dns.dohCanary' }, explanation: /\n {2}dns: +the DoH canary: answered NXDOMAIN here \(dns\.dohCanary\), not forwarded upstream\n$/ })
})
