/* Tiny hand-drawn SVG charts (no library, no build step): a line chart and a bar chart. */
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

function chartFrame(svg) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const [, , width, height] = svg.getAttribute("viewBox").split(" ").map(Number);
  return { width, height, left: 46, right: 14, top: 14, bottom: 30 };
}

function emptyChart(svg, message) {
  const f = chartFrame(svg);
  svg.appendChild(svgEl("text", { x: f.width / 2, y: f.height / 2, "text-anchor": "middle" }, message));
}

function yAxis(svg, f, min, max, format) {
  for (let i = 0; i <= 4; i++) {
    const value = min + ((max - min) * i) / 4;
    const y = f.height - f.bottom - ((f.height - f.top - f.bottom) * i) / 4;
    svg.appendChild(svgEl("line", { class: "grid-line", x1: f.left, x2: f.width - f.right, y1: y, y2: y }));
    svg.appendChild(svgEl("text", { x: f.left - 6, y: y + 4, "text-anchor": "end" }, format(value)));
  }
  svg.appendChild(svgEl("line", { class: "axis", x1: f.left, x2: f.left, y1: f.top, y2: f.height - f.bottom }));
  svg.appendChild(svgEl("line", { class: "axis", x1: f.left, x2: f.width - f.right,
    y1: f.height - f.bottom, y2: f.height - f.bottom }));
}

/* series: [{name, color, points: [{x, y}]}]; x are categories (round numbers) shared by all series. */
function lineChart(svg, xs, series, format) {
  const values = series.flatMap((s) => s.points.map((p) => p.y)).filter((v) => v !== null && isFinite(v));
  if (!xs.length || !values.length) return emptyChart(svg, "no data yet");
  const f = chartFrame(svg);
  let min = Math.min(...values), max = Math.max(...values);
  if (min === max) { min -= 0.05; max += 0.05; }
  const pad = (max - min) * 0.1; min -= pad; max += pad;
  yAxis(svg, f, min, max, format);
  const span = f.width - f.left - f.right, step = xs.length > 1 ? span / (xs.length - 1) : 0;
  const xAt = (i) => f.left + (xs.length > 1 ? i * step : span / 2);
  const yAt = (v) => f.height - f.bottom - ((v - min) / (max - min)) * (f.height - f.top - f.bottom);
  xs.forEach((x, i) => svg.appendChild(svgEl("text", { x: xAt(i), y: f.height - 10, "text-anchor": "middle" }, x)));
  series.forEach((s, k) => {
    const pts = s.points.map((p, i) => [xAt(i), p.y]).filter(([, y]) => y !== null && isFinite(y));
    if (pts.length > 1) {
      const d = pts.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${yAt(y).toFixed(1)}`).join(" ");
      svg.appendChild(svgEl("path", { d, fill: "none", stroke: s.color, "stroke-width": 2, class: "series" }));
    }
    pts.forEach(([x, y]) => svg.appendChild(svgEl("circle", { cx: x, cy: yAt(y), r: 3.5, fill: s.color,
      class: "point", "data-value": y }, undefined)).appendChild(svgEl("title", {}, `${s.name}: ${format(y)}`)));
    svg.appendChild(svgEl("rect", { x: f.left + 8 + k * 150, y: 2, width: 10, height: 10, fill: s.color }));
    svg.appendChild(svgEl("text", { x: f.left + 22 + k * 150, y: 11 }, s.name));
  });
}

/* bars: [{label, value, color}] */
function barChart(svg, bars, format) {
  if (!bars.length) return emptyChart(svg, "no data yet");
  const f = chartFrame(svg);
  const max = Math.max(...bars.map((b) => b.value), 1e-9);
  yAxis(svg, f, 0, max, format);
  const span = f.width - f.left - f.right, slot = span / bars.length, width = Math.min(slot * 0.6, 60);
  bars.forEach((b, i) => {
    const h = (b.value / max) * (f.height - f.top - f.bottom);
    const x = f.left + slot * i + (slot - width) / 2;
    const rect = svgEl("rect", { x, y: f.height - f.bottom - h, width, height: Math.max(h, 0.5), fill: b.color,
      class: "bar", "data-value": b.value, rx: 2 });
    rect.appendChild(svgEl("title", {}, `${b.label}: ${format(b.value)}`));
    svg.appendChild(rect);
    svg.appendChild(svgEl("text", { x: x + width / 2, y: f.height - 10, "text-anchor": "middle" }, b.label));
  });
}
