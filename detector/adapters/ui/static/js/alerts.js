// Alert feed: newest first, a page at a time (``pager.js``), refreshed every few seconds;
// alerts that arrived since the page opened are highlighted, so nobody needs to reload.

import { alertActions, isEditing } from "./actions.js";
import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { fmtRisk, fmtTime, reasonText } from "./format.js";
import { listOf } from "./leaderboard.js";
import { pager, PAGE_SIZE } from "./pager.js";
import { every } from "./poll.js";

const STATES = ["open", "acknowledged", "resolved"];

export function alertCard(alert, session, done, isNew = false) {
  const href = `#/client/${encodeURIComponent(alert.client_id)}`;
  const who = alert.state === "resolved"
    ? `resolved by ${alert.resolved_by ?? "?"}${alert.false_positive ? " · false positive" : ""}`
    : alert.state === "acknowledged" ? `acknowledged by ${alert.acknowledged_by ?? "?"}` : "";
  return h("li", { class: `alert sev-${alert.severity} state-${alert.state}${isNew ? " new" : ""}`,
    dataset: { alertId: alert.alert_id } },
  h("div", { class: "alert-head" },
    h("span", { class: `badge severity-${alert.severity}` }, alert.severity),
    h("a", { href, class: "client" }, alert.client_id),
    h("span", { class: "muted" }, ` on ${alert.model_id} · risk ${fmtRisk(alert.risk)} · ${alert.queries} queries`),
    h("span", { class: `badge state state-${alert.state}` }, alert.state),
    h("time", null, fmtTime(alert.opened_at ?? alert.ts))),
  h("ul", { class: "reasons" }, (alert.reasons ?? []).map((r) => h("li", null, reasonText(r)))),
  who && h("p", { class: "muted" }, who, alert.resolution_note ? ` — “${alert.resolution_note}”` : ""),
  alert.silenced_by && h("p", { class: "muted silenced" },
    h("a", { href: "#/silences?history=1" }, `silenced by #${alert.silenced_by}`), ": stored, not delivered"),
  h("p", { class: "muted technique" }, `MITRE ATLAS ${alert.technique ?? ""}`),
  alertActions(alert, session, done));
}

export function renderAlerts(root, session, params) {
  const state = params.get("state") ?? "open";
  const seen = new Set();
  let first = true;
  const list = h("ul", { class: "alert-feed", id: "alert-feed" });
  const updated = h("span", { class: "updated" });
  const pages = pager(() => poll.now());
  const tabs = h("nav", { class: "tabs" }, [...STATES, "all"].map((s) => h("a", {
    href: `#/alerts?state=${s}`, class: s === state ? "active" : "",
  }, s)));

  replace(root, h("section", { class: "panel" },
    h("div", { class: "panel-head" }, h("h1", null, "Alerts"), tabs, updated), list, pages.element));

  async function load() {
    if (isEditing(list)) return;
    const data = await api("v1/alerts", {
      params: { state: state === "all" ? "" : state, limit: PAGE_SIZE, cursor: pages.cursor },
    });
    const alerts = listOf(data);
    replace(list, alerts.length
      ? alerts.map((a) => alertCard(a, session, () => poll.now(), !first && !seen.has(a.alert_id)))
      : h("li", { class: "empty" }, `No ${state === "all" ? "" : `${state} `}alerts.`));
    for (const a of alerts) seen.add(a.alert_id);
    first = false;
    pages.shown(data?.next_cursor);
  }

  const poll = every(session.config.refresh_seconds * 1000, load, { updated });
  return () => poll.stop();
}
