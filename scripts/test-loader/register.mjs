/* global process */
// `node --import ./scripts/test-loader/register.mjs file.ts`: runs TypeScript sources under tap.
//
// Why not tap's TypeScript plugin (ts-node) or tsx: ts-node loads the TypeScript compiler into every
// test process, about 2.5 s of CPU per test file before the first test runs; tsx prints each module
// on one line (esbuild's whitespace minification), and coverage, which counts by line, then shrinks to
// one statement a file. This transpiles with esbuild, a statement to a line, and inlines a source map
// with the original text, so coverage reports against the .ts sources. Types are not checked here:
// `npm run typecheck` does.
import { register } from 'node:module'

// Stack traces and coverage read the inline source maps; tap turns this on in its test processes, and
// this turns it on in the processes the tests start (whose coverage tap records too).
process.setSourceMapsEnabled(true)
register('./hooks.mjs', import.meta.url)
