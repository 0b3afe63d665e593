// Entry point: sign-in, the session (role and thresholds) and the hash router.
//   #/clients[?model=&status=&min_risk=]   risk leaderboard
//   #/alerts[?state=]                      alert feed
//   #/client/<client_id>                   one client: reasons, alerts, feature plots
//   #/campaigns, #/campaign/<campaign_id>  campaigns: accounts linked as one theft
//   #/webhooks                             webhook endpoints and their deliveries (admin)
//   #/policy                               per-model policy, its versions and calibration
//   #/silences[?history=1]                 silences (admins create and remove them)
//   #/refused                              clients by their refused (never scored) events

import { api, ApiError, apiKey, forgetApiKey, saveApiKey } from "./api.js";
import { renderAlerts } from "./alerts.js";
import { renderCampaign, renderCampaigns } from "./campaigns.js";
import { renderWebhooks } from "./webhooks.js";
import { renderClient } from "./client.js";
import { renderPolicy } from "./policy.js";
import { renderRefused } from "./refused.js";
import { renderSilences } from "./silences.js";
import { h, replace } from "./dom.js";
import { listOf, renderLeaderboard } from "./leaderboard.js";

const view = document.getElementById("view");
const session = { me: null, config: null, isAdmin: false };
let disposeView = null;
let countTimer = null;

async function loadSession(key) {
  const me = await api("v1/me", { key });
  const config = await api("v1/ui/config", { key });
  return { me, config, isAdmin: me.role === "admin" };
}

function showLogin(message = "") {
  disposeCurrentView();
  clearInterval(countTimer);
  replace(view);
  document.getElementById("nav").hidden = true;
  document.getElementById("session").hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message;
  document.getElementById("api-key").focus();
}

function showApp() {
  document.getElementById("login").hidden = true;
  document.getElementById("nav").hidden = false;
  document.getElementById("session").hidden = false;
  const role = document.getElementById("role");
  role.textContent = `${session.me.name ?? "key"} · ${session.me.role}`;
  role.className = `role ${session.me.role}`;
  document.body.classList.toggle("admin", session.isAdmin);
  showOpenAlerts();
  clearInterval(countTimer);
  countTimer = setInterval(showOpenAlerts, session.config.refresh_seconds * 1000);
}

/** The open alerts over every model, beside "Alerts" in the nav (hidden at none). */
async function showOpenAlerts() {
  const badge = document.getElementById("open-alerts");
  try {
    const open = listOf(await api("v1/models")).reduce((sum, m) => sum + (m.open_alerts ?? 0), 0);
    badge.textContent = String(open);
    badge.title = `${open} open alert${open === 1 ? "" : "s"}`;
    badge.hidden = open === 0;
  } catch {
    // Said by the view's own refresh, which meets the same API.
  }
}

function disposeCurrentView() {
  if (disposeView) disposeView();
  disposeView = null;
}

function route() {
  if (!session.me) return;
  disposeCurrentView();
  const [path, query = ""] = (location.hash || "#/clients").slice(1).split("?");
  const parts = path.split("/").filter(Boolean);
  const params = new URLSearchParams(query);
  let name = parts[0] || "clients";
  if (name === "client" && parts.length > 1) {
    disposeView = renderClient(view, session, decodeURIComponent(parts.slice(1).join("/")));
  } else if (name === "campaign" && parts.length > 1) {
    name = "campaigns";
    disposeView = renderCampaign(view, session, decodeURIComponent(parts.slice(1).join("/")));
  } else if (name === "campaigns") {
    disposeView = renderCampaigns(view, session);
  } else if (name === "alerts") {
    disposeView = renderAlerts(view, session, params);
  } else if (name === "policy") {
    disposeView = renderPolicy(view, session);
  } else if (name === "silences") {
    disposeView = renderSilences(view, session, params);
  } else if (name === "refused") {
    disposeView = renderRefused(view, session);
  } else if (name === "webhooks") {
    disposeView = renderWebhooks(view, session);
  } else {
    name = "clients";
    disposeView = renderLeaderboard(view, session, params);
  }
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.view === name);
  }
}

async function start() {
  if (!apiKey()) return showLogin();
  try {
    Object.assign(session, await loadSession(apiKey()));
  } catch (err) {
    forgetApiKey();
    return showLogin(err instanceof ApiError && err.status === 401 ? "" : `Cannot reach the API: ${err.message}`);
  }
  showApp();
  route();
}

document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("api-key");
  const key = input.value.trim();
  try {
    Object.assign(session, await loadSession(key));
  } catch (err) {
    const unknown = err instanceof ApiError && err.status === 401;
    document.getElementById("login-error").textContent = unknown
      ? "This API key is not valid (unknown or revoked)."
      : `Cannot sign in: ${err.message}`;
    return;
  }
  saveApiKey(key);
  input.value = "";
  showApp();
  route();
});

document.getElementById("logout").addEventListener("click", () => {
  forgetApiKey();
  session.me = null;
  showLogin();
});

window.addEventListener("querywatch:unauthorized", () => {
  forgetApiKey();
  session.me = null;
  showLogin("Your API key was refused (revoked?). Sign in again.");
});

window.addEventListener("hashchange", route);
start();
