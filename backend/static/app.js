/* The dashboard: fetches the read-only API and renders the overview, charts, leaderboard and drill-downs. */
"use strict";

const state = { taskId: null, trainer: null };
const COLORS = ["#2f6fdf", "#1f9d55", "#d69e2e", "#9f7aea", "#d64545", "#319795", "#dd6b20", "#718096"];

async function api(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

/* Token amounts arrive as decimal strings of base units (18 decimals); BigInt keeps them exact. */
function tokens(wei, digits = 2) {
  const value = BigInt(wei || "0"), unit = 10n ** 18n;
  const whole = value / unit, frac = (value % unit).toString().padStart(18, "0").slice(0, digits);
  return `${whole.toLocaleString("en-US")}${digits ? "." + frac : ""}`;
}
const tokensNumber = (wei) => Number(BigInt(wei || "0") / 10n ** 14n) / 1e4;
const short = (address) => `${address.slice(0, 6)}…${address.slice(-4)}`;

// An accepted update worth 0 by the report's own terms (no rejection reason): which term, in a few words.
function unpaidBecause(t) {
  if (t.public_work) return "public work";
  if (t.repeats_global_step) return "repeats the last global step";
  if (t.resends_round !== null && t.resends_round !== undefined) return `resends round ${t.resends_round}`;
  if (t.same_work_as) return `same work as ${short(t.same_work_as)}`;
  return null;
}
const fixed = (v, d = 3) => (v === null || v === undefined ? "—" : Number(v).toFixed(d));

function card(label, value) {
  return el("div", { class: "card" }, el("div", { class: "label" }, label), el("div", { class: "value" }, value));
}

function fillRows(table, rows) {
  const body = table.querySelector("tbody");
  body.replaceChildren(...rows);
  if (!rows.length) {
    const cols = table.querySelectorAll("thead th").length;
    body.append(el("tr", {}, el("td", { colspan: cols, class: "empty" }, "nothing yet")));
  }
}

async function loadHealth() {
  const box = document.getElementById("health");
  try {
    const h = await api("/health");
    const lag = h.lag_blocks === null ? "" : ` · lag ${h.lag_blocks} blocks`;
    box.textContent = `chain ${h.chain_id ?? "?"} · block ${h.last_indexed_block ?? "—"}${lag} · ${h.status}`;
    box.classList.toggle("bad", h.status !== "ok");
  } catch (e) {
    box.textContent = `API unreachable (${e.message})`;
    box.classList.add("bad");
  }
}

async function loadTasks() {
  const page = await api("/api/tasks?limit=500");
  const select = document.getElementById("task-select");
  select.replaceChildren(...page.items.map((t) => el("option", { value: t.task_id }, `#${t.task_id} · ${short(t.sponsor)}`)));
  if (page.items.length && state.taskId === null) state.taskId = page.items[page.items.length - 1].task_id;
  if (state.taskId !== null) select.value = String(state.taskId);
  return page.items.length > 0;
}

function roundPhase(r, nowS) {
  if (r.finalized) return "finalized";
  if (nowS < r.commit_deadline) return "commit phase";
  if (nowS < r.reveal_deadline) return "reveal phase";
  return "closed, awaiting finalization";
}

function clock(unixS) {
  return new Date(unixS * 1000).toISOString().slice(11, 19) + " UTC";
}

// Both phases of the current round: who committed, who revealed, and when each phase ends.
async function loadPhases(t) {
  const section = document.getElementById("phases");
  if (!t.current_round) return section.replaceChildren(card("Current round", "none opened yet"));
  const r = await api(`/api/tasks/${state.taskId}/rounds/${t.current_round}`);
  section.replaceChildren(
    card(`Round ${r.round}`, roundPhase(r, Date.now() / 1000)),
    card("Committed", r.commitments), card("Commit phase ends", clock(r.commit_deadline)),
    card("Revealed", `${r.submissions} of ${r.commitments}`), card("Reveal phase ends", clock(r.reveal_deadline)),
  );
}

async function loadOverview() {
  const t = await api(`/api/tasks/${state.taskId}`);
  const pill = document.getElementById("task-state");
  pill.textContent = t.closed ? "closed" : t.close_requested ? `round ${t.current_round}, closing` : `round ${t.current_round}`;
  pill.className = t.closed ? "pill closed" : "pill";
  await loadPhases(t);
  document.getElementById("overview").replaceChildren(
    card("Reward pool", tokens(t.pool_wei)), card("Owed (unclaimed)", tokens(t.owed_wei)),
    card("Paid out", tokens(t.paid_out_wei)), card("Total staked", tokens(t.total_staked_wei)),
    card("Trainers", t.trainer_count), card("Rounds finalized", t.rounds_finalized),
    card("Reward / round", tokens(t.reward_per_round_wei)), card("Slashed", tokens(t.slashed_wei)),
  );
}

async function loadCharts(board) {
  const metrics = await api(`/api/tasks/${state.taskId}/metrics`);
  const rounds = metrics.rounds;
  lineChart(document.getElementById("accuracy-chart"), rounds.map((r) => `r${r.round}`), [
    { name: "accuracy after round", color: COLORS[0], points: rounds.map((r) => ({ y: r.val_accuracy_after })) },
    { name: "accuracy before round", color: COLORS[2], points: rounds.map((r) => ({ y: r.val_accuracy_before })) },
  ], (v) => `${(v * 100).toFixed(1)}%`);
  const privacy = rounds.filter((r) => r.dp_epsilon !== null && r.dp_epsilon !== undefined).pop();
  document.getElementById("privacy-info").textContent = privacy
    ? `differential privacy: ε = ${privacy.dp_epsilon.toFixed(2)} at δ = ${privacy.dp_delta} after round ${privacy.round}`
    : "";
  lineChart(document.getElementById("loss-chart"), rounds.map((r) => `r${r.round}`), [
    { name: "loss after round", color: COLORS[0], points: rounds.map((r) => ({ y: r.val_loss_after })) },
    { name: "loss before round", color: COLORS[2], points: rounds.map((r) => ({ y: r.val_loss_before })) },
  ], (v) => v.toFixed(3));
  const latest = [...rounds].reverse().find((r) => r.sample_text !== null && r.sample_text !== undefined);
  const sample = document.getElementById("sample-text");
  sample.hidden = !latest;
  sample.textContent = latest ? `round ${latest.round} sample: “${latest.sample_text}”` : "";
  document.getElementById("perplexity").textContent = latest && latest.val_perplexity_after !== null
    ? `perplexity ${latest.val_perplexity_after.toFixed(2)}` : "";
  const bars = board.map((row, i) => ({ label: short(row.address), value: tokensNumber(row.earned_wei),
    color: COLORS[i % COLORS.length] }));
  barChart(document.getElementById("reward-chart"), bars, (v) => v.toLocaleString("en-US", { maximumFractionDigits: 1 }));
}

async function loadLeaderboard() {
  const page = await api(`/api/tasks/${state.taskId}/leaderboard?limit=100`);
  const rows = page.items.map((r) => {
    const tr = el("tr", { "data-address": r.address },
      el("td", {}, r.rank), el("td", { class: "addr", title: r.address }, short(r.address)),
      el("td", {}, r.reputation_mu === null ? "—" : `${fixed(r.reputation_mu, 2)} ± ${fixed(r.reputation_sigma, 2)}`),
      el("td", { class: "num" }, tokens(r.stake_wei)), el("td", { class: "num" }, tokens(r.earned_wei)),
      el("td", { class: "num" }, tokens(r.claimed_wei)),
      el("td", { class: r.slashed_wei !== "0" ? "num slash" : "num" }, tokens(r.slashed_wei)),
      el("td", { class: "num" }, r.submissions));
    tr.addEventListener("click", () => selectTrainer(r.address));
    if (r.address === state.trainer) tr.classList.add("selected");
    return tr;
  });
  fillRows(document.getElementById("leaderboard"), rows);
  return page.items;
}

async function loadRounds() {
  const page = await api(`/api/tasks/${state.taskId}/rounds?limit=500`);
  const select = document.getElementById("round-select");
  const previous = select.value;
  select.replaceChildren(...page.items.map((r) => el("option", { value: r.round }, `#${r.round}`)));
  if (!page.items.length) return fillRows(document.getElementById("round-table"), []);
  const known = page.items.some((r) => String(r.round) === previous);
  select.value = known ? previous : String(page.items[page.items.length - 1].round);
  await loadRound();
}

async function loadRound() {
  const roundId = document.getElementById("round-select").value;
  if (!roundId) return;
  const r = await api(`/api/tasks/${state.taskId}/rounds/${roundId}`);
  const status = r.finalized ? `finalized, report ${r.report_status}` : roundPhase(r, Date.now() / 1000);
  const rule = r.report ? ` · ${r.report.aggregation_rule}, ${r.report.accepted} accepted / ${r.report.rejected} rejected` : "";
  const audit = r.report && r.report.spearman_payout_loo !== null && r.report.spearman_payout_loo !== undefined
    ? ` · fairness audit: Spearman(payout, leave-one-out) ${fixed(r.report.spearman_payout_loo, 2)}` : "";
  document.getElementById("round-info").textContent = `${status}${rule} · payout ${tokens(r.payout_total_wei)}${audit}`;
  fillRows(document.getElementById("round-table"), r.trainers.map((t) => el("tr", {},
    el("td", { class: "addr", title: t.account }, short(t.account)),
    el("td", { class: t.status ? `status-${t.status}` : "" }, t.status ?? "no report"),
    el("td", {}, t.reason ?? unpaidBecause(t) ?? "—"),
    el("td", { class: "num" }, `${fixed(t.loss_before)} → ${fixed(t.loss_after)}`),
    el("td", { class: "num" }, fixed(t.loss_score)),
    el("td", { class: "num" }, `${fixed(t.rating_mu, 2)} / ${fixed(t.rating_sigma, 2)}`),
    el("td", { class: "num" }, fixed(t.final_score)), el("td", { class: "num" }, tokens(t.payout_wei)),
    el("td", {}, t.payout_index === null ? "—" : t.claimed ? "yes" : "no"),
    el("td", { class: t.slash ? "slash" : "" }, t.slash ? `${tokens(t.slash.amount_wei)} (${t.slash.reason})` : "—"),
    el("td", { class: "why" }, t.explanation ?? "—"))));
}

async function selectTrainer(address) {
  state.trainer = address;
  document.querySelectorAll("#leaderboard tbody tr").forEach((tr) =>
    tr.classList.toggle("selected", tr.dataset.address === address));
  const profile = await api(`/api/trainers/${address}?task_id=${state.taskId}`);
  const p = profile.tasks[0];
  document.getElementById("trainer-panel").hidden = false;
  document.getElementById("trainer-address").textContent = address;
  document.getElementById("trainer-cards").replaceChildren(
    card("Stake", tokens(p.stake_wei)), card("Earned", tokens(p.earned_wei)), card("Claimed", tokens(p.claimed_wei)),
    card("Unclaimed", tokens(p.unclaimed_wei)), card("Slashed", tokens(p.slashed_wei)),
    card("Reputation μ", p.reputation ? fixed(p.reputation.mu, 2) : "—"),
    card("Unstake", p.unstake_requested_at ? "requested" : "—"));
  fillRows(document.getElementById("trainer-rounds"), p.rounds.map((r) => el("tr", {},
    el("td", {}, r.round), el("td", { class: r.status ? `status-${r.status}` : "" }, r.status ?? "—"),
    el("td", {}, r.reason ?? "—"), el("td", { class: "num" }, fixed(r.final_score)),
    el("td", { class: "num" }, tokens(r.payout_wei)), el("td", {}, r.claimed ? "yes" : "no"),
    el("td", { class: "why" }, r.explanation ?? "—"))));
  fillRows(document.getElementById("trainer-slashes"), p.slashes.map((s) => el("tr", {},
    el("td", {}, s.round), el("td", { class: "num slash" }, tokens(s.amount_wei)),
    el("td", {}, `${s.reason} (${s.reason_code})`), el("td", { class: "addr" }, s.evidence_cid))));
  const history = p.reputation_history;
  lineChart(document.getElementById("reputation-chart"), history.map((h) => `r${h.round}`), [
    { name: "μ", color: COLORS[0], points: history.map((h) => ({ y: h.mu })) },
    { name: "μ − 3σ", color: COLORS[4], points: history.map((h) => ({ y: h.mu - 3 * h.sigma })) },
  ], (v) => v.toFixed(1));
}

/* Validator quorum: each validator's record and every proposal with its votes (hidden for tasks without one). */
async function loadValidation() {
  const v = await api(`/api/tasks/${state.taskId}/validation`);
  const panel = document.getElementById("validation-panel");
  panel.hidden = v.quorum === 0 && !v.proposals.length;
  if (panel.hidden) return;
  document.getElementById("validation-info").textContent =
    `quorum ${v.quorum} of ${v.validator_count}, bond ${tokens(v.bond_wei)}, from round ${v.from_round}`;
  fillRows(document.getElementById("validators"), v.validators.map((r) => el("tr", {},
    el("td", { class: "addr", title: r.account }, short(r.account)), el("td", {}, r.member ? "yes" : "no"),
    el("td", { class: "num" }, tokens(r.bond_wei)), el("td", { class: "num" }, r.attested),
    el("td", { class: "num" }, r.disputed), el("td", { class: "num" }, r.against_outcome),
    el("td", { class: r.slashed_wei !== "0" ? "num slash" : "num" }, tokens(r.slashed_wei)))));
  fillRows(document.getElementById("proposals"), v.proposals.slice().reverse().map((p) => el("tr", {},
    el("td", {}, p.round), el("td", {}, p.nonce), el("td", { class: "addr", title: p.proposer }, short(p.proposer)),
    el("td", { class: p.status === "rejected" ? "slash" : "" }, p.status),
    el("td", { class: "num" }, `${p.attestations} / ${p.disputes}`), el("td", { class: "num" }, tokens(p.payout_total_wei)),
    el("td", { class: p.bond_slashed_wei !== "0" ? "num slash" : "num" }, tokens(p.bond_slashed_wei)))));
}

async function refresh() {
  await loadHealth();
  if (!(await loadTasks())) return;
  await loadOverview();
  const board = await loadLeaderboard();
  await loadCharts(board);
  await loadRounds();
  await loadValidation();
  if (state.trainer) await selectTrainer(state.trainer);
  document.body.dataset.loaded = "true";
}

document.getElementById("task-select").addEventListener("change", (e) => {
  state.taskId = Number(e.target.value);
  state.trainer = null;
  document.getElementById("trainer-panel").hidden = true;
  refresh();
});
document.getElementById("round-select").addEventListener("change", () => loadRound());
refresh().catch((e) => { document.getElementById("health").textContent = `error: ${e.message}`; });
setInterval(() => refresh().catch(() => {}), 10000);
