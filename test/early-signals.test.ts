import t from 'tap'
import { catchEarlySignals, takeEarlySignals } from '../src/early-signals.js'

t.test('serve\'s signals before its own handlers: recorded, then handed over; other commands are not touched', async t => {
  takeEarlySignals()                                          // what the module's own start recorded (not serve here)
  const before = process.listenerCount('SIGHUP')
  catchEarlySignals(['node', 'cli.js', 'report'])
  t.equal(process.listenerCount('SIGHUP'), before, 'report: a hangup ends it as it should')
  catchEarlySignals(['node', 'cli.js', 'serve'])
  catchEarlySignals(['node', 'cli.js', 'serve'])
  t.equal(process.listenerCount('SIGHUP'), before + 1, 'serve: caught, once')
  process.emit('SIGHUP', 'SIGHUP')
  process.emit('SIGINT', 'SIGINT')
  process.emit('SIGTERM', 'SIGTERM')
  t.same(takeEarlySignals(), { hup: true, stop: 'SIGINT' }, 'a reload asked; the first stop signal')
  t.equal(process.listenerCount('SIGHUP'), before, 'handed over: the early handlers are gone')
  t.same(takeEarlySignals(), { hup: false, stop: undefined }, 'nothing again')
  catchEarlySignals(['node', 'cli.js', 'serve'])
  process.emit('SIGTERM', 'SIGTERM')
  t.same(takeEarlySignals(), { hup: false, stop: 'SIGTERM' })
})
