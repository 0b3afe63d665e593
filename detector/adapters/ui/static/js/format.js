// How numbers, times, features and reasons read on screen.

/** The features the issue asks to plot, in this order; any other numeric feature follows. */
export const FEATURES = {
  coverage_ratio: {
    label: "Coverage ratio",
    unit: "× benign",
    help: "Distinct input-space cells visited, divided by what a benign client reaches after as many queries.",
    reference: { value: 1, label: "benign expectation" },
  },
  ood_share: {
    label: "Out-of-distribution share",
    unit: "share",
    help: "Share of queries far from every input the model normally sees.",
  },
  distance_stat: {
    label: "Distance-test statistic",
    unit: "",
    help: "How far the client's query distances are from benign ones (near-duplicates and probing chains).",
  },
  class_entropy: {
    label: "Predicted-class entropy",
    unit: "bits",
    help: "Spread of the classes the model answered; thieves balance the classes they ask about.",
  },
  rate_per_hour: {
    label: "Rate",
    unit: "queries / hour",
    help: "Queries per hour of event time.",
  },
};

export function featureInfo(name) {
  return FEATURES[name] ?? { label: humanize(name), unit: "", help: "" };
}

/** Feature names of a snapshot (or history points), the five main ones first. */
export function featureOrder(names) {
  const known = Object.keys(FEATURES).filter((n) => names.has(n));
  const others = [...names].filter((n) => !(n in FEATURES)).sort();
  return [...known, ...others];
}

export function humanize(code) {
  const words = String(code).replace(/[_-]+/g, " ").trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** A reason as a sentence: the engine's own text when it has words, else its code made readable. */
export function reasonText(reason) {
  if (reason && typeof reason === "object") return reason.text ?? reason.message ?? humanize(reason.code ?? "");
  const text = String(reason);
  return /\s/.test(text) ? text : humanize(text);
}

export function fmtNumber(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "–";
  const n = Number(value);
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString("en");
  return Number(n.toPrecision(digits)).toString();
}

export function fmtRisk(risk) {
  return risk === null || risk === undefined ? "–" : Number(risk).toFixed(2);
}

/** Seconds since the epoch, from an RFC 3339 string or a number. */
export function toEpoch(ts) {
  if (ts === null || ts === undefined) return null;
  if (typeof ts === "number") return ts;
  const ms = Date.parse(ts);
  return Number.isNaN(ms) ? null : ms / 1000;
}

export function fmtTime(ts) {
  const epoch = toEpoch(ts);
  if (epoch === null) return "–";
  return new Date(epoch * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

export function riskLevel(risk, thresholds) {
  if (risk >= thresholds.alert_risk) return "high";
  if (risk >= thresholds.clear_risk) return "mid";
  return "low";
}
