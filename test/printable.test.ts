import t from 'tap'
import { printable } from '../src/printable.js'

t.test('controls, DEL, C1 and invisible format characters are escaped; newlines, text and backslashes kept', async t => {
  t.equal(printable('a\u0000b\u0007c\u001b[31m\u007f\u0085'), 'a\\x00b\\x07c\\x1b[31m\\x7f\\x85')
  t.equal(printable('tab\there'), 'tab\\x09here')
  t.equal(printable('evil\u202egnp.exe \u200b\u2066\ufeff\u061c\u2028'), 'evil\\u202egnp.exe \\u200b\\u2066\\ufeff\\u061c\\u2028')
  t.equal(printable('line one\nline two: büro.example C:\\dir ✓'), 'line one\nline two: büro.example C:\\dir ✓')
})
