#!/usr/bin/env node
// Fails when the folders of src/ import each other in a cycle (type-only imports included: they are
// dependencies of the design too). A file directly in src/ counts as its own node, so app.ts may import
// every folder and every folder may import errors.ts without that being a cycle.
// Prints the folder graph either way, so a reviewer sees the layering at a glance.
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import console from 'node:console'
import process from 'node:process'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', process.argv[2] ?? 'src')
const importPattern = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g

function sourceFiles (folder) {
  return readdirSync(folder, { withFileTypes: true }).flatMap(entry => {
    const path = join(folder, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : []
  })
}

/** src/auth/session.ts → "auth"; src/app.ts → "app.ts". */
function nodeOf (file) {
  const parts = relative(root, file).split(sep)
  return parts.length === 1 ? parts[0] : parts[0]
}

const edges = new Map()
const examples = new Map()
for (const file of sourceFiles(root)) {
  const from = nodeOf(file)
  const text = readFileSync(file, 'utf8')
  for (const match of text.matchAll(importPattern)) {
    const target = resolve(dirname(file), (match[1] ?? match[2]).replace(/\.js$/, '.ts'))
    if (!target.startsWith(root + sep)) continue
    const to = nodeOf(target)
    if (to === from) continue
    if (!edges.has(from)) edges.set(from, new Set())
    edges.get(from).add(to)
    const key = `${from} → ${to}`
    if (!examples.has(key)) examples.set(key, `${relative(root, file)} imports ${relative(root, target)}`)
  }
}

// Tarjan's strongly connected components: any component of more than one node is a cycle.
const index = new Map()
const low = new Map()
const stack = []
const onStack = new Set()
const cycles = []
let counter = 0
function visit (node) {
  index.set(node, counter)
  low.set(node, counter)
  counter++
  stack.push(node)
  onStack.add(node)
  for (const next of edges.get(node) ?? []) {
    if (!index.has(next)) {
      visit(next)
      low.set(node, Math.min(low.get(node), low.get(next)))
    } else if (onStack.has(next)) {
      low.set(node, Math.min(low.get(node), index.get(next)))
    }
  }
  if (low.get(node) === index.get(node)) {
    const component = []
    let member
    do {
      member = stack.pop()
      onStack.delete(member)
      component.push(member)
    } while (member !== node)
    if (component.length > 1) cycles.push(component.sort())
  }
}
const nodes = [...new Set([...edges.keys(), ...[...edges.values()].flatMap(targets => [...targets])])].sort()
for (const node of nodes) if (!index.has(node)) visit(node)

for (const node of nodes.filter(name => !name.endsWith('.ts'))) {
  const targets = [...(edges.get(node) ?? [])].sort()
  console.log(`${node}/ → ${targets.length === 0 ? '(nothing)' : targets.join(', ')}`)
}
if (cycles.length === 0) {
  console.log(`no folder-level import cycle in ${relative(process.cwd(), root) || '.'}`)
} else {
  for (const cycle of cycles) {
    console.error(`import cycle between folders: ${cycle.join(' ↔ ')}`)
    for (const from of cycle) {
      for (const to of cycle) {
        const example = examples.get(`${from} → ${to}`)
        if (example !== undefined) console.error(`  ${example}`)
      }
    }
  }
  process.exitCode = 1
}
