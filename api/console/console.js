// permitwatch operator console: plain JavaScript over the HTTP API (no build step).
"use strict";

const SIGNALS = { warning: "预警", yellow: "黄牌", red: "红牌", data: "数据" };
const state = { token: sessionStorage.getItem("pw-token") || "", cursor: null, lastSeq: null, fresh: 0, stream: null };
const $ = (selector) => document.querySelector(selector);

function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function when(iso) {
  return iso ? iso.replace("T", " ").slice(0, 16) : "";
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${state.token}`, "Content-Type": "application/json", ...(options.headers || {}) },
  });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response.json();
}

function setStatus(text, cls) {
  const element = $("#status");
  element.textContent = text;
  element.className = `status ${cls}`;
}

// ---------------------------------------------------------------- alerts

function alertRow(view) {
  const a = view.alert;
  const op = view.operator || {};
  const handling = op.dismissed_by ? `已驳回 dismissed by ${escapeHtml(op.dismissed_by)}: ${escapeHtml(op.dismissed_reason)}`
    : op.acknowledged_by ? `已确认 acknowledged by ${escapeHtml(op.acknowledged_by)}` : "待处理 open";
  const row = document.createElement("tr");
  row.dataset.alertId = a.alert_id;
  row.className = a.status === "retracted" ? "retracted" : "";
  row.innerHTML = `
    <td><span class="badge ${a.signal}">${SIGNALS[a.signal]} ${a.signal}</span></td>
    <td>${a.rule}</td>
    <td><a class="case-link" data-case="${escapeHtml(a.case_id)}">${escapeHtml(a.case_id)}</a></td>
    <td>${escapeHtml(a.item_code)}<br><span class="msg-en">${escapeHtml(a.department)}</span></td>
    <td>${when(a.detected_at)}</td>
    <td>${escapeHtml(a.message.zh)}<br><span class="msg-en">${escapeHtml(a.message.en)}</span></td>
    <td class="handling">${handling}</td>
    <td class="actions">
      <button class="ack" ${op.acknowledged_by || a.status !== "active" ? "disabled" : ""}>确认 Ack</button>
      <button class="dismiss" ${op.dismissed_by || a.status !== "active" ? "disabled" : ""}>驳回 Dismiss</button>
    </td>`;
  return row;
}

function filterQuery() {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData($("#filters"))) if (value) params.set(key, value);
  return params;
}

async function loadAlerts(append = false) {
  const params = filterQuery();
  params.set("limit", "50");
  if (append && state.cursor) params.set("cursor", state.cursor);
  const page = await api(`/alerts?${params}`);
  const body = $("#alert-table tbody");
  if (!append) body.innerHTML = "";
  for (const view of page.items) body.appendChild(alertRow(view));
  state.cursor = page.next_cursor;
  $("#more").hidden = !page.next_cursor;
}

function matchesFilters(view) {
  const params = filterQuery();
  const a = view.alert;
  const officers = [a.officers.handler, a.officers.reviewer, a.officers.approver];
  return (!params.get("rule") || a.rule === params.get("rule"))
    && (!params.get("signal") || a.signal === params.get("signal"))
    && (!params.get("status") || a.status === params.get("status"))
    && (!params.get("department") || a.department === params.get("department"))
    && (!params.get("officer") || officers.includes(params.get("officer")))
    && (!params.get("case") || a.case_id === params.get("case"));
}

function showLive(view) {
  const body = $("#alert-table tbody");
  const existing = body.querySelector(`tr[data-alert-id="${CSS.escape(view.alert.alert_id)}"]`);
  if (existing) existing.remove();
  if (!matchesFilters(view)) return;
  const row = alertRow(view);
  row.classList.add("fresh");
  body.prepend(row);
  state.fresh += 1;
  $("#live-count").textContent = state.fresh;
}

// Server-Sent Events over fetch, so the request can carry the bearer token; reconnects resume
// from the last record seen (Last-Event-ID).
async function stream() {
  const controller = new AbortController();
  state.stream = controller;
  while (!controller.signal.aborted) {
    try {
      const headers = { Authorization: `Bearer ${state.token}` };
      if (state.lastSeq !== null) headers["Last-Event-ID"] = String(state.lastSeq);
      const response = await fetch("/alerts/stream", { headers, signal: controller.signal });
      if (!response.ok) throw new Error(`${response.status}`);
      setStatus("实时 live", "on");
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const id = /^id: (\d+)$/m.exec(block);
          const data = /^data: (.*)$/m.exec(block);
          if (id) state.lastSeq = Number(id[1]);
          if (data) showLive(JSON.parse(data[1]));
        }
      }
    } catch (error) {
      if (controller.signal.aborted) return;
      setStatus("重连中 reconnecting", "err");
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

async function act(alertId, action, body) {
  await api(`/alerts/${encodeURIComponent(alertId)}/${action}`, { method: "POST", body: JSON.stringify(body || {}) });
  const row = $(`#alert-table tr[data-alert-id="${CSS.escape(alertId)}"]`);
  const caseId = row?.querySelector(".case-link")?.dataset.case;
  if (!row || !caseId) return;
  const page = await api(`/alerts?case=${encodeURIComponent(caseId)}&limit=500`);
  const fresh = page.items.find((v) => v.alert.alert_id === alertId);
  if (fresh) row.replaceWith(alertRow(fresh));
}

// ---------------------------------------------------------------- referrals

async function loadReferrals() {
  const page = await api("/referrals?limit=100");
  const body = $("#referral-table tbody");
  body.innerHTML = "";
  for (const r of page.items) {
    const officers = r.officers.map((o) => `${o.responsibility_zh}: ${escapeHtml(o.officer || "未知 unknown")}`).join("<br>");
    const row = document.createElement("tr");
    row.innerHTML = `<td>${{ open: "待移送 open", withdrawn: "已撤回 withdrawn", exempt: "免责 exempt" }[r.status]}</td>
      <td><a class="referral-link" data-id="${r.referral_id}">${r.referral_id}</a></td>
      <td><a class="case-link" data-case="${escapeHtml(r.case_id)}">${escapeHtml(r.case_id)}</a></td>
      <td>${r.version}</td><td>${r.alerts.filter((a) => a.status === "active").map((a) => a.rule).join(", ")}</td>
      <td>${officers}</td><td>${r.aggravating.length ? "从重 aggravated" : ""} ${r.mitigating.length ? "从轻 mitigated" : ""}</td>`;
    body.appendChild(row);
  }
}

async function showReferral(id) {
  const versions = await api(`/referrals/${encodeURIComponent(id)}`);
  $("#referral-detail").innerHTML = `<h3>${id} 版本记录 versions</h3><ol>${versions.map((v) =>
    `<li>v${v.version} ${v.status} — ${escapeHtml(v.change.zh)} / ${escapeHtml(v.change.en)}</li>`).join("")}</ol>`;
}

// ---------------------------------------------------------------- case timeline

let measuring = null;

function textWidth(text, size, family) {
  measuring ??= document.createElement("canvas").getContext("2d");
  measuring.font = `${size}px ${family}`;
  return measuring.measureText(text).width;
}

// Events minutes apart on a timeline of weeks, or deadlines on the same day, would print over one
// another: each label goes in the first row where it clears the labels already there, kept inside
// the drawing. Returns the number of rows used.
function placeInRows(labels, width) {
  const gap = 8;
  for (const label of labels) label.left = Math.max(4, Math.min(label.left, width - 4 - label.width));
  labels.sort((a, b) => a.left - b.left);
  const ends = [];
  for (const label of labels) {
    let row = ends.findIndex((end) => end + gap <= label.left);
    if (row < 0) row = ends.push(0) - 1;
    ends[row] = label.left + label.width;
    label.row = row;
  }
  return ends.length;
}

function drawTimeline(caseView) {
  const svg = $("#timeline");
  const width = svg.clientWidth || 900;
  const family = getComputedStyle(svg).fontFamily;
  const times = caseView.events.map((e) => Date.parse(e.time));
  const marks = caseView.deadlines.map((d) => Date.parse(d.instant));
  const now = caseView.clock ? Date.parse(caseView.clock) : Date.now();
  const lo = Math.min(...times, ...marks, now);
  const hi = Math.max(...times, ...marks, now);
  const x = (t) => 30 + ((t - lo) / Math.max(hi - lo, 1)) * (width - 60);
  const label = (text, size, at, centred, extra) => {
    const w = textWidth(text, size, family);
    // An event's label is centred under its dot; a deadline's reads from its line, or ends at it
    // near the right edge.
    const left = centred ? at - w / 2 : at + 4 + w <= width - 4 ? at + 4 : at - 4 - w;
    return { text, size, width: w, left, ...extra };
  };
  const above = caseView.deadlines.map((d) => label(`${d.name} ${d.last_day}${d.provisional ? " (暂定 provisional)" : ""}`,
    11, x(Date.parse(d.instant)), false, { cls: "deadline-label" }));
  above.push(label("现在 now", 10, x(now), false, { cls: "now-label" }));
  const below = caseView.events.map((e) => label(e.type.split(".").slice(-2).join("."), 10, x(Date.parse(e.time)), true,
    { cls: "event-label", title: `${e.type} ${when(e.time)}` }));
  // Rows with room to spare over the text's line box, which a Chinese fallback font makes taller.
  const pitch = (size) => Math.ceil(size * 1.45);
  const axis = 8 + placeInRows(above, width) * pitch(11) + 14;
  const height = axis + 14 + placeInRows(below, width) * pitch(10) + 4;
  svg.setAttribute("height", height);
  const parts = [`<line x1="20" y1="${axis}" x2="${width - 20}" y2="${axis}" stroke="#57606a"/>`];
  caseView.deadlines.forEach((d) => {
    const kind = ["decision_deadline", "promised_deadline"].includes(d.name) ? d.name : "other";
    const px = x(Date.parse(d.instant));
    parts.push(`<line class="deadline-line ${kind}" x1="${px}" y1="4" x2="${px}" y2="${axis + 10}"/>`);
  });
  parts.push(`<line class="now-line" x1="${x(now)}" y1="4" x2="${x(now)}" y2="${axis + 10}"/>`);
  caseView.events.forEach((e) => {
    parts.push(`<circle cx="${x(Date.parse(e.time))}" cy="${axis}" r="5" fill="#0b3d6e"><title>${escapeHtml(e.type)} ${when(e.time)}</title></circle>`);
  });
  // Labels last: their white outline keeps a line that runs behind them from crossing the text.
  for (const l of above) {
    parts.push(`<text class="${l.cls}" x="${l.left}" y="${4 + (l.row + 1) * pitch(11) - 4}" font-size="${l.size}">${escapeHtml(l.text)}</text>`);
  }
  for (const l of below) {
    parts.push(`<text class="${l.cls}" x="${l.left}" y="${axis + 14 + (l.row + 1) * pitch(10) - 4}" font-size="${l.size}">`
      + `<title>${escapeHtml(l.title)}</title>${escapeHtml(l.text)}</text>`);
  }
  svg.innerHTML = parts.join("");
}

async function showCase(caseId) {
  const view = await api(`/cases/${encodeURIComponent(caseId)}`);
  $("#case-tab").hidden = false;
  switchView("case");
  $("#case-title").textContent = `办件 Case ${view.case_id}`;
  $("#case-summary").innerHTML = `事项 Item: ${escapeHtml(view.item_code)} ${escapeHtml(view.item_name || "")} ·
    部门 Department: ${escapeHtml(view.department)} · 申请人 Applicant (hash): ${escapeHtml(view.applicant)} ·
    状态 Status: ${view.status === "open" ? "在办 open" : "办结 closed"} · 时钟 Clock: ${when(view.clock)}`;
  drawTimeline(view);
  $("#deadline-table tbody").innerHTML = view.deadlines.map((d) => `<tr><td>${d.name}</td><td>${d.last_day}</td>
    <td>${when(d.instant)}</td><td>${escapeHtml(d.calendar_version)}${d.provisional ? " 暂定 provisional" : ""}</td>
    <td>${d.basis.map(escapeHtml).join("<br>")}</td></tr>`).join("");
  $("#event-table tbody").innerHTML = view.events.map((e) => `<tr><td>${when(e.time)}</td><td>${escapeHtml(e.type)}</td>
    <td><code>${escapeHtml(JSON.stringify(e.data))}</code></td></tr>`).join("");
  const body = $("#case-alerts tbody");
  body.innerHTML = "";
  view.alerts.forEach((v) => body.appendChild(alertRow(v)));
}

// ---------------------------------------------------------------- wiring

function switchView(name) {
  document.querySelectorAll(".view").forEach((section) => { section.hidden = section.id !== name; });
  document.querySelectorAll("nav button").forEach((button) => button.classList.toggle("active", button.dataset.view === name));
  if (name === "referrals") loadReferrals().catch(report);
}

function report(error) {
  setStatus(`错误 ${error.message}`, "err");
}

async function connect() {
  state.token = $("#token").value.trim() || state.token;
  sessionStorage.setItem("pw-token", state.token);
  if (state.stream) state.stream.abort();
  try {
    await loadAlerts();
    state.lastSeq = null;
    stream();
  } catch (error) {
    report(error);
  }
}

function init() {
  // A link may carry the token in its fragment (never sent to the server): keep it, then drop it.
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("token")) {
    state.token = fragment.get("token");
    sessionStorage.setItem("pw-token", state.token);
    history.replaceState(null, "", location.pathname);
  }
  const rules = $("#filters select[name=rule]");
  for (let n = 1; n <= 19; n += 1) {
    const id = `PW-${String(n).padStart(3, "0")}`;
    rules.insertAdjacentHTML("beforeend", `<option value="${id}">${id}</option>`);
  }
  $("#token").value = state.token;
  $("#login").addEventListener("submit", (event) => { event.preventDefault(); connect(); });
  $("#filters").addEventListener("submit", (event) => { event.preventDefault(); loadAlerts().catch(report); });
  $("#more").addEventListener("click", () => loadAlerts(true).catch(report));
  document.querySelectorAll("nav button").forEach((button) => button.addEventListener("click", () => switchView(button.dataset.view)));
  document.body.addEventListener("click", (event) => {
    const target = event.target;
    const row = target.closest("tr[data-alert-id]");
    if (target.classList.contains("case-link")) showCase(target.dataset.case).catch(report);
    else if (target.classList.contains("referral-link")) showReferral(target.dataset.id).catch(report);
    else if (target.classList.contains("ack") && row) act(row.dataset.alertId, "ack").catch(report);
    else if (target.classList.contains("dismiss") && row) {
      $("#dismiss-id").textContent = row.dataset.alertId;
      $("#dismiss-reason").value = "";
      $("#dismiss-dialog").showModal();
    }
  });
  $("#dismiss-dialog").addEventListener("close", () => {
    const dialog = $("#dismiss-dialog");
    if (dialog.returnValue === "ok") {
      act($("#dismiss-id").textContent, "dismiss", { reason: $("#dismiss-reason").value }).catch(report);
    }
  });
  if (state.token) connect();
}

init();
