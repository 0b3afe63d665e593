// One page of a list at a time, through the API's keyset cursor: the cursor that opened each
// page is kept, so "Previous" goes back without offsets, and a list of 100,000 rows costs no
// more than one page. The leaderboard, the alert feed and the campaigns list page this way.

import { h } from "./dom.js";

export const PAGE_SIZE = 50;

/** Pager controls; ``reload`` shows the page ``cursor`` opens, then calls ``shown``. */
export function pager(reload) {
  const cursors = [null]; // cursors[i] opens page i
  let page = 0;
  let nextCursor = null;
  const label = h("span", { class: "page" });
  const prev = h("button", { type: "button", id: "prev-page", onclick: () => go(page - 1) }, "← Previous");
  const next = h("button", { type: "button", id: "next-page", onclick: () => go(page + 1) }, "Next →");

  function go(target) {
    if (target < 0 || (target > page && !nextCursor)) return;
    if (target > page) cursors[target] = nextCursor;
    page = target;
    reload();
  }

  return {
    element: h("div", { class: "pager" }, prev, label, next),
    /** The cursor of the page on show (null: the first). */
    get cursor() { return cursors[page]; },
    /** Rows before this page: the rank of its first row, less one. */
    get offset() { return page * PAGE_SIZE; },
    /** The page was loaded; ``next_cursor`` (null at the end) opens the next one. */
    shown(next_cursor) {
      nextCursor = next_cursor ?? null;
      prev.disabled = page === 0;
      next.disabled = !nextCursor;
      label.textContent = `Page ${page + 1}`;
    },
  };
}
