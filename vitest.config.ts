import { defineConfig } from 'vitest/config';

// Separate projects so the fast unit suite can run on its own (`npm run test:unit`).
// End-to-end, integration and cluster tests start real nodes, sockets and NATS
// containers: one project after another (groupOrder) and one file at a time, so the
// 2-core CI machine is never running two clusters at once.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          sequence: { groupOrder: 0 },
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'e2e',
          sequence: { groupOrder: 1 },
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
          sequence: { groupOrder: 2 },
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
          sequence: { groupOrder: 3 },
          include: ['test/integration/**/*.test.ts'],
          environment: 'node',
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
      {
        // The dashboard in headless Chromium (Debian's chromium, driven by playwright-core).
        test: {
          name: 'browser',
          sequence: { groupOrder: 5 },
          include: ['test/browser/**/*.test.ts'],
          environment: 'node',
          testTimeout: 60_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
      {
        // Presence nodes and NATS servers killed, frozen and restarted under load.
        test: {
          name: 'cluster',
          sequence: { groupOrder: 4 },
          include: ['test/cluster/**/*.test.ts'],
          environment: 'node',
          testTimeout: 180_000,
          hookTimeout: 240_000,
          fileParallelism: false,
        },
      },
      {
        // A tiny run of the benchmark, so it keeps working (its figures are never asserted).
        test: {
          name: 'bench',
          sequence: { groupOrder: 6 },
          include: ['test/bench/**/*.test.ts'],
          environment: 'node',
          testTimeout: 300_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
      {
        // The container image, the compose topology (NATS, nodes, load balancer) and the k8s manifests.
        test: {
          name: 'deploy',
          sequence: { groupOrder: 7 },
          include: ['test/deploy/**/*.test.ts'],
          environment: 'node',
          testTimeout: 300_000,
          hookTimeout: 600_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
