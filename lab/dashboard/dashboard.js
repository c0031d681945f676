// ringflow-lab's dashboard: loads every event so far from /series.json, then
// follows /events (server-sent events) and redraws. No library: canvas 2D.
//
// The events (lab/dashboard_feed.hpp): meta (the options and the runs),
// samples (points [run, t_s, depth, latency_max_us|null, offered, dropped,
// suspended_s, delivered, rss_kib]), run (a run's summary), done, failed.
// Each has a seq; a gap in the stream (this client lagged) reloads the snapshot.
"use strict";

(() => {
  const P = { run: 0, t: 1, depth: 2, lat: 3, offered: 4, dropped: 5, suspended: 6, delivered: 7, rss: 8 };

  let state = null;      // built from the events
  let synced = false;    // the snapshot is loaded; live events apply directly
  let buffered = [];     // live events that came while the snapshot loads
  let generation = 0;    // the latest snapshot load (an older one is ignored)
  let source = null;
  let drawQueued = false;

  const $ = (id) => document.getElementById(id);

  function freshState() {
    return { seq: 0, meta: null, runs: [], done: null, failed: null, charts: [] };
  }

  // ---- formatting, as the lab's table (lab/format.cpp) ----
  function fmtUs(us) {
    if (us < 1000) return `${us.toFixed(0)} us`;
    if (us < 10000) return `${(us / 1000).toFixed(2)} ms`;
    if (us < 1e6) return `${(us / 1000).toFixed(1)} ms`;
    return `${(us / 1e6).toFixed(2)} s`;
  }
  function fmtRate(r) {
    if (r < 10000) return `${r.toFixed(0)}/s`;
    if (r < 1e6) return `${(r / 1000).toFixed(1)}k/s`;
    return `${(r / 1e6).toFixed(2)}M/s`;
  }
  function fmtKib(k) {
    return k < 10 * 1024 ? `+${k} KiB` : `+${(k / 1024).toFixed(1)} MiB`;
  }
  function fmtSeconds(s) {
    return `${+s.toFixed(3)} s`;
  }
  function niceCeiling(v) {
    if (v <= 1) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }
  function decadeLabel(d) {
    if (d < 3) return `${Math.pow(10, d)} us`;
    if (d < 6) return `${Math.pow(10, d - 3)} ms`;
    return `${Math.pow(10, d - 6)} s`;
  }
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "style") e.setAttribute("style", v);
      else e.dataset[k] = v;
    }
    for (const c of children) e.append(c);
    return e;
  }
  function swatch(color) {
    return el("span", { class: "swatch", style: `background:${color}` });
  }

  // ---- the four panels of a scenario ----
  const panels = [
    { key: "depth", title: "buffer depth", sub: "values buffered" },
    { key: "latency", title: "latency", sub: "worst per interval, offer \u2192 receipt, log scale" },
    { key: "dropped", title: "values dropped", sub: "% of offered so far" },
    { key: "suspended", title: "producer suspended", sub: "% of the run so far" },
  ];

  function strategyOf(name) {
    return state.meta.strategies.find((s) => s.name === name);
  }

  function build(meta) {
    state.meta = meta;
    state.runs = meta.runs.map((r) => ({ scenario: r.scenario, strategy: r.strategy, points: [], result: null }));
    document.title = "ringflow-lab dashboard";
    document.body.dataset.runs = String(meta.runs.length);
    $("title").textContent = meta.title;
    $("params").textContent =
      `consumer ${meta.rate} items/s (${meta.cost} cost), ${meta.duration_s} s per run, ` +
      `channel capacity ${meta.capacity}, sample capacity ${meta.sample_capacity}, request batch ${meta.batch}, ` +
      `payload ${meta.payload_bytes} B, ${meta.threads} worker thread(s)`;
    const legend = $("legend");
    legend.replaceChildren(...meta.strategies.map((s) => el("li", {}, swatch(s.color), s.label)));
    const main = $("scenarios");
    main.replaceChildren();
    state.charts = [];
    for (const sc of meta.scenarios) {
      const badge = el("span", { class: "badge" });
      badge.hidden = true;
      const h = el("h2", {}, sc.name, " ", el("span", { class: "what" }, "\u2014 " + sc.description), badge);
      const charts = el("div", { class: "charts" });
      for (const p of panels) {
        const canvas = el("canvas", { panel: p.key, scenario: sc.name, points: "0" });
        charts.append(el("figure", {}, el("figcaption", {}, p.title + " ", el("span", {}, p.sub)), canvas));
        state.charts.push({ canvas, panel: p.key, scenario: sc.name });
      }
      const card = el("section", { class: "scenario", scenario: sc.name }, h, charts);
      main.append(card);
    }
    $("summary").hidden = true;
    $("summary-table").tBodies[0].replaceChildren();
  }

  function apply(e) {
    switch (e.type) {
      case "meta":
        build(e);
        break;
      case "samples":
        for (const p of e.points) if (state.runs[p[P.run]]) state.runs[p[P.run]].points.push(p);
        break;
      case "run":
        if (state.runs[e.run]) state.runs[e.run].result = e.result;
        break;
      case "done":
        state.done = e;
        break;
      case "failed":
        state.failed = e;
        break;
    }
    state.seq = e.seq;
  }

  // ---- the stream ----
  function take(e) {
    if (e.seq <= state.seq) return;  // already in the snapshot
    if (e.seq !== state.seq + 1) {   // this client lagged: events were dropped for it
      resync();
      return;
    }
    apply(e);
    queueDraw();
  }

  function resync() {
    synced = false;
    buffered = [];
    loadSnapshot();
  }

  async function loadSnapshot() {
    const mine = ++generation;
    let doc;
    try {
      const res = await fetch("series.json", { cache: "no-store" });
      if (!res.ok) throw new Error(`series.json: HTTP ${res.status}`);
      doc = await res.json();
    } catch (err) {
      if (mine === generation) {
        setStatus("cannot load the lab's series; retrying\u2026");
        setTimeout(() => { if (mine === generation) loadSnapshot(); }, 1000);
      }
      return;
    }
    if (mine !== generation) return;
    state = freshState();
    for (const e of doc.events) apply(e);
    state.seq = doc.seq;
    synced = true;
    const pending = buffered;
    buffered = [];
    for (const e of pending) if (synced) take(e);
    queueDraw();
  }

  function connect() {
    source = new EventSource("events");
    source.onopen = () => resync();  // (re)connected: what happened meanwhile comes from the snapshot
    source.onmessage = (m) => {
      const e = JSON.parse(m.data);
      if (synced) take(e);
      else buffered.push(e);
    };
    source.onerror = () => {
      if (state && (state.done || state.failed)) return;
      setStatus("connection to the lab lost; reconnecting\u2026");
    };
  }

  // ---- drawing ----
  function queueDraw() {
    if (drawQueued) return;
    drawQueued = true;
    requestAnimationFrame(() => {
      drawQueued = false;
      draw();
    });
  }

  function setStatus(text) {
    $("status-text").textContent = text;
  }

  function currentRun() {
    return state.runs.findIndex((r) => !r.result);
  }

  function drawStatus() {
    const m = state.meta;
    if (!m) return;
    const n = state.runs.length;
    const finished = state.runs.filter((r) => r.result).length;
    let fraction = finished;
    const body = document.body;
    for (const card of document.querySelectorAll(".scenario")) {
      card.classList.remove("running");
      card.querySelector(".badge").hidden = true;
    }
    if (state.failed) {
      body.dataset.state = "failed";
      setStatus(`the lab failed: ${state.failed.message}`);
    } else if (state.done) {
      body.dataset.state = "done";
      const ok = state.done.accounting_ok ? "every accounting identity holds" : "ACCOUNTING MISMATCH (see the red rows)";
      setStatus(`${state.done.complete ? "finished" : "stopped early"}: ${finished} of ${n} runs in ` +
                `${state.done.wall_s.toFixed(1)} s; ${ok}`);
    } else {
      const i = currentRun();
      const r = state.runs[i];
      if (r && r.points.length) {
        body.dataset.state = "running";
        const t = r.points[r.points.length - 1][P.t];
        fraction += Math.min(t / m.duration_s, 1);
        setStatus(`running ${i + 1} of ${n}: ${r.scenario} \u00d7 ${strategyOf(r.strategy).label}, ` +
                  `${t.toFixed(2)} of ${m.duration_s} s`);
        const card = document.querySelector(`.scenario[data-scenario="${r.scenario}"]`);
        card.classList.add("running");
        const badge = card.querySelector(".badge");
        badge.textContent = `running: ${strategyOf(r.strategy).label}`;
        badge.hidden = false;
      } else {
        body.dataset.state = finished ? "running" : "waiting";
        setStatus(finished ? `run ${finished + 1} of ${n} starting\u2026` : "waiting for the first samples\u2026");
      }
    }
    $("progress-bar").style.width = `${(100 * fraction / Math.max(n, 1)).toFixed(1)}%`;
  }

  // The y value of a point for a panel (null: a gap).
  function valueOf(panel, p) {
    switch (panel) {
      case "depth": return p[P.depth];
      case "latency": return p[P.lat];
      case "dropped": return p[P.offered] > 0 ? 100 * p[P.dropped] / p[P.offered] : 0;
      case "suspended": return p[P.t] > 0 ? Math.min(100, 100 * p[P.suspended] / p[P.t]) : 0;
    }
    return null;
  }

  function drawChart(chart) {
    const { canvas, panel, scenario } = chart;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(canvas.clientWidth, 100), h = Math.max(canvas.clientHeight, 60);
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const left = 50, right = 8, top = 6, bottom = 20;
    const fw = w - left - right, fh = h - top - bottom;
    const runs = state.runs.filter((r) => r.scenario === scenario);
    const duration = state.meta.duration_s;

    // The y scale.
    let toY, ticks;
    if (panel === "latency") {
      let worst = 1000;
      for (const r of runs) for (const p of r.points) if (p[P.lat] !== null) worst = Math.max(worst, p[P.lat]);
      const lo = 1, hi = Math.ceil(Math.log10(worst));
      toY = (v) => top + fh - fh * (Math.min(Math.max(Math.log10(Math.max(v, 10)), lo), hi) - lo) / (hi - lo);
      ticks = [];
      for (let d = lo; d <= hi; d++) ticks.push([Math.pow(10, d), decadeLabel(d)]);
    } else if (panel === "depth") {
      let most = 1;
      for (const r of runs) for (const p of r.points) most = Math.max(most, p[P.depth]);
      const ceil = niceCeiling(most);
      toY = (v) => top + fh - fh * v / ceil;
      ticks = [[0, "0"], [ceil / 2, `${ceil / 2}`], [ceil, `${ceil}`]];
    } else {
      toY = (v) => top + fh - fh * v / 100;
      ticks = [[0, "0%"], [50, "50%"], [100, "100%"]];
    }
    const toX = (t) => left + fw * Math.min(Math.max(t / duration, 0), 1);

    // The frame, the grid and the axes' labels.
    g.fillStyle = "#fafafa";
    g.fillRect(left, top, fw, fh);
    g.strokeStyle = "#bbb";
    g.lineWidth = 1;
    g.strokeRect(left + 0.5, top + 0.5, fw - 1, fh - 1);
    g.font = "10px system-ui, sans-serif";
    g.fillStyle = "#555";
    g.textAlign = "right";
    g.textBaseline = "middle";
    g.setLineDash([3, 3]);
    g.strokeStyle = "#ddd";
    for (const [v, label] of ticks) {
      const y = Math.round(toY(v)) + 0.5;
      if (y > top + 1 && y < top + fh - 1) {
        g.beginPath();
        g.moveTo(left, y);
        g.lineTo(left + fw, y);
        g.stroke();
      }
      g.fillText(label, left - 4, y);
    }
    g.setLineDash([]);
    g.textAlign = "center";
    g.textBaseline = "top";
    for (let i = 0; i <= 4; i++) {
      const x = left + fw * i / 4;
      g.fillText(fmtSeconds(duration * i / 4), Math.min(Math.max(x, left + 12), left + fw - 12), top + fh + 5);
    }

    // One line per strategy, in its colour; a latency interval with no receipt is a gap.
    let drawn = 0;
    g.lineWidth = 1.6;
    g.lineJoin = "round";
    for (const r of runs) {
      if (!r.points.length) continue;
      g.strokeStyle = strategyOf(r.strategy).color;
      g.beginPath();
      let pen = false;
      for (const p of r.points) {
        const v = valueOf(panel, p);
        if (v === null) {
          pen = false;
          continue;
        }
        const x = toX(p[P.t]), y = toY(v);
        if (pen) g.lineTo(x, y);
        else g.moveTo(x, y);
        pen = true;
        drawn++;
      }
      g.stroke();
    }
    canvas.dataset.points = String(drawn);
  }

  function drawSummary() {
    const section = $("summary");
    const done = state.runs.filter((r) => r.result);
    if (!state.done || !done.length) {
      section.hidden = true;
      return;
    }
    const tbody = $("summary-table").tBodies[0];
    if (tbody.rows.length) {
      section.hidden = false;
      return;  // drawn once: the results do not change
    }
    let current = null;
    for (const r of done) {
      const x = r.result;
      if (x.scenario !== current) {
        current = x.scenario;
        const sc = state.meta.scenarios.find((s) => s.name === current);
        const cell = el("td", {}, current, " ", el("span", { class: "what" }, "\u2014 " + (sc ? sc.description : "")));
        cell.colSpan = 13;
        tbody.append(el("tr", { class: "group" }, cell));
      }
      const s = strategyOf(x.strategy);
      const cells = [
        [swatch(s.color), " ", s.label],
        [String(x.offered)],
        [String(x.delivered)],
        [`${x.dropped} (${x.dropped_pct.toFixed(1)}%)`],
        [String(x.left_in_buffer)],
        [fmtRate(x.producer_throughput)],
        [`${(x.producer_suspended_s * 1000).toFixed(0)} ms (${x.producer_suspended_pct.toFixed(0)}%)`],
        [fmtUs(x.latency_us.p50)],
        [fmtUs(x.latency_us.p99)],
        [fmtUs(x.latency_us.max)],
        [String(x.high_water)],
        [fmtKib(x.peak_rss_growth_kib)],
        [`${x.freshness_behind.p50.toFixed(0)}/${x.freshness_behind.max.toFixed(0)}`],
      ];
      const row = el("tr", { class: x.accounting_ok ? "" : "bad", scenario: x.scenario, strategy: x.strategy },
                     ...cells.map((c) => el("td", {}, ...c)));
      tbody.append(row);
    }
    section.hidden = false;
  }

  function draw() {
    if (!state || !state.meta) return;
    drawStatus();
    for (const c of state.charts) drawChart(c);
    drawSummary();
    document.body.dataset.seq = String(state.seq);
    if ((state.done || state.failed) && source) {
      source.close();  // the lab has ended: nothing more will come
      source = null;
    }
  }

  window.addEventListener("resize", queueDraw);
  state = freshState();
  connect();
})();
