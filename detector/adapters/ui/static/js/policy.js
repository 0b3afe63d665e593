// Per-model runtime policy: mode (enforce / monitor), threshold overrides, degrade settings,
// its versions (revert), and the calibration report built from analysts' false-positive
// feedback, whose suggestion only an admin applies. Every change goes through the audited API.
// Loaded once and after each action, not polled: a refresh must not wipe a form being edited.

import { api } from "./api.js";
import { h, replace, toast } from "./dom.js";
import { fmtTime } from "./format.js";

/** The overridable fields: blank means "the static default" (null in the API). */
const OVERRIDES = [
  ["degrade_risk", "Degrade at risk", "0.01"],
  ["block_risk", "Block at risk", "0.01"],
  ["degraded_precision", "Degraded decimals", "1"],
  ["page_risk", "Page only at risk", "0.01"],
  ["extraction_block", "Block at extraction", "0.01"],
  ["extraction_degrade", "Degrade at extraction", "0.01"],
];

function modelPath(modelId, tail) {
  return `v1/models/${encodeURIComponent(modelId)}/${tail}`;
}

async function act(promise, message, reload) {
  try {
    await promise;
    toast(message, "ok");
  } catch (err) {
    toast(`Failed: ${err.message}`, "error");
  }
  await reload();
}

/** What a blank field means: the static default's value where the dashboard knows it, or off. */
function placeholder(name, config) {
  if (name in config) return `default ${config[name]}`;
  return name === "degraded_precision" ? "default" : "off";
}

function policyForm(policy, session, reload) {
  const locked = !session.isAdmin;
  const form = h("form", { class: "policy-form" },
    h("label", null, "Mode ", h("select", { name: "mode", disabled: locked },
      ["enforce", "monitor"].map((m) => h("option", { value: m, selected: m === policy.mode }, m)))),
    OVERRIDES.map(([name, label, step]) => h("label", null, `${label} `,
      h("input", { type: "number", name, min: 0, max: name === "degraded_precision" ? 6 : 1, step,
        value: policy[name] ?? "", placeholder: placeholder(name, session.config), disabled: locked }))),
    h("small", { class: "muted extraction-hint" }, "Extraction levels (blank: off) act on how much of the "
      + "model a client already has, whatever its risk: a harm cap, not a theft signal. Heavy benign users "
      + "reach about 0.9 with natural queries."),
    !locked && h("label", null, "Note ", h("input", { type: "text", name: "note", maxlength: 2000,
      placeholder: "why (audit log)" })),
    !locked && h("button", { type: "submit", class: "save-policy" }, "Save"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { mode: form.elements.mode.value };
    for (const [name] of OVERRIDES) {
      const raw = form.elements[name].value.trim();
      body[name] = raw === "" ? null : Number(raw);
    }
    if (form.elements.note.value.trim()) body.note = form.elements.note.value.trim();
    act(api(modelPath(policy.model_id, "policy"), { method: "PUT", body }),
      `Policy of ${policy.model_id} saved.`, reload);
  });
  return form;
}

function versionList(modelId, versions, current, session, reload) {
  if (!versions.length) return h("p", { class: "muted" }, "Never changed: enforce, no overrides.");
  return h("ol", { class: "policy-versions", reversed: true }, versions.map((v) => h("li", {
    dataset: { version: String(v.version) } },
  h("span", null, `v${v.version} · ${v.policy.mode} · by ${v.changed_by} · ${fmtTime(v.changed_at)}`),
  session.isAdmin && v.version !== current && h("button", {
    type: "button", class: "revert",
    onclick: () => act(api(modelPath(modelId, "policy/revert"), { method: "POST", body: { version: v.version } }),
      `Policy of ${modelId} reverted to v${v.version}.`, reload),
  }, `Revert to v${v.version}`))));
}

function calibrationReport(report, session, reload) {
  const suggestion = report.suggested_page_risk;
  const applicable = session.isAdmin && suggestion !== null && suggestion !== report.current_page_risk;
  return h("div", { class: "calibration" },
    h("h3", null, "Calibration"),
    h("dl", null,
      h("dt", null, "Alerts"), h("dd", { class: "alerts" }, String(report.alerts)),
      h("dt", null, "False positives"), h("dd", { class: "false-positives" }, String(report.false_positives)),
      h("dt", null, "Current page risk"), h("dd", null, report.current_page_risk === null ? "every alert pages"
        : report.current_page_risk.toFixed(3)),
      h("dt", null, "Suggested page risk"), h("dd", { class: "suggestion" }, suggestion === null
        ? "no false positives yet"
        : `${suggestion.toFixed(3)} (would also have kept ${report.true_alerts_below} other alert${report.true_alerts_below === 1 ? "" : "s"} quiet)`)),
    applicable && h("button", {
      type: "button", class: "apply-suggestion",
      onclick: () => act(api(modelPath(report.model_id, "calibration/apply"), { method: "POST" }),
        `Page risk of ${report.model_id} set to ${suggestion.toFixed(3)}.`, reload),
    }, "Apply suggestion"));
}

async function modelCard(model, session, reload) {
  const [policy, versions, report] = await Promise.all([
    api(modelPath(model.model_id, "policy")),
    api(modelPath(model.model_id, "policy/versions")),
    api(modelPath(model.model_id, "calibration")),
  ]);
  return h("li", { class: "model-policy", dataset: { modelId: model.model_id, mode: policy.mode } },
    h("div", { class: "alert-head" },
      h("strong", null, model.model_id),
      h("span", { class: `badge mode mode-${policy.mode}` }, policy.mode),
      h("span", { class: "muted version" }, `policy v${policy.version}`),
      policy.mode === "monitor" && h("span", { class: "muted" },
        "detects and stores, decides allow, pages nobody: a daily digest lists what would have paged")),
    policyForm(policy, session, reload),
    h("details", null, h("summary", null, "Versions"),
      versionList(model.model_id, versions, policy.version, session, reload)),
    calibrationReport(report, session, reload));
}

export function renderPolicy(root, session) {
  const list = h("ul", { class: "policy-list", id: "policy-list" });
  replace(root, h("section", { class: "panel" },
    h("div", { class: "panel-head" }, h("h1", null, "Policy"),
      h("span", { class: "muted" }, session.isAdmin
        ? "Changes are audited and can be reverted."
        : "Read only: an admin key changes policy.")),
    list));

  async function load() {
    const models = await api("v1/models");
    const cards = await Promise.all(models.map((m) => modelCard(m, session, load)));
    replace(list, cards.length ? cards : h("li", { class: "empty" }, "No model profiled yet: a model appears once its profile is stored (a trusted file, or its first events; querywatch doctor lists the models warming up)."));
  }

  load().catch((err) => toast(`Failed: ${err.message}`, "error"));
  return () => {};
}
