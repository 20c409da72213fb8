import t from 'tap'
import { readClientHello } from '../../src/proxy/hello-reader.js'
import { MAX_PEEK, isRetryRequest } from '../../src/proxy/retry.js'
import { clientHello, records } from '../fixtures/client-hello.js'
import { pausedClient } from '../fixtures/paused-client.js'

const HRR = Buffer.from('cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c', 'hex')
const serverHello = (random: Buffer) => {
  const body = Buffer.concat([Buffer.from([3, 3]), random, Buffer.from([0, 0x13, 0x01, 0])])
  return Buffer.concat([Buffer.from([2, 0, 0, body.length]), body])
}
const rec = (hs: Buffer, type = 0x16) => Buffer.concat([Buffer.from([type, 3, 3, hs.length >> 8, hs.length & 255]), hs])

t.test('isRetryRequest: the HelloRetryRequest random, in one record or several', async t => {
  const hrr = rec(serverHello(HRR))
  t.equal(isRetryRequest(hrr), true)
  t.equal(isRetryRequest(rec(serverHello(Buffer.alloc(32, 1)))), false, 'another random: a ServerHello')
  const hs = serverHello(HRR)
  t.equal(isRetryRequest(Buffer.concat([rec(hs.subarray(0, 10)), rec(hs.subarray(10, 30)), rec(hs.subarray(30))])), true, 'split over three records')
  for (let n = 0; n < 43; n++) t.equal(isRetryRequest(hrr.subarray(0, n)), undefined, `${n} bytes: not known yet`)
  t.equal(isRetryRequest(rec(Buffer.from([11, 0, 0, 40]))), false, 'a handshake message other than ServerHello')
  t.equal(isRetryRequest(Buffer.from([0x15, 3, 3, 0, 2, 2, 40])), false, 'an alert')
  t.equal(isRetryRequest(Buffer.concat([rec(hs.subarray(0, 10)), Buffer.from([0x17, 3, 3])])), false, 'another record type within')
  // tiny records that never add up: given up at MAX_PEEK
  const tiny = Buffer.concat(Array.from({ length: Math.ceil(MAX_PEEK / 5) }, () => rec(Buffer.alloc(0))))
  t.equal(isRetryRequest(tiny.subarray(0, 100)), undefined)
  t.equal(isRetryRequest(tiny), false)
})

const client = pausedClient

t.test('readClientHello after a retry request: change_cipher_spec records first are passed over, and kept', async t => {
  const ccs = Buffer.from([0x14, 3, 3, 0, 1, 1])
  const hello = records(clientHello({ names: ['ok.example'] }))
  const both = Buffer.concat([ccs, ccs, hello])
  const r = await readClientHello(client([both.subarray(0, 3), both.subarray(3, 8), both.subarray(8)]), Buffer.alloc(0), 1000, 4096, true)
  t.match(r.result, { kind: 'hello', names: ['ok.example'] })
  t.ok(r.data.equals(both))
  t.match((await readClientHello(client([ccs, hello]), Buffer.alloc(0), 1000, 4096)).result, { kind: 'invalid' }, 'not after a retry: a CCS first is refused')
  const flood = Buffer.concat(Array.from({ length: 800 }, () => ccs))
  t.match((await readClientHello(client([flood]), Buffer.alloc(0), 1000, 4096, true)).result, { kind: 'invalid', reason: /change_cipher_spec records over the cap/ })
  t.match((await readClientHello(client([flood.subarray(0, 4100)]), Buffer.alloc(0), 1000, 4096, true)).result, { kind: 'invalid', reason: /over the cap/ }, 'cut inside a record, past the cap')
  t.match((await readClientHello(client([ccs.subarray(0, 4)], true), Buffer.alloc(0), 1000, 4096, true)).result, { kind: 'eof' })
})
