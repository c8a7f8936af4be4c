import { benchLibrary, libraryMarkdown } from './lib/library.js'
const r = await benchLibrary({ root: process.argv[2] ?? '/work/main', port: 6379, seconds: Number(process.env.S ?? 3) })
console.log(libraryMarkdown(r))
