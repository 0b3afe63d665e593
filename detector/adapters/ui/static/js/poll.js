// Live updates by polling: simple, works through every proxy, and costs one indexed query
// per view every few seconds. Paused while the tab is hidden, and while the keyboard is on a
// control of the view (a refresh rebuilds the view's lists, which would take the focus away).
// A refresh that fails says so in the page's banner until one succeeds: a view that silently
// kept its old rows, or showed none, looked current when it was not.

import { fmtTime } from "./format.js";

function keyboardInView() {
  const focused = document.activeElement;
  return focused !== null && focused !== document.body
    && document.getElementById("view").contains(focused) && focused.matches(":focus-visible");
}

function showProblem(err, ms) {
  const banner = document.getElementById("refresh-problem");
  const lasting = err.status >= 400 && err.status < 500 && err.status !== 429;
  banner.textContent = lasting
    ? `This page cannot be shown: ${err.message}.`
    : `Could not refresh this page: ${err.message}. Retrying every ${ms / 1000} s; what is shown may be out of date.`;
  banner.hidden = false;
}

/** Run ``load`` now and every ``ms``; ``updated`` (an element) says when it last succeeded. */
export function every(ms, load, { updated } = {}) {
  let timer = null;
  let stopped = false;
  let running = false;

  async function tick(scheduled = true) {
    if (stopped) return;
    if (!document.hidden && !running && !(scheduled && keyboardInView())) {
      running = true;
      try {
        await load();
        document.getElementById("refresh-problem").hidden = true;
        if (updated) updated.textContent = `Updated ${fmtTime(Date.now() / 1000)}`;
      } catch (err) {
        console.warn("refresh failed", err);
        if (!stopped) showProblem(err, ms);
      } finally {
        running = false;
      }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  }

  tick(false);
  return {
    stop() { stopped = true; clearTimeout(timer); document.getElementById("refresh-problem").hidden = true; },
    /** Reload now (after an action), then keep the rhythm. */
    async now() { clearTimeout(timer); await tick(false); },
  };
}
