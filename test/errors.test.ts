import t from 'tap'
import { AppError } from '../src/errors.js'

t.test('AppError carries a stable code and details', async t => {
  const e = new AppError('CONFIG_INVALID', 'bad', ['a: x'])
  t.equal(e.code, 'CONFIG_INVALID')
  t.same(e.details, ['a: x'])
  t.equal(e.name, 'AppError')
  t.ok(e instanceof Error)
  t.same(new AppError('USAGE', 'u').details, [])
})
