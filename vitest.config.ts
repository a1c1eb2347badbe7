import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The Docker suite builds images: its own script, npm run test:docker.
    exclude: ['test/docker/**', 'node_modules/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Process tests start several children each; on 2 cores, running files in parallel starves them.
    fileParallelism: false,
  },
});
