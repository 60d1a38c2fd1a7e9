// Preloaded into every benchmarked node process (`node --import bench/serverProbe.mjs ...`).
// It answers the benchmark over the IPC channel with the process's own memory figures, after a
// full GC when the node was started with --expose-gc. It changes nothing in the node itself, and
// the channel is unref'd so it never keeps the node alive.
if (typeof process.send === 'function') {
  process.on('message', (message) => {
    if (!message || message.probe !== 'memory') return;
    if (message.gc && typeof globalThis.gc === 'function') {
      globalThis.gc();
      globalThis.gc();
    }
    const m = process.memoryUsage();
    process.send({
      probe: 'memory',
      id: message.id,
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
    });
  });
  process.channel?.unref();
  process.on('disconnect', () => {});
}
