// Campaigns: accounts linked as one theft. The list (#/campaigns) and one campaign
// (#/campaign/<id>): its members (each a link to its client page), the links that joined
// them (signal, strength, shared keys), the union's coverage and evidence, and, for admins,
// the false-positive verdict.

import { api } from "./api.js";
import { h, replace, toast } from "./dom.js";
import { fmtNumber, fmtRisk, fmtTime } from "./format.js";
import { pager, PAGE_SIZE } from "./pager.js";
import { every } from "./poll.js";

function campaignRow(c) {
  const href = `#/campaign/${encodeURIComponent(c.campaign_id)}`;
  return h("tr", { class: `campaign state-${c.state}`, dataset: { campaignId: c.campaign_id } },
    h("td", null, h("a", { href }, c.campaign_id)),
    h("td", null, c.model_id),
    h("td", null, String(c.members.length)),
    h("td", null, fmtRisk(c.peak_risk)),
    h("td", null, fmtTime(c.first_alert_at ?? c.opened_at)),
    h("td", null, h("span", { class: `badge state state-${c.state === "active" ? "open" : "resolved"}` },
      c.false_positive ? "false positive" : c.state)),
    h("td", { class: "muted" }, c.reasons[0] ?? ""));
}

export function renderCampaigns(root, session) {
  const body = h("tbody", { id: "campaign-rows" });
  const updated = h("span", { class: "updated" });
  const pages = pager(() => poll.now());
  replace(root, h("section", { class: "panel" },
    h("div", { class: "panel-head" }, h("h1", null, "Campaigns"), updated),
    h("table", { class: "campaigns" },
      h("thead", null, h("tr", null, ...["campaign", "model", "accounts", "peak risk", "alerted", "state", "why"]
        .map((t) => h("th", null, t)))),
      body),
    pages.element));

  async function load() {
    const page = await api("v1/campaigns", { params: { limit: PAGE_SIZE, cursor: pages.cursor } });
    replace(body, page.items.length ? page.items.map(campaignRow)
      : h("tr", { class: "empty" }, h("td", { colspan: 7 }, "No campaigns: no accounts are linked.")));
    pages.shown(page.next_cursor);
  }

  const poll = every(session.config.refresh_seconds * 1000, load, { updated });
  return () => poll.stop();
}

function verdictForm(campaign, done) {
  const form = h("form", { class: "verdict-form" },
    h("label", null, "Note ", h("input", { name: "note", placeholder: "Why is it not a theft?" })),
    h("button", { type: "submit", class: "mark-false-positive" }, "Mark false positive"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api(`v1/campaigns/${encodeURIComponent(campaign.campaign_id)}/feedback`,
        { method: "POST", body: { false_positive: true, note: form.elements.note.value || null } });
      toast("Campaign marked a false positive.", "ok");
      await done();
    } catch (err) {
      toast(`Failed: ${err.message}`, "error");
    }
  });
  return form;
}

export function renderCampaign(root, session, campaignId) {
  const panel = h("section", { class: "panel", id: "campaign" });
  replace(root, panel);

  async function load() {
    const c = await api(`v1/campaigns/${encodeURIComponent(campaignId)}`);
    const ev = c.evidence ?? {};
    replace(panel,
      h("div", { class: "panel-head" }, h("h1", null, `Campaign ${c.campaign_id}`),
        h("span", { class: "muted" }, ` · ${c.model_id} · risk ${fmtRisk(c.risk)} (peak ${fmtRisk(c.peak_risk)})`)),
      h("p", { class: "campaign-state" }, c.false_positive
        ? `Marked a false positive by ${c.marked_by ?? "an analyst"}${c.note ? `: ${c.note}` : ""}.`
        : `${c.state === "active" ? "Active" : "Ended"}; first link ${fmtTime(c.opened_at)}` +
          (c.first_alert_at ? `, alerted ${fmtTime(c.first_alert_at)}` : "")),
      h("h2", null, "Why"),
      h("ul", { class: "reasons" }, c.reasons.map((r) => h("li", null, r))),
      h("h2", null, "Coverage of the union"),
      h("p", { class: "coverage" },
        `${fmtNumber(ev.union_cells ?? 0)} input cells, ${fmtNumber(ev.union_coverage_ratio ?? 0, 2)}× ` +
        `one benign client of the same size; ${fmtNumber(ev.queries ?? 0)} queries` +
        (c.extraction === null ? "" : `; pooled extraction estimate ${fmtNumber(c.extraction, 2)}`)),
      h("h2", null, `Members (${c.members.length}${c.capped ? `, ${c.capped} more left out by the cap` : ""})`),
      h("ul", { class: "members", id: "campaign-members" }, c.members.map((m) =>
        h("li", null, h("a", { href: `#/client/${encodeURIComponent(m)}` }, m)))),
      h("h2", null, "Links"),
      h("table", { class: "links", id: "campaign-links" },
        h("thead", null, h("tr", null, ...["account", "linked to", "signal", "evidence (nats)", "step pairs", "shared keys"]
          .map((t) => h("th", null, t)))),
        h("tbody", null, c.links.map((l) => h("tr", null,
          h("td", null, l.b), h("td", null, l.a), h("td", null, l.signal), h("td", null, fmtNumber(l.evidence)),
          h("td", null, `${l.hits} of ${l.trials}`), h("td", null, l.shared_keys.join(", ") || "none"))))),
      session.isAdmin && !c.false_positive ? verdictForm(c, load) : null);
  }

  const poll = every(session.config.refresh_seconds * 1000, load);
  return () => poll.stop();
}
