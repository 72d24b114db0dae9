/**
 * `npm start` runs the gateway with the heap flags of the Docker image: src/runtime.ts
 * PRODUCTION_NODE_OPTIONS is the one definition, test/dockerfile.test.ts checks the Dockerfile's
 * NODE_OPTIONS against it, this file checks package.json's start script.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { PRODUCTION_NODE_OPTIONS } from '../src/runtime.js'

t.test('npm start = exec node <PRODUCTION_NODE_OPTIONS> dist/src/server.js (exec: a SIGTERM to npm reaches the server)', async t => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> }
  t.equal(pkg.scripts.start, `exec node ${PRODUCTION_NODE_OPTIONS} dist/src/server.js`)
})
