// Risk leaderboard: clients sorted by risk, one page (50 rows) at a time (``pager.js``).

import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { fmtNumber, fmtRisk, fmtTime, reasonText, riskLevel } from "./format.js";
import { pager, PAGE_SIZE } from "./pager.js";
import { every } from "./poll.js";

const STATUSES = ["normal", "trusted", "blocked"];

export function riskCell(risk, config) {
  const level = riskLevel(risk, config);
  return h("td", { class: `risk ${level}` },
    h("span", { class: "bar", "aria-hidden": "true" }, h("span", { style: { width: `${Math.round(risk * 100)}%` } })),
    h("span", { class: "value" }, fmtRisk(risk)));
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, status);
}

function clientRow(client, rank, config) {
  const href = `#/client/${encodeURIComponent(client.client_id)}`;
  return h("tr", { dataset: { clientId: client.client_id } },
    h("td", { class: "rank" }, rank),
    h("td", { class: "client" }, h("a", { href }, client.client_id)),
    h("td", null, client.model_id),
    riskCell(client.risk, config),
    h("td", null, statusBadge(client.status)),
    h("td", { class: "num" }, fmtNumber(client.queries)),
    h("td", { class: "time" }, fmtTime(client.last_seen)),
    h("td", { class: "reason" }, (client.reasons ?? []).slice(0, 1).map(reasonText)));
}

export function renderLeaderboard(root, session, params) {
  const filters = {
    model: params.get("model") ?? "",
    status: params.get("status") ?? "",
    min_risk: params.get("min_risk") ?? "",
  };
  const modelSelect = h("select", { id: "filter-model", name: "model" }, h("option", { value: "" }, "all models"));
  const statusSelect = h("select", { id: "filter-status", name: "status" },
    h("option", { value: "" }, "any status"), STATUSES.map((s) => h("option", { value: s }, s)));
  const minRisk = h("input", { id: "filter-min-risk", name: "min_risk", type: "number", min: 0, max: 1, step: 0.05,
    placeholder: "0.00" });
  statusSelect.value = filters.status;
  minRisk.value = filters.min_risk;
  const body = h("tbody");
  const pages = pager(() => poll.now());
  const updated = h("span", { class: "updated" });

  function onFilter() {
    const query = new URLSearchParams(Object.entries({
      model: modelSelect.value, status: statusSelect.value, min_risk: minRisk.value,
    }).filter(([, v]) => v !== ""));
    location.hash = `#/clients${query.size ? `?${query}` : ""}`;
  }
  for (const control of [modelSelect, statusSelect, minRisk]) control.addEventListener("change", onFilter);

  replace(root,
    h("section", { class: "panel" },
      h("div", { class: "panel-head" },
        h("h1", null, "Risk leaderboard"),
        h("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
          h("label", null, "Model ", modelSelect), h("label", null, "Status ", statusSelect),
          h("label", null, "Min risk ", minRisk)),
        updated),
      h("table", { class: "clients", id: "leaderboard" },
        h("thead", null, h("tr", null, ["#", "Client", "Model", "Risk", "Status", "Queries", "Last seen", "Top reason"]
          .map((c) => h("th", null, c)))),
        body),
      pages.element));

  api("v1/models").then((models) => {
    const ids = listOf(models).map((m) => (typeof m === "string" ? m : m.model_id));
    // A model in the URL that has no profile yet (or a typo) is still the filter shown.
    if (filters.model && !ids.includes(filters.model)) ids.push(filters.model);
    for (const id of ids) modelSelect.append(h("option", { value: id }, id));
    modelSelect.value = filters.model;
  }).catch(() => {});

  async function load() {
    const data = await api("v1/clients", { params: { ...filters, limit: PAGE_SIZE, cursor: pages.cursor } });
    const items = listOf(data);
    replace(body, items.length
      ? items.map((c, i) => clientRow(c, pages.offset + i + 1, session.config))
      : h("tr", null, h("td", { colspan: 8, class: "empty" }, Object.values(filters).some((v) => v !== "")
        ? "No client matches these filters."
        : "No client seen yet: clients appear once the consumer has stored events; a new model's first " +
          "events wait for its profile (querywatch doctor lists them). Try querywatch up --demo.")));
    pages.shown(data?.next_cursor);
  }

  const poll = every(session.config.refresh_seconds * 1000, load, { updated });
  return () => poll.stop();
}

/** The rows of a list response, whether the API wraps them ({items}) or not. */
export function listOf(data) {
  if (Array.isArray(data)) return data;
  return data?.items ?? data?.data ?? [];
}
