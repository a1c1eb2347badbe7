import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Process tests start several children each; on 2 cores, running files in parallel starves them.
    fileParallelism: false,
  },
});
