import t from 'tap'
import { AppError, errorLines } from '../src/errors.js'

t.test('AppError carries a stable code and details', async t => {
  const e = new AppError('CONFIG_INVALID', 'bad', ['a: x'])
  t.equal(e.code, 'CONFIG_INVALID')
  t.same(e.details, ['a: x'])
  t.equal(e.name, 'AppError')
  t.ok(e instanceof Error)
  t.same(new AppError('USAGE', 'u').details, [])
})

t.test('errorLines: the message, then the details that do not repeat it', async t => {
  t.same(errorLines(new AppError('LIST_LOAD', 'list a: cannot read x', ['list a: cannot read x'])), ['list a: cannot read x'], 'one error is not shown twice')
  t.same(errorLines(new AppError('CONFIG_INVALID', 'c.yaml: 2 errors', ['c.yaml:1: a', 'c.yaml:2: b'])), ['c.yaml: 2 errors', 'c.yaml:1: a', 'c.yaml:2: b'])
})
