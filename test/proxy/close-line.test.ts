import t from 'tap'
import { closeFigures, settleRequest } from '../../src/proxy/close-line.js'
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
