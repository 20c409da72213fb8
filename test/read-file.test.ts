import t, { type Test } from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { decodeText, readTextFile } from '../src/read-file.js'

const DEVICE = 'not a regular file (a device or socket: reading it might never end); name a regular file, a symlink to one, or a pipe (<(…))'
const SERVE = 'not a regular file (a FIFO, socket or device: serve would wait on it, or read it without end); name a regular file or a symlink to one'

/** A writer into `fifo` (a child, so the synchronous read below can wait on it); killed at the end. */
function writer(t: Test, fifo: string, script: string) {
  const child = spawn('sh', ['-c', `${script} > "$1"`, 'sh', fifo], { stdio: 'ignore' })
  t.teardown(() => { child.kill('SIGKILL') })
}

t.test('a regular file, a symlink to one (a ConfigMap), /dev/null: read whole', async t => {
  const dir = t.testdir({ 'a.txt': 'ngrok.io\n' })
  symlinkSync(join(dir, 'a.txt'), join(dir, 'link.txt'))
  t.equal(readTextFile(join(dir, 'a.txt'), 'utf8'), 'ngrok.io\n')
  t.equal(readTextFile(join(dir, 'link.txt'), 'utf8', { pipes: true }), 'ngrok.io\n')
  t.equal(readTextFile('/dev/null', 'utf8'), '')
  for (const opts of [{ devNull: false }, { devNull: false, pipes: true }]) {
    t.throws(() => readTextFile('/dev/null', 'utf8', opts), { message: 'not a regular file (the null device: nothing to read); name a regular file, a symlink to one, or a pipe (<(…))' },
      'unless refused, as report --leases does')
  }
  t.throws(() => readTextFile(join(dir, 'nosuch'), 'utf8'), /ENOENT/)
  mkdirSync(join(dir, 'sub'))
  t.throws(() => readTextFile(join(dir, 'sub'), 'utf8'), /EISDIR/)
})

t.test('a device is refused before a byte is read, for every command: /dev/zero never ends', async t => {
  t.throws(() => readTextFile('/dev/zero', 'utf8', { pipes: true }), { message: DEVICE })
  t.throws(() => readTextFile('/dev/zero', 'utf8'), { message: SERVE })
  const dir = t.testdir({})
  symlinkSync('/dev/zero', join(dir, 'zero'))
  t.throws(() => readTextFile(join(dir, 'zero'), 'utf8', { pipes: true }), { message: DEVICE }, 'through a symlink too')
})

t.test('a FIFO: refused for serve without opening it (that would wait); read to its end, bounded, for the others', async t => {
  const dir = t.testdir({})
  const fifo = join(dir, 'f')
  execFileSync('mkfifo', [fifo])
  t.throws(() => readTextFile(fifo, 'utf8'), { message: SERVE })
  writer(t, fifo, 'printf "a.ngrok.io\\nb.ngrok.io\\n"')
  t.equal(readTextFile(fifo, 'utf8', { pipes: true }), 'a.ngrok.io\nb.ngrok.io\n')
  // a pipe that never ends (`<(yes)`) stops at the bound
  writer(t, fifo, 'yes')
  t.throws(() => readTextFile(fifo, 'utf8', { pipes: true, maxPipeBytes: 200_000 }), { message: 'more than 200000 bytes from a pipe; write it to a file and name the file' })
})

t.test('UTF-16 with a byte order mark (Notepad, PowerShell >) is read as text; UTF-8 and anything else as UTF-8', async t => {
  const text = 'ngrok.io\r\nbüro.example\r\n'
  const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')])
  const be = Buffer.from(le)
  be.swap16()                                                  // FE FF, then each unit big-endian
  t.equal(decodeText(le), text, 'UTF-16 LE')
  t.equal(decodeText(be), text, 'UTF-16 BE')
  t.equal(decodeText(Buffer.concat([be, Buffer.from([0x41])])), text, 'BE with an odd byte at the end: the byte dropped')
  t.equal(decodeText(Buffer.from('\ufeffngrok.io\n')), '\ufeffngrok.io\n', 'a UTF-8 BOM is kept for the reader')
  t.equal(decodeText(Buffer.from('ngrok.io\n')), 'ngrok.io\n')
  t.equal(decodeText(Buffer.from([0xff])), '\ufffd', 'one byte: UTF-8')
  const dir = t.testdir({})
  writeFileSync(join(dir, 'u16.txt'), le)
  t.equal(readTextFile(join(dir, 'u16.txt'), 'utf8'), text, 'readTextFile decodes it')
  t.equal(readTextFile(join(dir, 'u16.txt'), 'latin1'), le.toString('latin1'), 'latin1 (PEM) is read as bytes')
})
