import { defineConfig } from 'vitest/config';

// npm run test:docker: the slow suite against a real Docker engine (issue 5).
export default defineConfig({
  test: {
    include: ['test/docker/**/*.test.ts'],
    testTimeout: 1_500_000,
    hookTimeout: 300_000,
    fileParallelism: false,
  },
});
