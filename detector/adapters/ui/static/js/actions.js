// What an admin can do: acknowledge or resolve an alert, mark a client trusted or blocked.
// Readers see the same page without these controls (the API refuses them anyway: 403).

import { api } from "./api.js";
import { h, toast } from "./dom.js";

async function act(promise, done, message) {
  try {
    await promise;
    toast(message, "ok");
    await done();
  } catch (err) {
    toast(`Failed: ${err.message}`, "error");
  }
}

function alertPath(alert, action) {
  return `v1/alerts/${encodeURIComponent(alert.alert_id)}/${action}`;
}

/** True while an analyst is typing in an open resolve form: refreshes must not wipe it. */
export function isEditing(container) {
  return container.querySelector(".resolve-form:not([hidden])") !== null;
}

/** Buttons for one alert (and the resolve form they open), or nothing for a reader. */
export function alertActions(alert, session, done) {
  if (!session.isAdmin || alert.state === "resolved") return null;
  const form = h("form", { class: "resolve-form", hidden: true },
    h("label", null, "Note ", h("textarea", { name: "note", rows: 2, placeholder: "What was it?" })),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "false_positive" }), " False positive"),
    h("button", { type: "submit", class: "resolve-confirm" }, "Resolve alert"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { note: form.elements.note.value, false_positive: form.elements.false_positive.checked };
    const closeThenRefresh = () => { form.hidden = true; return done(); };
    act(api(alertPath(alert, "resolve"), { method: "POST", body }), closeThenRefresh, "Alert resolved.");
  });
  const opener = h("button", { type: "button", class: "resolve", onclick: () => {
    form.hidden = !form.hidden;
    if (!form.hidden) form.elements.note.focus();
  } }, "Resolve…");
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { form.hidden = true; opener.focus(); }
  });
  return h("div", { class: "actions" },
    alert.state === "open" && h("button", {
      type: "button", class: "ack",
      onclick: () => act(api(alertPath(alert, "ack"), { method: "POST" }), done, "Alert acknowledged."),
    }, "Acknowledge"),
    opener,
    form);
}

/** Trusted / normal / blocked switch for a client, or nothing for a reader. */
export function statusActions(client, session, done) {
  if (!session.isAdmin) return null;
  const set = (status) => act(
    api(`v1/clients/${encodeURIComponent(client.client_id)}/status`, { method: "PUT", body: { status } }),
    done, `Client marked ${status}.`);
  return h("div", { class: "actions status-actions" },
    ["trusted", "normal", "blocked"].filter((s) => s !== client.status).map((s) => h("button", {
      type: "button", class: `set-${s}`, onclick: () => set(s),
    }, s === "normal" ? "Mark normal" : `Mark ${s}`)));
}
