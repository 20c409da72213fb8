import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { findVersion, VERSION } from '../src/version.js'
import { packageVersion } from './fixtures/package-version.js'

t.test('the version is package.json\'s', async t => {
  t.equal(VERSION, packageVersion)
})

t.test('a build copied deeper into the checkout finds the project\'s package.json further up', async t => {
  const root = t.testdir({})
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'tunnelguard', version: '9.8.7' }))
  const dist = join(root, 'bench', 'out', 'dist-a')
  mkdirSync(dist, { recursive: true })
  // another package's package.json on the way up is passed over
  writeFileSync(join(root, 'bench', 'package.json'), JSON.stringify({ name: 'bench-tools', version: '1.0.0' }))
  writeFileSync(join(root, 'bench', 'out', 'package.json'), '{ not json')
  t.equal(findVersion(pathToFileURL(join(dist, '..', 'package.json'))), '9.8.7')
  t.equal(findVersion(pathToFileURL(join(root, 'dist', '..', 'package.json'))), '9.8.7')
})

t.test('no package.json of tunnelguard within reach: unknown, not a failure to start', async t => {
  const root = t.testdir({ a: { b: { c: { d: {} } } } })
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'tunnelguard', version: '1.2.3' }))
  const deep = join(root, 'a', 'b', 'c', 'd', 'package.json')
  t.equal(findVersion(pathToFileURL(deep), 4), 'unknown')    // root is the fifth level up
  t.equal(findVersion(pathToFileURL(deep), 5), '1.2.3')
  // the file system's root: no level above it to try (not the same file read `levels` times)
  t.equal(findVersion(new URL('file:///package.json'), 10), 'unknown')
})
