// Live updates by polling: simple, works through every proxy, and costs one indexed query
// per view every few seconds. Paused while the tab is hidden.

export function every(ms, load) {
  let timer = null;
  let stopped = false;
  let running = false;

  async function tick() {
    if (stopped) return;
    if (!document.hidden && !running) {
      running = true;
      try {
        await load();
      } catch (err) {
        console.warn("refresh failed", err);
      } finally {
        running = false;
      }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  }

  tick();
  return {
    stop() { stopped = true; clearTimeout(timer); },
    /** Reload now (after an action), then keep the rhythm. */
    async now() { clearTimeout(timer); await tick(); },
  };
}
