import t from 'tap'
import { MAX_DESTINATIONS, beginRequest, closeFigures, settleRequest } from '../../src/proxy/close-line.js'
import { closeDestination } from '../../src/proxy/address.js'
import type { Conn } from '../../src/proxy/context.js'

/** A connection whose requests get `answers` in turn: [status, outcome], as the handlers leave them in the close fields. */
function served(answers: readonly (readonly [number | undefined, 'success' | 'failure' | undefined])[]): Conn {
  const conn = { close: {} as Record<string, unknown> } as Conn
  for (const [status, outcome] of answers) {
    settleRequest(conn)                                  // a request begins
    conn.close['http.response.status_code'] = status
    conn.close['event.outcome'] = outcome
  }
  return conn
}

t.test('the close line: one status when every answer had it, else each once; the connection\'s outcome', async t => {
  t.same(closeFigures(served([])), {}, 'no request answered: nothing said')
  t.same(closeFigures(served([[undefined, undefined]])), {}, 'a request the client left before its answer')
  t.same(closeFigures(served([[502, 'failure']])), {
    'http.response.status_code': 502, 'tunnelguard.status_codes': undefined, 'event.outcome': 'failure', 'tunnelguard.failed_requests': 1,
  }, 'one request: its own')
  t.same(closeFigures(served([[200, 'success'], [200, 'success'], [200, 'success']])), {
    'http.response.status_code': 200, 'tunnelguard.status_codes': undefined, 'event.outcome': 'success', 'tunnelguard.failed_requests': undefined,
  }, 'ten 200s are 200')
  t.same(closeFigures(served([[200, 'success'], [502, 'failure'], [200, 'success'], [504, 'failure'], [200, 'success']])), {
    'http.response.status_code': undefined, 'tunnelguard.status_codes': [200, 502, 504], 'event.outcome': 'failure', 'tunnelguard.failed_requests': 2,
  }, 'a failure among successes: failure, whichever came last')
  t.same(closeFigures(served([[403, undefined], [200, 'success']])), {
    'http.response.status_code': undefined, 'tunnelguard.status_codes': [403, 200], 'event.outcome': 'success', 'tunnelguard.failed_requests': undefined,
  }, 'a refusal (no outcome) beside a request served')
  t.same(closeFigures(served([[403, undefined], [403, undefined]])), {
    'http.response.status_code': 403, 'tunnelguard.status_codes': undefined, 'event.outcome': undefined, 'tunnelguard.failed_requests': undefined,
  }, 'every request refused: no outcome')
  t.same(closeFigures(served([[undefined, 'failure']])), {
    'http.response.status_code': undefined, 'tunnelguard.status_codes': undefined, 'event.outcome': 'failure', 'tunnelguard.failed_requests': 1,
  }, 'an outcome without a status')
})

t.test('settleRequest: what a request got is kept once, and cleared for the next', async t => {
  const conn = served([[200, 'success']])
  settleRequest(conn)
  settleRequest(conn)
  t.same(conn.answers, { statuses: [200], failed: 0, succeeded: 1 }, 'settled twice: counted once')
  t.same(conn.close, { 'http.response.status_code': undefined, 'event.outcome': undefined })
})

/** A connection whose requests name `targets` in turn ([domain, ip, port], as closeDestination and the exchange leave them), each answered 200. */
function visited(targets: readonly (readonly [string | undefined, string | undefined, number])[]): Conn {
  const conn = { close: {} as Record<string, unknown>, requests: 0 } as Conn
  for (const [domain, ip, port] of targets) {
    beginRequest(conn)
    // as the proxy sets them: the host a request names, then the address dialled for a name
    closeDestination(conn.close, domain === undefined ? { host: ip!, ip, port } : { host: domain, port })
    conn.close['destination.ip'] = ip
    conn.close['http.response.status_code'] = 200
    conn.close['event.outcome'] = 'success'
  }
  return conn
}
const DESTS = ['destination.domain', 'destination.ip', 'destination.port', 'tunnelguard.destinations', 'tunnelguard.more_destinations'] as const
const dests = (f: Record<string, unknown>) => Object.fromEntries(DESTS.filter(k => k in f).map(k => [k, f[k]]))

t.test('the close line: the destination when every request named it, else each in tunnelguard.destinations', async t => {
  const one = visited([['a.example', '192.0.2.1', 80]])
  t.same(dests(closeFigures(one)), {}, 'one request: its destination stays in the close fields')
  t.equal(one.destinations, undefined, 'and nothing kept for it')
  const same = visited([['a.example', '192.0.2.1', 80], ['A.example', '192.0.2.2', 80], ['a.example', '192.0.2.1', 80]])
  t.same(dests(closeFigures(same)), {}, 'three requests to one name and port (its addresses may differ): the destination stays')
  t.same(same.destinations, { names: ['a.example:80'], more: 0 }, 'a name in another case is the same name')
  const several = visited([['a.example', '192.0.2.1', 80], [undefined, '2001:db8::1', 8080], ['a.example', '192.0.2.1', 81], ['a.example', '192.0.2.1', 80]])
  t.same(dests(closeFigures(several)), {
    'destination.domain': undefined, 'destination.ip': undefined, 'destination.port': undefined,
    'tunnelguard.destinations': ['a.example:80', '[2001:db8::1]:8080', 'a.example:81'],
  }, 'several: none in destination.*, each once in order, an IPv6 address in brackets')
  t.equal(closeFigures(several)['tunnelguard.status_codes'], undefined, 'the answers\' figures beside them as before')
  t.equal(closeFigures(several)['http.response.status_code'], 200)
  // a request that named none (refused before its target was read) leaves the one before it as it was
  const refused = visited([['a.example', '192.0.2.1', 80]])
  beginRequest(refused)
  refused.close['http.response.status_code'] = 400
  t.same(dests(closeFigures(refused)), {}, 'a bad request after one to a.example: a.example')
  t.same(refused.destinations, { names: ['a.example:80'], more: 0 })
  // the first request named none (a bad URL): the one after it is the connection's only destination
  const first = { close: {} as Record<string, unknown>, requests: 0 } as Conn
  beginRequest(first)
  first.close['http.response.status_code'] = 400
  beginRequest(first)
  first.close['destination.domain'] = 'b.example'
  first.close['destination.port'] = 80
  t.same(dests(closeFigures(first)), {})
  t.equal(first.destinations, undefined, 'nothing to keep: one destination')
  // many: the first MAX_DESTINATIONS named, the rest counted
  const many = visited(Array.from({ length: MAX_DESTINATIONS + 5 }, (_, i) => [`h${i}.example`, undefined, 80] as const))
  const f = closeFigures(many)
  t.equal((f['tunnelguard.destinations'] as string[]).length, MAX_DESTINATIONS)
  t.equal((f['tunnelguard.destinations'] as string[])[0], 'h0.example:80')
  t.equal(f['tunnelguard.more_destinations'], 5, 'the ones past the bound counted')
})
