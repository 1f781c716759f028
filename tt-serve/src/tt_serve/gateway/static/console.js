// tt-serve gateway console: plain JS, no build step. Reads the gateway's admin API (GET: open, and with
// the admin token, when one is given, the end of a failed engine's log too) and sends swap / add / remove
// with the operator's admin token (kept in sessionStorage) as a Bearer header.
"use strict";
(() => {
  const TOKEN_KEY = "tt-serve.admin-token";
  const POLL_MS = 2000;
  const BUSY_POLL_MS = 1000; // while an action runs, so the table follows the engines as they change
  const BACKENDS_MS = 30000; // the inventory changes only when someone installs a package
  const PALETTE = ["#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e", "#1b7c83", "#57606a"];

  const store = { state: null, backends: null, busy: new Map(), panel: null, tokenRejected: false };
  const $ = (id) => document.getElementById(id);

  // --- small DOM helper ----------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) {
        node.append(child instanceof Node ? child : String(child));
      }
    }
    return node;
  }

  // --- token ---------------------------------------------------------------------------------------
  const getToken = () => sessionStorage.getItem(TOKEN_KEY) || "";
  function setToken(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
    store.tokenRejected = false;
    renderToken();
    renderModels();
  }
  function renderToken() {
    const status = $("token-status");
    const has = Boolean(getToken());
    status.textContent = store.tokenRejected ? "token rejected" : has ? "token set for this session" : "no token";
    status.className = "token-status " + (store.tokenRejected ? "bad" : has ? "set" : "");
    $("token-forget").hidden = !has;
  }

  // --- API -----------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }
  // The gateway's own words, verbatim: {"error": {"message"}} per the contract, FastAPI's {"detail"} otherwise.
  function errorText(data, text, response) {
    if (data && data.error && typeof data.error.message === "string") return data.error.message;
    if (data && data.detail !== undefined) {
      return typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
    }
    return text || response.statusText;
  }
  async function api(method, path, body) {
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (getToken()) headers.Authorization = "Bearer " + getToken();
    const response = await fetch(path, {
      method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (!response.ok) throw new ApiError(response.status, errorText(data, text, response));
    return data;
  }

  // --- engine args: one shell-like line, so JSON values with spaces survive (quotes as in a shell) ---
  function shellSplit(line) {
    const args = [];
    let cur = null;
    let quote = null;
    for (let i = 0; i < line.length; i++) {
      const ch = line[i];
      if (quote === "'") {
        if (ch === "'") quote = null; else cur += ch;
      } else if (quote === '"') {
        if (ch === '"') quote = null;
        else if (ch === "\\" && (line[i + 1] === '"' || line[i + 1] === "\\")) cur += line[++i];
        else cur += ch;
      } else if (/\s/.test(ch)) {
        if (cur !== null) { args.push(cur); cur = null; }
      } else {
        if (cur === null) cur = "";
        if (ch === "'" || ch === '"') quote = ch;
        else if (ch === "\\" && i + 1 < line.length) cur += line[++i];
        else cur += ch;
      }
    }
    if (quote) throw new Error(`engine args: unterminated ${quote} quote; close it or remove it`);
    if (cur !== null) args.push(cur);
    return args;
  }
  const shellQuote = (arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : "'" + arg.replace(/'/g, `'"'"'`) + "'");
  const argsLine = (args) => (args || []).map(shellQuote).join(" ");

  // --- formatting ----------------------------------------------------------------------------------
  function since(epoch) {
    if (!epoch) return "–";
    const s = Math.max(0, Date.now() / 1000 - epoch);
    if (s < 60) return `${Math.floor(s)} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }
  const compact = (v) => (Math.abs(v) >= 1000 ? `${+(v / 1000).toFixed(1)}k` : `${+v.toFixed(2)}`);
  const clock = (epoch) => new Date(epoch * 1000).toLocaleTimeString([], { hour12: false });
  function yesNo(value, yes = "yes", no = "no") {
    if (value === true) return el("span", { class: "yes", text: yes });
    if (value === false) return el("span", { class: "no", text: no });
    return el("span", { class: "unknown", text: "unknown" });
  }

  // Why actions are disabled, or "" when they are allowed.
  function actionsBlocked() {
    if (!store.state) return "waiting for the gateway";
    if (store.state.read_only) {
      return "read-only gateway: start it with --admin-token or TT_SERVE_ADMIN_TOKEN to swap, add or remove";
    }
    if (!getToken()) return "enter the admin token (top right) to swap, add or remove models";
    return "";
  }

  // --- header: overall health and mode ------------------------------------------------------------
  function renderOverall(error) {
    const badge = $("overall");
    const mode = $("mode");
    if (error) {
      badge.textContent = "gateway unreachable";
      badge.className = "overall down";
      return;
    }
    const models = store.state.models;
    const ok = models.filter((m) => m.state === "serving" && m.healthy).length;
    if (!models.length) badge.textContent = "no models";
    else badge.textContent = `${ok === models.length ? "healthy" : "degraded"} · ${ok} of ${models.length} serving`;
    badge.className = "overall " + (!models.length ? "" : ok === models.length ? "ok" : "degraded");
    const ro = store.state.read_only;
    mode.textContent = ro ? "read-only" : "";
    mode.className = "mode" + (ro ? " ro" : "");
    // A token cannot make a read-only gateway writable: say so where the token would go.
    $("token-input").disabled = ro;
    $("token-save").disabled = ro;
    $("token-input").placeholder = ro ? "not needed: read-only gateway" : "paste the admin token";
  }

  // --- start-up progress: "loading weights · 12 s" (the phase the engine reports, not a timer) --------
  function progressText(progress) {
    if (!progress) return "";
    const doing = progress.waiting_for ? `waiting for ${progress.waiting_for}` : progress.label;
    return `generation ${progress.generation}: ${doing} · ${Math.round(progress.elapsed_s)} s`;
  }
  // What identifies a progress for re-rendering: the phase, not the seconds ticking.
  const progressKey = (p) => (p ? [p.generation, p.phase, p.waiting_for || ""] : null);

  // --- models table --------------------------------------------------------------------------------
  function statePills(model) {
    const pills = [];
    const unhealthy = model.state === "serving" && !model.healthy;
    pills.push(el("span", {
      class: "pill " + (unhealthy ? "unhealthy" : model.state), "data-testid": "state",
      text: unhealthy ? "serving · unhealthy" : model.state,
    }));
    const swapping = (store.state.swaps_in_progress || []).includes(model.name) || store.busy.get(model.name) === "swap";
    if (swapping) pills.push(" ", el("span", { class: "pill swapping", "data-testid": "swapping", text: "swapping…" }));
    if (store.busy.get(model.name) === "remove") pills.push(" ", el("span", { class: "pill draining", text: "removing…" }));
    return pills;
  }

  let renderedModelsKey = "";
  function renderModels() {
    const body = $("models-body");
    const blocked = actionsBlocked();
    $("actions-hint").textContent = blocked;
    $("add-open").disabled = Boolean(blocked);
    $("add-open").title = blocked;
    if (!store.state) return;
    const models = store.state.models;
    $("models-summary").textContent = `${models.length} model${models.length === 1 ? "" : "s"}`;
    const selected = store.panel && store.panel.name;
    // Rebuild only when something shown changed: a row replaced under the pointer would swallow a click.
    const key = JSON.stringify([
      models.map((m) => ({ ...m, progress: progressKey(m.progress),
        pending: m.pending ? progressKey(m.pending.progress) : null })),
      store.state.swaps_in_progress || [], [...store.busy], blocked, selected,
      models.map((m) => since(m.started_at)),
      models.map((m) => (m.state === "starting" ? progressText(m.progress) : "")),
      models.map((m) => (m.pending ? progressText(m.pending.progress) : ""))]);
    if (key === renderedModelsKey) return;
    renderedModelsKey = key;
    const rows = models.map((m) => el("tr", { "data-model": m.name, class: m.name === selected ? "selected" : null },
      el("td", { class: "name" }, el("strong", { text: m.name })),
      el("td", {}, statePills(m), m.inflight ? el("div", { class: "sub", text: `${m.inflight} in flight` }) : null,
        m.state === "starting" ? el("div", { class: "sub progress", "data-testid": "progress",
          text: progressText(m.progress) }) : null,
        m.pending ? el("div", { class: "sub progress", "data-testid": "pending-progress",
          text: "replacement " + progressText(m.pending.progress) }) : null,
        m.last_error ? el("div", { class: "err", text: m.last_error }) : null,
        m.log_tail ? el("details", { class: "log" }, el("summary", { text: "end of the engine's log" }),
          el("pre", { text: m.log_tail })) : null),
      el("td", { class: "mono" }, m.backend,
        m.cards && m.cards.length ? el("div", { class: "sub", "data-testid": "model-cards",
          text: `card${m.cards.length === 1 ? "" : "s"} ${m.cards.join(", ")}` }) : null,
        m.cluster ? el("div", { class: "sub", "data-testid": "model-cluster", text: clusterText(m.cluster) }) : null),
      el("td", { class: "model mono" }, m.model, inputsLine(m.inputs)),
      el("td", { class: "args" }, m.engine_args.length ? el("code", { text: argsLine(m.engine_args) })
        : el("span", { class: "muted", text: "none" }),
      m.tt && Object.keys(m.tt).length ? el("div", { class: "sub mono", text: "tt " + JSON.stringify(m.tt) }) : null),
      el("td", { class: "num", "data-testid": "generation", text: m.generation }),
      el("td", { class: "num", "data-testid": "pid", text: m.pid ?? "–" }),
      el("td", { class: "num", text: m.port }),
      el("td", { class: "up", text: since(m.started_at) }),
      el("td", { class: "actions" },
        el("button", { class: "act", type: "button", disabled: Boolean(blocked) || store.busy.has(m.name),
          title: blocked || `change ${m.name}'s backend, engine args or model`, onclick: () => openPanel("swap", m.name),
        }, "Swap"),
        el("button", { class: "act danger", type: "button", disabled: Boolean(blocked) || store.busy.has(m.name),
          title: blocked || `drain and stop ${m.name}`, onclick: () => openPanel("remove", m.name),
        }, "Remove"))));
    if (!rows.length) rows.push(el("tr", { class: "empty" }, el("td", { colspan: 10, text: "No models configured." })));
    body.replaceChildren(...rows);
  }

  // What the model takes (the plugin's declaration, found when the engine was prepared).
  function inputsLine(inputs) {
    if (!inputs || !inputs.inputs) return null;
    const images = inputs.inputs.includes("image");
    const limit = images && inputs.max_images_per_prompt ? ` (up to ${inputs.max_images_per_prompt} per prompt)` : "";
    return el("div", { class: "sub", "data-testid": "model-inputs",
      title: inputs.architecture ? `as ${inputs.architecture} declares` : null,
      text: images ? `takes text and images${limit}` : "takes text" });
  }

  // Cluster mode: where Ray Serve has the model's replicas.
  function clusterText(c) {
    const states = Object.entries(c.replica_states || {}).map(([k, v]) => `${v} ${k.toLowerCase()}`).join(", ");
    return `Ray: ${c.replicas} replica${c.replicas === 1 ? "" : "s"}, ${c.ttnpu_per_replica} TTNPU each` +
      (states ? ` (${states})` : "");
  }

  // The host's cards and which model holds each (none on a host without Tenstorrent cards).
  function renderCards() {
    const cards = (store.state && store.state.cards) || [];
    const box = $("cards");
    box.hidden = !cards.length;
    if (!cards.length) return;
    box.replaceChildren(el("strong", { text: "Cards " }), ...cards.map((c) => el("span", {
      class: "card-chip" + (c.holder ? " held" : ""), "data-card": c.id,
      title: `${c.node}${c.pci_address ? " at " + c.pci_address : ""}`,
      text: `${c.id}${c.board ? " " + c.board : ""}: ${c.holder || "free"}` })));
  }

  // --- action panel (swap / add / remove): built once per opening, so polling never resets the inputs ---
  function backendSelect(current, allowDefault) {
    const select = el("select", { id: "f-backend" });
    if (allowDefault) select.append(el("option", { value: "", text: "(tt-serve's choice)" }));
    const names = new Set();
    for (const b of (store.backends && store.backends.backends) || []) {
      names.add(b.name);
      select.append(el("option", { value: b.name, disabled: !b.installed,
        text: b.installed ? b.name : `${b.name} (not installed)` }));
    }
    if (current && !names.has(current)) select.append(el("option", { value: current, text: current }));
    select.value = current || "";
    return select;
  }

  function openPanel(kind, name) {
    const model = name && store.state.models.find((m) => m.name === name);
    const panel = $("panel");
    const fields = [];
    const field = (label, input, help) => {
      fields.push(el("label", { for: input.id, text: label }), input);
      if (help) fields.push(el("div", { class: "help", text: help }));
    };
    let title;
    let submit;
    if (kind === "swap") {
      title = `Swap ${name}`;
      field("Backend", backendSelect(model.backend, false));
      field("Model", el("input", { id: "f-model", value: model.model, spellcheck: "false" }));
      field("Engine args", el("textarea", { id: "f-args", spellcheck: "false" }, argsLine(model.engine_args)),
        "vLLM serve arguments on one line, quoted as in a shell (*** keeps a redacted secret's current value). " +
        (model.exclusive_device
          ? "Exclusive device: the old engine drains and stops first; requests get 503 + Retry-After until the new one serves."
          : "The old engine keeps serving until the new one is up."));
      submit = el("button", { class: "primary", type: "submit", text: "Swap" });
    } else if (kind === "add") {
      title = "Add a model";
      field("Name", el("input", { id: "f-name", placeholder: "name clients send as \"model\"", spellcheck: "false" }));
      field("Model", el("input", { id: "f-model", placeholder: "alias or path, e.g. smollm2-135m-instruct",
        spellcheck: "false" }));
      field("Backend", backendSelect("", true));
      field("Engine args", el("textarea", { id: "f-args", spellcheck: "false" }),
        "vLLM serve arguments on one line, quoted as in a shell.");
      field("TT options", el("input", { id: "f-tt", placeholder: '{"kv_cache_tokens": 16384}', spellcheck: "false" }),
        "Optional JSON object, merged into --additional-config as {\"tt\": …}.");
      submit = el("button", { class: "primary", type: "submit", text: "Add" });
    } else {
      title = `Remove ${name}`;
      fields.push(el("div", { class: "help", style: "grid-column: 1 / -1; margin: 0",
        text: `Stops routing to ${name}, drains its requests in flight and stops its engine.` }));
      submit = el("button", { class: "danger", type: "submit", text: `Remove ${name}` });
    }
    const status = el("span", { class: "status", "data-testid": "panel-status" });
    const error = el("div", { class: "error", role: "alert", "data-testid": "panel-error", hidden: true });
    const form = el("form", { autocomplete: "off" },
      el("h3", { text: title }), el("div", { class: "fields" }, fields),
      el("div", { class: "buttons" }, submit,
        el("button", { class: "secondary", type: "button", text: "Close", onclick: closePanel }), status),
      error);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      runAction(kind, name, { submit, status, error });
    });
    store.panel = { kind, name };
    panel.replaceChildren(form);
    panel.hidden = false;
    renderModels();
    const first = form.querySelector("input, textarea, select, button");
    if (first) first.focus();
  }

  function closePanel() {
    store.panel = null;
    $("panel").hidden = true;
    $("panel").replaceChildren();
    renderModels();
  }

  function requestFor(kind, name) {
    const value = (id) => { const node = $(id); return node ? node.value.trim() : ""; };
    if (kind === "remove") return ["DELETE", `/admin/api/models/${encodeURIComponent(name)}`, undefined];
    const body = {};
    if (kind === "add") {
      if (!value("f-name") || !value("f-model")) throw new Error("name and model are required");
      body.name = value("f-name");
    }
    // A swap sends what changed (and always the engine args): what it leaves out, the gateway keeps.
    const current = kind === "swap" ? store.state.models.find((m) => m.name === name) || {} : {};
    if (value("f-model") && value("f-model") !== current.model) body.model = value("f-model");
    if (value("f-backend") && value("f-backend") !== current.backend) body.backend = value("f-backend");
    body.engine_args = shellSplit(value("f-args"));
    if (kind === "add") {
      if (value("f-tt")) {
        try { body.tt = JSON.parse(value("f-tt")); } catch (e) { throw new Error(`TT options: not JSON: ${e.message}`); }
      }
      return ["POST", "/admin/api/models", body];
    }
    return ["POST", `/admin/api/models/${encodeURIComponent(name)}/swap`, body];
  }

  async function runAction(kind, name, ui) {
    let request;
    try {
      request = requestFor(kind, name);
    } catch (e) {
      ui.error.textContent = e.message;
      ui.error.hidden = false;
      return;
    }
    const key = name || (request[2] && request[2].name);
    const verb = { swap: "swapping", add: "starting", remove: "draining and stopping" }[kind];
    const started = Date.now();
    const tick = () => {
      ui.status.replaceChildren(el("span", { class: "spinner" }),
        `${verb} ${key}… ${Math.round((Date.now() - started) / 1000)} s`);
    };
    ui.error.hidden = true;
    ui.status.className = "status";
    ui.submit.disabled = true;
    tick();
    const timer = setInterval(tick, 1000);
    store.busy.set(key, kind);
    renderModels();
    let done = false;
    try {
      const entry = await api(...request);
      const took = Math.round((Date.now() - started) / 1000);
      done = true;
      ui.status.className = "status ok";
      ui.status.textContent = kind === "remove" ? `${key} removed (${took} s).`
        : `${key} serving: generation ${entry.generation}, pid ${entry.pid} (${took} s).`;
    } catch (e) {
      if (e.status === 401 || e.status === 403) store.tokenRejected = Boolean(getToken()) && !store.state.read_only;
      ui.status.textContent = "";
      ui.error.textContent = e.status ? `HTTP ${e.status}: ${e.message}` : e.message;
      ui.error.hidden = false;
      renderToken();
    } finally {
      ui.submit.disabled = done && kind !== "swap"; // a second add or remove of the same name cannot work
      clearInterval(timer);
      store.busy.delete(key);
      await Promise.allSettled([refreshState(), refreshEvents(), refreshMetrics()]);
    }
  }

  // --- backends ------------------------------------------------------------------------------------
  function renderBackends() {
    const inv = store.backends;
    const hw = inv.hardware || {};
    $("backends-summary").textContent =
      `Tenstorrent hardware: ${hw.present ? "present" : "none"}` + (hw.detail ? ` (${hw.detail})` : "");
    // Each backend runs in its own Python environment: its interpreter, Python and vLLM.
    const environment = (b) => {
      const vllm = b.vllm ? `vLLM ${b.vllm.version} (${b.vllm.distribution})` : "vLLM not installed";
      const python = b.python_version ? `Python ${b.python_version}` : "cannot be probed";
      return el("td", { "data-testid": "environment", title: b.python_origin || "" },
        el("span", { class: "mono", text: b.python || "" }),
        el("div", { class: "sub", text: `${python} · ${vllm}` }));
    };
    const rows = (inv.backends || []).map((b) => el("tr", { "data-backend": b.name },
      el("td", {}, el("strong", { class: "mono", text: b.name }), el("div", { class: "sub", text: b.description || "" })),
      el("td", {}, yesNo(b.installed)),
      el("td", { class: "mono", text: b.version || "–" }),
      el("td", { title: b.trust_detail || "" }, yesNo(b.trusted), el("div", { class: "sub", text: b.trust_detail || "" })),
      el("td", {}, b.installed ? yesNo(b.vllm_compatible) : el("span", { class: "unknown", text: "–" }),
        el("div", { class: "sub mono", text: b.vllm_range || "" })),
      el("td", {}, b.hardware_needed === "none" ? el("span", { class: "muted", text: "none needed" })
        : b.hardware_present ? el("span", { class: "yes", text: `${b.hardware_needed}: present` })
          : el("span", { class: "warn", text: `${b.hardware_needed}: not present` })),
      environment(b)));
    $("backends-body").replaceChildren(...rows);
  }

  // --- events (newest first) ----------------------------------------------------------------------
  let eventsKey = "";
  function renderEvents(events) {
    const last = events[events.length - 1];
    const key = `${events.length}:${last ? last.t + last.message : ""}`;
    if (key === eventsKey) return;
    eventsKey = key;
    $("events-summary").textContent = `${events.length} recent`;
    const items = events.slice().reverse().map((e) => el("li", { class: e.level },
      el("time", { text: clock(e.t), title: new Date(e.t * 1000).toISOString() }),
      el("span", { class: "lvl " + e.level, text: e.level }),
      el("span", { class: "who mono", text: e.model || "gateway", title: e.model || "gateway" }),
      el("span", { class: "msg", text: e.message })));
    if (!items.length) items.push(el("li", { class: "none", text: "No events yet." }));
    $("events").replaceChildren(...items);
  }

  // --- charts (uPlot, vendored) -------------------------------------------------------------------
  const CHARTS = {
    request_rate: { fields: ["request_rate"], fmt: (v) => v.toFixed(2) },
    output_tokens_per_s: { fields: ["output_tokens_per_s"], fmt: (v) => v.toFixed(1) },
    // TTFT exists only for intervals with new requests: dots, so a lone sample still shows.
    ttft: { fields: ["ttft_p50_ms", "ttft_p99_ms"], fmt: (v) => v.toFixed(0) + " ms", points: true },
    kv_cache_usage: { fields: ["kv_cache_usage"], scale: 100, fmt: (v) => v.toFixed(1) + " %", range: [0, 100] },
  };
  const plots = {};

  function drawChart(figure, metrics) {
    const spec = CHARTS[figure.dataset.metric];
    const host = figure.querySelector("div");
    const names = Object.keys(metrics).sort();
    const tables = [];
    const series = [{ label: "time", value: (u, v) => (v == null ? "–" : clock(v)) }];
    names.forEach((name, i) => {
      const m = metrics[name];
      if (!m.t || !m.t.length) return;
      const columns = spec.fields.map((f) => (m[f] || []).map((v) => (v == null ? null : v * (spec.scale || 1))));
      tables.push([m.t, ...columns]);
      spec.fields.forEach((f, j) => series.push({
        label: spec.fields.length > 1 ? `${name} ${f.includes("p99") ? "p99" : "p50"}` : name,
        // null (no sample) breaks the line; the undefined that uPlot.join aligns in is bridged.
        stroke: PALETTE[i % PALETTE.length], width: 1.5, dash: j > 0 ? [5, 4] : undefined, spanGaps: false,
        ...(spec.points ? { points: { show: true, size: 4, fill: PALETTE[i % PALETTE.length] } } : {}),
        value: (u, v) => (v == null ? "–" : spec.fmt(v)),
      }));
    });
    const signature = series.map((s) => s.label).join("|");
    const old = plots[figure.dataset.metric];
    if (!tables.length) {
      if (old) old.destroy();
      delete plots[figure.dataset.metric];
      host.replaceChildren(el("div", { class: "nodata", text: "no samples yet" }));
      return;
    }
    const data = tables.length === 1 ? tables[0] : uPlot.join(tables);
    if (old && old.signature === signature) {
      old.setData(data);
      return;
    }
    if (old) old.destroy();
    host.replaceChildren();
    const plot = new uPlot({
      width: host.clientWidth || 500, height: 190, series,
      scales: { x: { time: true }, y: spec.range ? { range: spec.range } : { range: (u, lo, hi) => [0, Math.max(hi, 1) * 1.1] } },
      axes: [{ stroke: "#656d76", grid: { stroke: "#eef0f2" }, space: 80,
        values: (u, splits) => splits.map(clock) },
        { stroke: "#656d76", grid: { stroke: "#eef0f2" }, size: 56, values: (u, splits) => splits.map(compact) }],
      legend: { live: true }, cursor: { drag: { x: false, y: false } },
    }, data, host);
    plot.signature = signature;
    plots[figure.dataset.metric] = plot;
  }

  function renderMetrics(metrics) {
    for (const figure of document.querySelectorAll(".chart")) drawChart(figure, metrics);
  }
  new ResizeObserver(() => {
    for (const figure of document.querySelectorAll(".chart")) {
      const plot = plots[figure.dataset.metric];
      const width = figure.querySelector("div").clientWidth;
      if (plot && width && Math.abs(plot.width - width) > 2) plot.setSize({ width, height: 190 });
    }
  }).observe($("metrics-card"));

  // --- polling -------------------------------------------------------------------------------------
  async function refreshState() {
    try {
      store.state = await api("GET", "/admin/api/state");
      $("conn-error").hidden = true;
      renderOverall(null);
    } catch (e) {
      $("conn-error").textContent = `Cannot read /admin/api/state: ${e.status ? "HTTP " + e.status + ": " : ""}${e.message}`;
      $("conn-error").hidden = false;
      renderOverall(e);
    }
    renderModels();
    renderCards();
  }
  async function refreshBackends() {
    try {
      store.backends = await api("GET", "/admin/api/backends");
      renderBackends();
    } catch (e) {
      $("backends-summary").textContent = `cannot read /admin/api/backends: ${e.message}`;
    }
  }
  async function refreshMetrics() {
    try { renderMetrics((await api("GET", "/admin/api/metrics")).models || {}); } catch (_) { /* next poll retries */ }
  }
  async function refreshEvents() {
    try { renderEvents((await api("GET", "/admin/api/events")).events || []); } catch (_) { /* next poll retries */ }
  }

  // Each loop waits for its own request before scheduling the next: a slow gateway is never flooded.
  function every(fn, delay) {
    const run = async () => {
      await fn();
      setTimeout(run, typeof delay === "function" ? delay() : delay);
    };
    run();
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token-input").value.trim();
    $("token-input").value = "";
    if (value) setToken(value);
  });
  $("token-forget").addEventListener("click", () => setToken(""));
  $("add-open").addEventListener("click", () => openPanel("add", null));
  renderToken();
  every(refreshState, () => (store.busy.size || (store.state && (store.state.swaps_in_progress || []).length)
    ? BUSY_POLL_MS : POLL_MS));
  every(refreshBackends, BACKENDS_MS);
  every(refreshMetrics, POLL_MS);
  every(refreshEvents, POLL_MS);
  setInterval(() => store.state && renderModels(), 10000); // keep "Up" fresh between polls on a quiet gateway
})();
