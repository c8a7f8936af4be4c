import neostandard from 'neostandard'

// An ES import of node:http builds every export of it, undici's web fetch classes included.
const httpAtStartUp = 'an ES import of node:http costs every start about 30 ms: use process.getBuiltinModule(\'node:http\')'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'packages/*/dist/**', 'coverage/**', '.tap/**'] }),
  {
    files: ['src/**/*.ts', 'packages/*/src/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', {
        paths: ['node:http', 'http'].map((name) => ({ name, allowTypeImports: true, message: httpAtStartUp }))
      }]
    }
  }
]
