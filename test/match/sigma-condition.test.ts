import t from 'tap'
import { conditionPolarity } from '../../src/match/formats/sigma-condition.js'

const pol = (conds: string[], names: string[]) => {
  const p = conditionPolarity(conds, names)
  return { positive: [...p.positive].sort(), negative: [...p.negative].sort() }
}

t.test('plain, and/or, not, parentheses', async t => {
  t.same(pol(['selection'], ['selection']), { positive: ['selection'], negative: [] })
  t.same(pol(['selection and not filter'], ['selection', 'filter']), { positive: ['selection'], negative: ['filter'] })
  t.same(pol(['(selection_img and selection_param) or selection_other'], ['selection_img', 'selection_param', 'selection_other']),
    { positive: ['selection_img', 'selection_other', 'selection_param'], negative: [] })
  t.same(pol(['not (a or not b)'], ['a', 'b']), { positive: ['b'], negative: ['a'] })
  t.same(pol(['a AND NOT b'], ['a', 'b']), { positive: ['a'], negative: ['b'] })
})

t.test('N of pattern, all of them, several conditions', async t => {
  const names = ['selection_generic', 'selection_rustdesk', 'filter_optional_chrome', 'filter_main_x']
  t.same(pol(['1 of selection_* and not 1 of filter_optional_*'], names),
    { positive: ['selection_generic', 'selection_rustdesk'], negative: ['filter_optional_chrome'] })
  t.same(pol(['all of them'], ['a', 'b']), { positive: ['a', 'b'], negative: [] })
  t.same(pol(['any of sel*', 'not x'], ['sel1', 'x']), { positive: ['sel1'], negative: ['x'] })
  t.same(pol(['unknown_name'], ['a']), { positive: [], negative: [] })
})

t.test('what it cannot read throws with the reason', async t => {
  t.throws(() => conditionPolarity(['selection | count() > 5'], ['selection']), /unexpected "\|"/)
  t.throws(() => conditionPolarity(['(a and b'], ['a', 'b']), /unclosed/)
  t.throws(() => conditionPolarity(['a and'], ['a']), /ends too early/)
  t.throws(() => conditionPolarity(['1 of'], ['a']), /ends after "of"/)
  t.throws(() => conditionPolarity(['a b'], ['a', 'b']), /unexpected "b"/)
  t.throws(() => conditionPolarity(['a and or b'], ['a', 'b']), /unexpected "or"/)
  t.throws(() => conditionPolarity([''], []), /ends too early/)
})
