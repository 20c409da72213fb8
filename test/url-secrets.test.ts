import t from 'tap'
import { basicAuth, redactUrl, shortSource, withoutCredentials as listRequest, withoutPassword } from '../src/url-secrets.js'

t.test('redactUrl: password, query values and fragment hidden; user, host, path and keys kept', async t => {
  t.equal(redactUrl('http://u:pw@127.0.0.1:18082/tunnels.txt?key=SECRET'), 'http://u:***@127.0.0.1:18082/tunnels.txt?key=***')
  t.equal(redactUrl('https://lists.example/a/t.txt?key=S1&token&=x&&v=#frag'), 'https://lists.example/a/t.txt?key=***&***&=***&&v=***#***',
    'a bare value, an empty key, an empty pair, an empty value, a fragment')
  t.equal(redactUrl('https://:pw@lists.example/t.txt'), 'https://:***@lists.example/t.txt', 'a password without a user')
  t.equal(redactUrl('https://user@lists.example/t.txt?'), 'https://user@lists.example/t.txt', 'a user without a password stays (no secret)')
  t.equal(redactUrl('https://lists.example/t.txt'), 'https://lists.example/t.txt', 'nothing to hide: as it was')
  t.equal(redactUrl('not a url'), 'not a url')
})

t.test('listRequest: user info out of the URL, into Basic auth, percent-decoded', async t => {
  t.same(listRequest('https://lists.example/t.txt?k=1'), { url: 'https://lists.example/t.txt?k=1' }, 'no credentials: the URL as it is')
  const r = listRequest('http://us%20er:p%40ss%3Aw@127.0.0.1:1/t.txt?key=SECRET')
  t.equal(r.url, 'http://127.0.0.1:1/t.txt?key=SECRET')
  t.equal(Buffer.from(r.authorization!.replace(/^Basic /, ''), 'base64').toString('utf8'), 'us er:p@ss:w')
  t.equal(Buffer.from(listRequest('http://:only@h/').authorization!.slice(6), 'base64').toString(), ':only', 'a password alone')
  t.equal(Buffer.from(listRequest('http://only@h/').authorization!.slice(6), 'base64').toString(), 'only:', 'a user alone')
})

t.test('shortSource: a file by its name, a URL without credentials, query or fragment; the line kept', async t => {
  t.equal(shortSource('/etc/tg/lists/ngrok.txt:12'), 'ngrok.txt:12')
  t.equal(shortSource('http://u:***@lists.example/t.txt?key=***:3'), 'http://lists.example/t.txt:3')
})

t.test('basicAuth: from a parsed URL, or none', async t => {
  t.equal(basicAuth(new URL('http://a%20b:p%3Aw@h.example/')), `Basic ${Buffer.from('a b:p:w').toString('base64')}`)
  t.equal(basicAuth(new URL('http://h.example/')), undefined)
})

t.test('withoutPassword: a URL as typed, its password alone hidden', async t => {
  t.equal(withoutPassword('https://ops:s3cret@X.ngrok-free.app/p?token=1'), 'https://ops:***@X.ngrok-free.app/p?token=1', 'case, path and query as typed')
  t.equal(withoutPassword('tcp://u:p@ss@0.tcp.ngrok.io:1234'), 'tcp://u:***@0.tcp.ngrok.io:1234', 'an @ in the password: up to the last @ of the authority')
  t.equal(withoutPassword('https://:pw@h/'), 'https://:***@h/')
  for (const same of ['https://user@h/', 'https://h:443/a@b', 'h:443', 'x.ngrok.io', 'https://h/?u=a:b@c', 'bad_name!.ngrok.io:443']) t.equal(withoutPassword(same), same, same)
})
