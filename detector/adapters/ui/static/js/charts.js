// Time plots of a client's risk and features with uPlot (vendored, MIT, ~50 KB), with the
// alert threshold or benign reference drawn as a dashed line and alert openings as markers.

import { h } from "./dom.js";

const SERIES_COLOR = "#1f5fbf";
const LINE_COLORS = ["#c0392b", "#7f8c8d", "#27ae60"];

/** Vertical markers (alerts opened) drawn over the plot area. */
function markerPlugin(getMarkers) {
  return {
    hooks: {
      draw: (u) => {
        const { ctx } = u;
        const { top, height } = u.bbox;
        ctx.save();
        ctx.strokeStyle = "#c0392b";
        ctx.lineWidth = 1.5 * devicePixelRatio;
        ctx.setLineDash([2 * devicePixelRatio, 3 * devicePixelRatio]);
        for (const marker of getMarkers()) {
          const x = Math.round(u.valToPos(marker.ts, "x", true));
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
        }
        ctx.restore();
      },
    },
  };
}

/**
 * A chart of one quantity over time. `lines` are horizontal reference lines
 * ({value, label}); `markers` are alert openings ({ts}). Returns {el, update(xs, ys, markers)}.
 */
export function timeChart({ id, title, unit, help, lines = [], height = 180 }) {
  const plot = h("div", { class: "plot" });
  const el = h("figure", { class: "chart", id },
    h("figcaption", null, h("strong", null, title), unit ? h("span", { class: "muted" }, ` (${unit})`) : null,
      help ? h("small", null, help) : null),
    plot);
  let chart = null;
  let markers = [];

  function data(xs, ys) {
    return [xs, ys, ...lines.map((line) => xs.map(() => line.value))];
  }

  function create(xs, ys) {
    const width = Math.max(plot.clientWidth || el.parentElement?.clientWidth || 600, 300);
    const options = {
      width,
      height,
      plugins: [markerPlugin(() => markers)],
      scales: { x: { time: true } },
      axes: [{}, { size: 60 }],
      series: [
        {},
        { label: title, stroke: SERIES_COLOR, width: 2, fill: "rgba(31,95,191,0.08)", spanGaps: true,
          points: { show: xs.length < 60 } },
        ...lines.map((line, i) => ({
          label: line.label, stroke: LINE_COLORS[i % LINE_COLORS.length], dash: [6, 4], width: 1.5,
          points: { show: false },
        })),
      ],
    };
    chart = new window.uPlot(options, data(xs, ys), plot);
    el.dataset.points = String(xs.length);
  }

  return {
    el,
    update(xs, ys, newMarkers = []) {
      markers = newMarkers;
      if (!chart) create(xs, ys);
      else chart.setData(data(xs, ys));
      el.dataset.points = String(xs.length);
    },
    resize() {
      if (chart) chart.setSize({ width: Math.max(plot.clientWidth, 300), height });
    },
    destroy() {
      if (chart) chart.destroy();
      chart = null;
    },
  };
}
