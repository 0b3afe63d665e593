// Webhook endpoints and their latest deliveries (admin keys only): where alerts were sent and
// how each delivery went. The demo's own receiver shows up here on a first run.

import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { fmtTime } from "./format.js";
import { every } from "./poll.js";

const SHOWN = 20;

function deliveryRow(d) {
  return h("tr", { class: `delivery state-${d.state}` },
    h("td", null, d.alert_id ?? (d.notice_id ? `notice #${d.notice_id}` : d.webhook_id)),
    h("td", null, h("span", { class: `badge state state-${d.state}` }, d.state)),
    h("td", null, String(d.attempts)),
    h("td", null, d.last_status === null ? "-" : String(d.last_status)),
    h("td", null, fmtTime(d.delivered_at ?? d.created_at)),
    h("td", { class: "muted" }, d.last_error ?? ""));
}

function endpointCard(endpoint, deliveries) {
  return h("li", { class: "webhook", dataset: { endpointId: String(endpoint.id) } },
    h("div", { class: "alert-head" },
      h("strong", null, endpoint.url),
      h("span", { class: "muted" }, ` · min severity ${endpoint.min_severity}` +
        (endpoint.model_id ? ` · model ${endpoint.model_id}` : "")),
      h("span", { class: `badge state ${endpoint.enabled ? "state-open" : "state-resolved"}` },
        endpoint.enabled ? "enabled" : `paused${endpoint.disabled_reason ? `: ${endpoint.disabled_reason}` : ""}`)),
    deliveries.length
      ? h("table", { class: "deliveries" },
        h("thead", null, h("tr", null, ...["alert", "state", "attempts", "HTTP", "when", "last error"]
          .map((t) => h("th", null, t)))),
        h("tbody", null, deliveries.map(deliveryRow)))
      : h("p", { class: "muted empty" }, "No deliveries yet."));
}

export function renderWebhooks(root, session) {
  const list = h("ul", { class: "webhook-list", id: "webhook-list" });
  const updated = h("span", { class: "updated" });
  replace(root, h("section", { class: "panel" },
    h("div", { class: "panel-head" }, h("h1", null, "Webhooks"), updated), list));
  if (!session.isAdmin) {
    replace(list, h("li", { class: "empty" }, "Webhook endpoints are shown to admin keys only."));
    return () => {};
  }

  async function load() {
    const endpoints = await api("v1/webhooks");
    const cards = await Promise.all(endpoints.map(async (e) => {
      const page = await api(`v1/webhooks/${e.id}/deliveries`, { params: { limit: SHOWN } });
      return endpointCard(e, page.items);
    }));
    replace(list, cards.length ? cards : h("li", { class: "empty" },
      "No webhook endpoints. Register one with POST /v1/webhooks (see the README)."));
  }

  const poll = every(session.config.refresh_seconds * 1000, load, { updated });
  return () => poll.stop();
}
