import t from 'tap'
import { formatOf, parseListText } from '../../src/match/load-lists.js'

t.test('the format comes from the extension, URLs included', async t => {
  t.equal(formatOf('/x/rule.yml'), 'sigma')
  t.equal(formatOf('/x/RULE.YAML'), 'sigma')
  t.equal(formatOf('https://h/r.yml?raw=1'), 'sigma')
  t.equal(formatOf('https://h/list.csv#x'), 'csv')
  t.equal(formatOf('/x/ngrok.txt'), 'lines')
  t.equal(formatOf('https://h/hosts'), 'lines')
})

t.test('an explicit format wins over the extension', async t => {
  const text = 'title: t\nid: r\ndetection:\n  sel:\n    QueryName: a.example\n  condition: sel\n'
  t.same(parseListText('l', 'https://h/rule', text, 'sigma').entries.map(e => e.name), ['a.example'])
  t.same(parseListText('l', 'list.yml', 'a.example\n', 'lines').entries.map(e => e.source), ['list.yml:1'])
})

t.test('a one-label name listed for blocking is kept, with a warning naming its line', async t => {
  const r = parseListText('l', 'l.txt', 'ngrok.io\ncom\n*.zip\n||mov^\n@@||org^\n0.0.0.0 intranet\n')
  t.same(r.entries.map(e => e.name), ['ngrok.io', 'com', 'zip', 'mov', 'org', 'intranet'], 'all kept')
  t.same(r.warnings, [
    { source: 'l.txt:2', message: '"com" is a top-level domain: it matches every name under .com' },
    { source: 'l.txt:3', message: '"*.zip" is a top-level domain: it matches every name under .zip' },
    { source: 'l.txt:4', message: '"||mov^" is a top-level domain: it matches every name under .mov' },
  ], 'not for an allow exception, nor for a hosts line (that one name only)')
})
