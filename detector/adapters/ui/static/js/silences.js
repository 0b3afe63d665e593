// Silences: matching alerts are stored and decided as usual but page nobody until the silence
// expires or is removed. Admins create and remove them here (audited, announced); everyone
// sees which are active, and with "history" the expired and removed ones too.

import { api } from "./api.js";
import { h, replace, toast } from "./dom.js";
import { fmtTime } from "./format.js";
import { every } from "./poll.js";

const MATCHERS = [
  ["client_id", "Client"],
  ["model_id", "Model"],
  ["campaign_id", "Campaign"],
  ["reason_contains", "Reason contains"],
];
const HOURS = [1, 4, 24, 72, 168];

function silenceState(s) {
  if (s.removed_at) return `removed by ${s.removed_by} · ${fmtTime(s.removed_at)}`;
  if (new Date(s.expires_at) <= new Date()) return `expired ${fmtTime(s.expires_at)}`;
  return `until ${fmtTime(s.expires_at)}`;
}

function silenceItem(s, session, reload) {
  const active = !s.removed_at && new Date(s.expires_at) > new Date();
  return h("li", { class: `silence ${active ? "active" : "inactive"}`, dataset: { silenceId: String(s.id) } },
    h("div", { class: "alert-head" },
      h("strong", null, `#${s.id}`),
      MATCHERS.filter(([name]) => s[name]).map(([name, label]) => h("span", { class: "badge matcher" },
        `${label.toLowerCase()}: ${s[name]}`)),
      h("span", { class: "muted state" }, silenceState(s)),
      h("time", null, `by ${s.created_by} · ${fmtTime(s.created_at)}`)),
    h("p", { class: "comment" }, s.comment),
    session.isAdmin && active && h("div", { class: "actions" }, h("button", {
      type: "button", class: "remove-silence",
      onclick: async () => {
        try {
          await api(`v1/silences/${s.id}`, { method: "DELETE" });
          toast(`Silence #${s.id} removed.`, "ok");
        } catch (err) {
          toast(`Failed: ${err.message}`, "error");
        }
        await reload();
      },
    }, "Remove")));
}

function createForm(reload) {
  const form = h("form", { class: "silence-form", id: "silence-form" },
    MATCHERS.map(([name, label]) => h("label", null, `${label} `,
      h("input", { type: "text", name, maxlength: 256 }))),
    h("label", null, "For ", h("select", { name: "hours" },
      HOURS.map((n) => h("option", { value: n, selected: n === 24 }, n < 24 ? `${n} h` : `${n / 24} d`)))),
    h("label", { class: "wide" }, "Why ", h("input", { type: "text", name: "comment", maxlength: 2000, required: true,
      placeholder: "shown with the silence and announced" })),
    h("button", { type: "submit", class: "create-silence" }, "Create silence"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { comment: form.elements.comment.value.trim() };
    for (const [name] of MATCHERS) {
      const value = form.elements[name].value.trim();
      if (value) body[name] = value;
    }
    body.expires_at = new Date(Date.now() + Number(form.elements.hours.value) * 3600e3).toISOString();
    try {
      const created = await api("v1/silences", { method: "POST", body });
      toast(`Silence #${created.id} created.`, "ok");
      form.reset();
    } catch (err) {
      toast(`Failed: ${err.message}`, "error");
    }
    await reload();
  });
  return form;
}

export function renderSilences(root, session, params) {
  const history = params.get("history") === "1";
  const list = h("ul", { class: "silence-list", id: "silence-list" });
  const tabs = h("nav", { class: "tabs" },
    h("a", { href: "#/silences", class: history ? "" : "active" }, "active"),
    h("a", { href: "#/silences?history=1", class: history ? "active" : "" }, "history"));
  replace(root,
    session.isAdmin && h("section", { class: "panel" }, h("h2", null, "New silence"),
      h("p", { class: "muted" }, "Matching alerts are stored and decided as usual but page nobody. "
        + "Set at least one matcher; all set ones must match."),
      createForm(() => poll.now())),
    h("section", { class: "panel" },
      h("div", { class: "panel-head" }, h("h1", null, "Silences"), tabs), list));

  async function load() {
    const rows = await api("v1/silences", { params: { include_inactive: history ? "true" : "" } });
    replace(list, rows.length ? rows.map((s) => silenceItem(s, session, () => poll.now()))
      : h("li", { class: "empty" }, history ? "No silences yet." : "No active silences."));
  }

  const poll = every(session.config.refresh_seconds * 1000, load);
  return () => poll.stop();
}
