// One client: why it is suspected (reasons in words), what the serving tier does with it,
// its alerts, and plots over time of its risk, its extraction estimate (how much of the model
// it already has) and the features behind the reasons.

import { isEditing, statusActions } from "./actions.js";
import { alertCard } from "./alerts.js";
import { api, ApiError } from "./api.js";
import { timeChart } from "./charts.js";
import { h, replace } from "./dom.js";
import { featureInfo, featureOrder, fmtNumber, fmtRisk, fmtTime, reasonText, riskLevel, toEpoch } from "./format.js";
import { listOf, statusBadge } from "./leaderboard.js";
import { every } from "./poll.js";

const HISTORY_LIMIT = 1000;
/** Charted on its own, beside the risk (each history point's `extraction`), not as a feature. */
const EXTRACTION = "extraction";

function numericFeatureNames(points, snapshot) {
  const names = new Set();
  for (const features of [snapshot, ...points.map((p) => p.features)]) {
    for (const [name, value] of Object.entries(features ?? {})) {
      if (name !== EXTRACTION && typeof value === "number" && Number.isFinite(value)) names.add(name);
    }
  }
  return featureOrder(names);
}

/** The model's extraction levels (block, degrade) as dashed lines, where its policy sets them. */
function extractionLevels(policy) {
  return [
    ["extraction_block", "block level"],
    ["extraction_degrade", "degrade level"],
  ].filter(([name]) => typeof policy?.[name] === "number").map(([name, label]) => ({ value: policy[name], label }));
}

function summary(client, decision, model, session, done) {
  const leftOut = Boolean(model?.left_out?.includes(client.client_id));
  const level = riskLevel(client.risk, session.config);
  return h("div", { class: "client-summary" },
    h("div", { class: `big-risk ${level}` }, h("span", null, fmtRisk(client.risk)), h("small", null, "risk")),
    h("dl", null,
      h("dt", null, "Status"), h("dd", null, statusBadge(client.status),
        client.status_changed_by ? h("span", { class: "muted" }, ` by ${client.status_changed_by}`) : null),
      h("dt", null, "Model"), h("dd", null, client.model_id),
      leftOut && h("dt", null, "Reference"),
      leftOut && h("dd", { id: "left-out" },
        "left out of the model's warm-up reference: its inputs sat far from everyone else's"),
      model?.warning && h("dt", null, "Profile"),
      model?.warning && h("dd", { id: "profile-warning", class: "warning" }, model.warning),
      h("dt", null, "Queries"), h("dd", null, fmtNumber(client.queries)),
      h("dt", null, "First seen"), h("dd", null, fmtTime(client.first_seen)),
      h("dt", null, "Last seen"), h("dd", null, fmtTime(client.last_seen)),
      decision && h("dt", null, "Serving decision"),
      decision && h("dd", { id: "decision" }, h("span", { class: `badge action-${decision.action}` }, decision.action),
        decision.output_precision !== null && decision.output_precision !== undefined
          ? ` (scores rounded to ${decision.output_precision} decimals)` : "")),
    statusActions(client, session, done));
}

export function renderClient(root, session, clientId) {
  const path = `v1/clients/${encodeURIComponent(clientId)}`;
  const head = h("div", { class: "client-head" });
  const reasons = h("ul", { class: "reasons", id: "reasons" });
  const alertList = h("ul", { class: "alert-feed", id: "client-alerts" });
  const chartGrid = h("div", { class: "charts", id: "charts" });
  const charts = new Map();
  const { alert_risk: alertRisk, clear_risk: clearRisk } = session.config;
  // Fetched once, not at every poll: the profiles behind it change only when a model is fitted.
  const models = api("v1/models").catch(() => null);

  replace(root,
    h("p", null, h("a", { href: "#/clients" }, "← Leaderboard")),
    h("section", { class: "panel" }, h("h1", null, "Client ", h("code", null, clientId)), head),
    h("section", { class: "panel" }, h("h2", null, "Why it is suspected"), reasons),
    h("section", { class: "panel" }, h("h2", null, "Alerts"), alertList),
    h("section", { class: "panel" }, h("h2", null, "Over time"), chartGrid));

  function chartFor(name, policy) {
    if (!charts.has(name)) {
      const info = name === "risk"
        ? { label: "Risk", unit: "0–1", help: "Dashed: alert opens above, closes below.", lines: [
          { value: alertRisk, label: "alert threshold" }, { value: clearRisk, label: "clear threshold" }] }
        : name === EXTRACTION
          ? { label: "Extraction estimate", unit: "0–1 agreement", lines: extractionLevels(policy),
            help: "How much of the model the client already has: the agreement with the model a copy "
              + "trained on its queries and answers would reach. Harm, beside the risk (intent); heavy "
              + "benign users reach about 0.9." }
          : featureInfo(name);
      const lines = info.lines ?? [
        ...(session.config.feature_thresholds?.[name] !== undefined
          ? [{ value: session.config.feature_thresholds[name], label: "alert threshold" }] : []),
        ...(info.reference ? [info.reference] : []),
      ];
      const chart = timeChart({ id: `chart-${name}`, title: info.label, unit: info.unit, help: info.help, lines });
      if (name === EXTRACTION) charts.get("risk").el.after(chart.el); // second, even if it appears late
      else chartGrid.append(chart.el);
      charts.set(name, chart);
    }
    return charts.get(name);
  }

  async function load() {
    let client;
    try {
      client = await api(path);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        // The API says why: never seen, blocked before its first query, or every event refused.
        replace(head, h("p", { class: "error" }, `No such client is tracked: ${err.problem?.detail ?? err.message}`));
        return;
      }
      throw err;
    }
    const [history, alerts, decision, policy, known] = await Promise.all([
      api(`${path}/history`, { params: { limit: HISTORY_LIMIT } }),
      api("v1/alerts", { params: { client_id: clientId, limit: 50 } }),
      api(`${path}/decision`).catch(() => null),
      api(`v1/models/${encodeURIComponent(client.model_id)}/policy`).catch(() => null),
      models,
    ]);
    // Whom the model's warm-up fit trimmed: an analyst's first suspects.
    const model = listOf(known).find((m) => m.model_id === client.model_id);
    replace(head, summary(client, decision, model, session, () => poll.now()));
    const reasonList = client.reasons ?? [];
    replace(reasons, reasonList.length
      ? reasonList.map((r) => h("li", null, reasonText(r)))
      : h("li", { class: "muted" }, "Nothing unusual so far."));
    const clientAlerts = listOf(alerts).filter((a) => a.client_id === clientId);
    if (!isEditing(alertList)) {
      replace(alertList, clientAlerts.length
        ? clientAlerts.map((a) => alertCard(a, session, () => poll.now()))
        : h("li", { class: "empty" }, "No alerts for this client."));
    }

    const points = listOf(history).slice().sort((a, b) => toEpoch(a.ts) - toEpoch(b.ts));
    const xs = points.map((p) => toEpoch(p.ts));
    const markers = clientAlerts.map((a) => ({ ts: toEpoch(a.opened_at ?? a.ts) }));
    chartFor("risk").update(xs, points.map((p) => p.risk), markers);
    if (points.some((p) => typeof p.extraction === "number")) {
      chartFor(EXTRACTION, policy).update(xs, points.map((p) => p.extraction ?? null), markers);
    }
    for (const name of numericFeatureNames(points, client.features)) {
      chartFor(name).update(xs, points.map((p) => p.features?.[name] ?? null), markers);
    }
  }

  const onResize = () => charts.forEach((c) => c.resize());
  window.addEventListener("resize", onResize);
  const poll = every(session.config.refresh_seconds * 1000, load);
  return () => {
    poll.stop();
    window.removeEventListener("resize", onResize);
    charts.forEach((c) => c.destroy());
  };
}
