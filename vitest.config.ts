import { defineConfig } from 'vitest/config';

// Separate projects so the fast unit suite can run on its own (`npm run test:unit`).
// End-to-end and integration tests start real nodes, sockets and NATS containers;
// they run one file at a time so the 2-core CI machine is not oversubscribed.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          environment: 'node',
          testTimeout: 30_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
      {
        // The same behaviour suite, unchanged, against 3 nodes on a 3-server NATS cluster.
        test: {
          name: 'e2e-cluster',
          include: ['test/e2e/**/*.test.ts'],
          environment: 'node',
          env: { PRESENCE_E2E_MODE: 'cluster' },
          testTimeout: 60_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          environment: 'node',
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
