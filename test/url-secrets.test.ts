import t from 'tap'
import { basicAuth, redactUrl, withoutCredentials } from '../src/url-secrets.js'

t.test('redactUrl hides the password and every query value, keeps the rest', async t => {
  t.equal(redactUrl('https://u:pw@lists.example/t.txt?key=SECRET&v=2#f'), 'https://u:***@lists.example/t.txt?key=***&v=***#f')
  t.equal(redactUrl('https://u@lists.example/t.txt'), 'https://u@lists.example/t.txt', 'a user alone is not a secret')
  t.equal(redactUrl('https://lists.example/t.txt'), 'https://lists.example/t.txt')
  t.equal(redactUrl('not a url'), 'not a url')
})

t.test('withoutCredentials: the URL to fetch and its Basic authorization', async t => {
  t.same(withoutCredentials('http://a%20b:p%3Aw@h.example:8080/x?k=1'),
    { url: 'http://h.example:8080/x?k=1', authorization: `Basic ${Buffer.from('a b:p:w').toString('base64')}` })
  t.same(withoutCredentials('http://h.example/x'), { url: 'http://h.example/x' })
  t.equal(basicAuth(new URL('http://:only-pw@h.example/')), `Basic ${Buffer.from(':only-pw').toString('base64')}`, 'a password without a user')
  t.equal(basicAuth(new URL('http://h.example/')), undefined)
})
