"use strict";
// The dashboard: asks for an API token (kept in sessionStorage: it goes with the tab), then
// draws GET /v1/dashboard every REFRESH_MS. Every value is set as text, never parsed as HTML.

const REFRESH_MS = 3000;
const KEY = "altostrat.token";
let timer = null;

const $ = (id) => document.getElementById(id);

function num(x) {
  return Number.isInteger(x) ? String(x) : x.toFixed(2).replace(/\.?0+$/, "");
}

function ofQuota(used, quota) {
  return `${num(used)} / ${quota === null ? "no limit" : num(quota)}`;
}

function age(seconds) {
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

function cell(row, col, text, cls) {
  const td = row.insertCell();
  td.dataset.col = col;
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function utilization(row, col, percent) {
  const td = cell(row, col, "", "num");
  if (percent === null) {
    td.textContent = "–";
    return;
  }
  const meter = document.createElement("meter");
  meter.min = 0;
  meter.max = 100;
  meter.value = percent;
  td.append(meter, `${num(percent)}%`);
}

// Replace a table's rows: one per item, drawn by `draw(row, item)`, keyed by the item's name.
function fill(id, items, draw, empty) {
  const body = $(id).tBodies[0];
  body.replaceChildren();
  for (const item of items) {
    const row = body.insertRow();
    row.dataset.name = item.name;
    draw(row, item);
  }
  if (items.length === 0) {
    const td = body.insertRow().insertCell();
    td.colSpan = $(id).tHead.rows[0].cells.length;
    td.className = "empty";
    td.textContent = empty;
  }
}

function drawQueue(row, q) {
  cell(row, "name", q.name);
  cell(row, "tenant", q.tenant);
  cell(row, "pending", String(q.pending), "num");
  cell(row, "running", String(q.running), "num");
  cell(row, "gpu", ofQuota(q.used.gpu, q.quota.gpu ?? null), "num");
  cell(row, "cpu", ofQuota(q.used.cpu, q.quota.cpu ?? null), "num");
  cell(row, "memory", ofQuota(q.used.memoryGib, q.quota.memoryGib ?? null), "num");
}

function drawJob(row, j) {
  cell(row, "name", j.name);
  cell(row, "queue", j.queue);
  cell(row, "tenant", j.tenant ?? "");
  cell(row, "state", j.state, `state-${j.state}`);
  const why = cell(row, "reason", "");
  if (j.reason !== null) {
    const code = document.createElement("span");
    code.className = "reason-code";
    code.textContent = j.reason;
    why.append(code, " ");
  }
  if (j.message !== null) why.append(j.message);
  cell(row, "node", j.nodes.join(", "));
  cell(row, "age", age(j.ageS), "num");
}

function drawPool(row, p) {
  cell(row, "name", p.name);
  cell(row, "nodes", String(p.nodes), "num");
  cell(row, "gpus", p.gpuModel === null ? "0" : `${num(p.capacity.gpu)} × ${p.gpuModel}`, "num");
  cell(row, "cpus", num(p.capacity.cpu), "num");
  cell(row, "gpu-allocated", `${num(p.allocated.gpu)} / ${num(p.capacity.gpu)}`, "num");
  cell(row, "cpu-allocated", `${num(p.allocated.cpu)} / ${num(p.capacity.cpu)}`, "num");
  utilization(row, "gpu-utilization", p.gpuUtilization);
  utilization(row, "cpu-utilization", p.cpuUtilization);
}

function draw(data) {
  $("who").textContent = data.tenant === null ? `${data.role}, every tenant` : `${data.role} of tenant ${data.tenant}`;
  $("updated").textContent = `updated ${new Date(data.generatedAt * 1000).toLocaleTimeString()}`;
  fill("queues", data.queues, drawQueue, "no queues");
  fill("jobs", data.jobs, drawJob, "no jobs");
  fill("pools", data.pools, drawPool, "no pools");
  $("jobs-count").textContent = data.jobs.length < data.jobsTotal
    ? `(${data.jobs.length} of ${data.jobsTotal} shown)` : `(${data.jobsTotal})`;
  $("error").textContent = "";
  $("board").hidden = false;
}

function showLogin(message) {
  clearTimeout(timer);
  $("board").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  $("updated").textContent = "";
  $("error").textContent = "";
  $("login-error").textContent = message;
  $("login").hidden = false;
  $("token").focus();
}

async function refresh() {
  clearTimeout(timer);
  const token = sessionStorage.getItem(KEY);
  if (!token) {
    showLogin("");
    return;
  }
  $("login").hidden = true;
  $("sign-out").hidden = false;
  try {
    const response = await fetch("/v1/dashboard", {headers: {Authorization: `Bearer ${token}`}, cache: "no-store"});
    if (response.status === 401) {
      sessionStorage.removeItem(KEY);
      showLogin("That token is not valid (or it was revoked).");
      return;
    }
    if (!response.ok) throw new Error(`the service answered ${response.status}`);
    draw(await response.json());
  } catch (err) {
    $("error").textContent = `Could not refresh: ${err.message}; trying again.`;
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("token").value.trim());
    $("token").value = "";
    refresh();
  });
  $("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    showLogin("");
  });
  refresh();
});
