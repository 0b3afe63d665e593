// Refused events (#/refused): clients by how many of their events the consumers refused, with
// the reasons and models. A refused event is never scored, so a client whose every event is
// refused has no risk and no row on the leaderboard: this is where an analyst sees it.

import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { fmtNumber, fmtTime } from "./format.js";
import { every } from "./poll.js";

const SHOWN = 100;

function refusedRow(c) {
  const reasons = Object.entries(c.reasons).sort((a, b) => b[1] - a[1]);
  return h("tr", { class: "refused-client", dataset: { clientId: c.client_id } },
    h("td", { class: "client" }, h("a", { href: `#/client/${encodeURIComponent(c.client_id)}` }, c.client_id)),
    h("td", { class: "num" }, fmtNumber(c.events)),
    h("td", null, reasons.map(([reason, n]) => h("span", { class: "badge matcher" }, `${reason} ${fmtNumber(n)}`))),
    h("td", null, c.models.join(", ")),
    h("td", { class: "time" }, fmtTime(c.last_at)));
}

export function renderRefused(root, session) {
  const body = h("tbody", { id: "refused-rows" });
  const updated = h("span", { class: "updated" });
  replace(root, h("section", { class: "panel" },
    h("div", { class: "panel-head" }, h("h1", null, "Refused events"), updated),
    h("p", { class: "muted" }, "Clients whose events were refused (never scored), most first, among the dead "
      + "letters kept. A model that answers what querywatch refuses serves these clients unseen by the tests."),
    h("table", { class: "clients refused" },
      h("thead", null, h("tr", null, ...["client", "refused", "why", "models", "last"]
        .map((t) => h("th", null, t)))),
      body)));

  async function load() {
    const clients = await api("v1/dead-letters/clients", { params: { limit: SHOWN } });
    replace(body, clients.length ? clients.map(refusedRow)
      : h("tr", { class: "empty" }, h("td", { colspan: 5 }, "No refused events name a client.")));
  }

  const poll = every(session.config.refresh_seconds * 1000, load, { updated });
  return () => poll.stop();
}
