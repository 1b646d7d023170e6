// tap coverage map: every test is credited against production code only (src/), not dev tooling.
import { readdirSync } from 'node:fs'

const sources = readdirSync('src', { recursive: true })
  .filter(file => String(file).endsWith('.ts') && !String(file).startsWith('browser'))
  .map(file => `src/${file}`)

export default () => sources
