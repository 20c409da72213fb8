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

t.test('readClientHello: a change_cipher_spec record before the first hello is refused (a second one is HelloGate\'s)', async t => {
  const ccs = Buffer.from([0x14, 3, 3, 0, 1, 1])
  const hello = records(clientHello({ names: ['ok.example'] }))
  t.match((await readClientHello(client([ccs, hello]), Buffer.alloc(0), 1000, 4096)).result, { kind: 'invalid' })
})
