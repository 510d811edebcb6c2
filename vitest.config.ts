import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests start DynamoDB Local (a JVM) per file; keep two files at a time on 2 cores.
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // CI asks for a machine-readable result beside the usual output (.ci/run prints a summary).
    reporters: process.env.VITEST_JSON ? ['default', 'json'] : ['default'],
    outputFile: process.env.VITEST_JSON ? { json: process.env.VITEST_JSON } : undefined,
    // `npm run coverage` (and so `npm test`) prints coverage of the product code; no threshold is set.
    coverage: {
      provider: 'v8',
      include: ['functions/**/*.ts', 'localcloud/**/*.ts', 'infra/**/*.ts', 'scripts/**/*.ts'],
      reporter: ['text-summary', 'text'],
      reportsDirectory: 'coverage',
    },
  },
});
