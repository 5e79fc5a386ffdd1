/* The sms.cn page: fetches api/page (same origin, the UI's session cookie) and draws it.
 * Every text from the server goes in through textContent: nothing is parsed as HTML. */
(function () {
  "use strict";
  const base = location.pathname.replace(/\/?$/, "/");
  const runLink = (dag, run) => `${base}../dags/${encodeURIComponent(dag)}/runs/${encodeURIComponent(run)}`;
  const taskLink = (dag, run, task) => `${runLink(dag, run)}/tasks/${encodeURIComponent(task)}`;
  const COLORS = { placed: "#2563eb", delivered: "#16a34a", undelivered: "#dc2626", amber: "#d97706" };
  const ACCOUNT_COLORS = ["#2563eb", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];
  const state = { window: new URLSearchParams(location.search).get("window") || "24h", account: "", data: null };
  const charts = {};
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
    return node;
  }
  const pad = (n) => String(n).padStart(2, "0");
  function fmtTime(t, withDate, withSeconds) {
    const d = new Date(t * 1000);
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}` + (withSeconds ? `:${pad(d.getSeconds())}` : "");
    return withDate ? `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}` : hm;
  }
  function fmtAge(s) {
    if (s == null) return "never";
    if (s < 60) return `${Math.round(s)} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${(s / 3600).toFixed(1)} h ago`;
    return `${(s / 86400).toFixed(1)} days ago`;
  }
  const fmtInt = (n) => (n == null ? "–" : Number(n).toLocaleString("en-US"));
  function lagLabels(edges) {
    const u = (s) => (s < 60 ? `${s} s` : `${s / 60} min`);
    const span = (a, b) => (b <= 60 ? `${a}–${b} s` : a >= 60 ? `${a / 60}–${b / 60} min` : `${u(a)}–${u(b)}`);
    const labels = [`< ${u(edges[0])}`];
    for (let i = 1; i < edges.length; i++) labels.push(span(edges[i - 1], edges[i]));
    labels.push(`≥ ${u(edges[edges.length - 1])}`);
    return labels;
  }

  function selected(d) {
    const accounts = state.account ? d.accounts.filter((a) => a === state.account) : d.accounts;
    const n = d.times.length;
    const sum = { placed: Array(n).fill(0), delivered: Array(n).fill(0), undelivered: Array(n).fill(0) };
    const tot = { placed: 0, delivered: 0, undelivered: 0, lags: Array(d.lag_edges.length + 1).fill(0), results: {} };
    for (const a of accounts) {
      for (const k of Object.keys(sum)) d.series[a][k].forEach((v, i) => (sum[k][i] += v));
      const t = d.totals[a];
      tot.placed += t.placed; tot.delivered += t.delivered; tot.undelivered += t.undelivered;
      t.lags.forEach((v, i) => (tot.lags[i] += v));
      for (const r of t.results) {
        tot.results[r.code] = tot.results[r.code] || { code: r.code, meaning: r.meaning, n: 0 };
        tot.results[r.code].n += r.n;
      }
    }
    return { sum, tot };
  }

  function chart(id, config) {
    if (charts[id]) { charts[id].destroy(); }
    charts[id] = new Chart($(id), config);
  }
  const baseOptions = () => ({
    responsive: true, maintainAspectRatio: false, animation: false,
    plugins: { legend: { position: "bottom", labels: { boxWidth: 12, usePointStyle: true } } },
  });

  function drawCalls(d, sum) {
    const withDate = d.bucket_seconds >= 3600 * 6 || d.window === "7d";
    const labels = d.times.map((t) => (d.bucket_seconds >= 86400 ? fmtTime(t, true).slice(0, 5) : fmtTime(t, withDate)));
    const opts = baseOptions();
    opts.scales = { x: { stacked: true, grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 12 } },
                    y: { stacked: false, beginAtZero: true, ticks: { precision: 0 } } };
    chart("chart-calls", {
      data: {
        labels,
        datasets: [
          { type: "bar", label: "Delivered", data: sum.delivered, backgroundColor: COLORS.delivered, stack: "reports", borderRadius: 3 },
          { type: "bar", label: "Undelivered", data: sum.undelivered, backgroundColor: COLORS.undelivered, stack: "reports", borderRadius: 3 },
          { type: "line", label: "Placed", data: sum.placed, borderColor: COLORS.placed, backgroundColor: COLORS.placed,
            tension: 0, pointRadius: 2, borderWidth: 2 },
        ],
      },
      options: opts,
    });
  }

  function drawLag(d, tot) {
    const opts = baseOptions();
    opts.plugins.legend.display = false;
    opts.scales = { x: { grid: { display: false } }, y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "reports" } } };
    chart("chart-lag", {
      type: "bar",
      data: { labels: lagLabels(d.lag_edges), datasets: [{ label: "Reports", data: tot.lags, backgroundColor: "#60a5fa", borderRadius: 3 }] },
      options: opts,
    });
    const body = $("codes").tBodies[0];
    body.replaceChildren();
    const rows = Object.values(tot.results).sort((a, b) => a.code - b.code);
    if (!rows.length) body.append(el("tr", {}, el("td", { class: "empty", colspan: "3" }, "No delivery reports in this window")));
    for (const r of rows) {
      body.append(el("tr", {}, el("td", {}, el("span", { class: `badge ${r.code === 100 ? "ok" : "bad"}` }, r.code)),
        el("td", {}, r.meaning), el("td", { class: "num" }, fmtInt(r.n))));
    }
  }

  function medianLag(d, lags) {
    const total = lags.reduce((a, b) => a + b, 0);
    if (!total) return "–";
    let seen = 0;
    const labels = lagLabels(d.lag_edges);
    for (let i = 0; i < lags.length; i++) { seen += lags[i]; if (seen * 2 >= total) return labels[i]; }
    return "–";
  }

  function drawBalance(d) {
    const readings = d.balance.readings.filter((r) => !state.account || r.account === state.account);
    // fit the time axis to the readings (a few checks in a long window would sit in one corner)
    const end = d.now;
    const first = readings.length ? readings[0].t : d.times[0];
    const start = Math.max(d.times[0], first - Math.max(60, (end - first) * 0.08));
    const accounts = [...new Set(readings.map((r) => r.account))];
    const datasets = accounts.map((a, i) => ({
      label: `Balance ${d.totals[a] ? d.totals[a].label : a.split("@")[0]}`,
      data: readings.filter((r) => r.account === a).map((r) => ({ x: r.t, y: r.balance })),
      borderColor: ACCOUNT_COLORS[i % ACCOUNT_COLORS.length], backgroundColor: ACCOUNT_COLORS[i % ACCOUNT_COLORS.length],
      pointRadius: 3, borderWidth: 2, stepped: false, tension: 0,
    }));
    const thresholds = d.balance.thresholds.filter((t) => !state.account || t.account === state.account);
    for (const t of thresholds) {
      datasets.push({
        label: `min_balance ${fmtInt(t.threshold)} (${t.dag_id || "?"}.${t.task_id || "?"})`,
        data: [{ x: start, y: t.threshold }, { x: end, y: t.threshold }],
        borderColor: COLORS.amber, backgroundColor: COLORS.amber, borderDash: [6, 4], pointRadius: 0, borderWidth: 2,
      });
    }
    const withDate = end - start > 86400 * 1.01, withSeconds = end - start < 3600;
    const opts = baseOptions();
    opts.scales = {
      x: { type: "linear", min: start, max: end, ticks: { maxRotation: 0, autoSkipPadding: 16, callback: (v) => fmtTime(v, withDate, withSeconds) } },
      y: { beginAtZero: true, ticks: { precision: 0 } },
    };
    opts.plugins.tooltip = { callbacks: { title: (items) => (items.length ? fmtTime(items[0].parsed.x, true, true) : "") } };
    chart("chart-balance", { type: "line", data: { datasets }, options: opts });
    const last = readings[readings.length - 1];
    $("kpi-balance").textContent = last ? fmtInt(last.balance) : "–";
    $("balance-note").textContent = readings.length
      ? `${readings.length} reading(s) in this window; dashed lines: the low-balance thresholds of balance-check tasks.`
      : "No balance reading in this window (balance checks, SmsCnHook.get_balance and the connection Test record one).";
  }

  function drawRecent(d) {
    const body = $("recent").tBodies[0];
    body.replaceChildren();
    const rows = d.recent.filter((r) => !state.account || r.account === state.account);
    if (!rows.length) body.append(el("tr", {}, el("td", { class: "empty", colspan: "6" }, "No calls yet")));
    for (const r of rows) {
      let result;
      if (r.resultcode == null) result = el("span", { class: "badge wait" }, r.state === "accepted" ? "waiting" : "–");
      else result = el("span", {}, el("span", { class: `badge ${r.resultcode === 100 ? "ok" : "bad"}` }, r.resultcode),
        el("span", { class: "meaning" }, r.meaning + (r.carrier_status ? ` (${r.carrier_status})` : "")));
      const send = el("span", {}, r.state + (r.stat != null && r.stat !== 100 ? ` (stat ${r.stat})` : ""));
      let origin = el("span", { class: "meaning" }, "outside Airflow");
      if (r.dag_id) {
        origin = el("span", {},
          el("a", { href: runLink(r.dag_id, r.run_id), "data-nav": "ui", title: "Open the run" }, `${r.dag_id} › ${r.task_id}`),
          el("br"), el("span", { class: "meaning" }, r.run_id));
      }
      body.append(el("tr", {}, el("td", { class: "nowrap" }, fmtTime(r.sent_at, true)), el("td", { class: "mono" }, r.mobile),
        el("td", { class: "mono" }, r.mobileid), el("td", {}, result), el("td", {}, send), el("td", {}, origin)));
    }
  }

  function drawPulls(d) {
    const body = $("pulls").tBodies[0];
    body.replaceChildren();
    const rows = d.pulls.filter((p) => !state.account || p.account === state.account);
    if (!rows.length) body.append(el("tr", {}, el("td", { class: "empty", colspan: "4" }, "No account pulled yet")));
    for (const p of rows) {
      const active = p.age != null && p.age < 120;
      body.append(el("tr", {}, el("td", {}, p.label), el("td", { class: "nowrap" }, fmtAge(p.age)), el("td", {}, p.host || "–"),
        el("td", {}, el("span", { class: `badge ${active ? "ok" : "idle"}` }, active ? "pulling" : "idle"))));
    }
    const wbody = $("waiters").tBodies[0];
    wbody.replaceChildren();
    if (!d.waiters.length) wbody.append(el("tr", {}, el("td", { class: "empty", colspan: "4" }, "Nobody is waiting for a report")));
    for (const w of d.waiters) {
      wbody.append(el("tr", {},
        el("td", {}, el("a", { href: taskLink(w.dag_id, w.run_id, w.task_id), "data-nav": "ui" }, `${w.dag_id} › ${w.task_id}`)),
        el("td", { class: "meaning" }, w.run_id), el("td", {}, el("span", { class: "badge wait" }, w.state)),
        el("td", { class: "nowrap" }, w.since ? fmtAge(d.now - w.since) : "–")));
    }
  }

  function render() {
    const d = state.data;
    if (!d) return;
    const { sum, tot } = selected(d);
    $("kpi-placed").textContent = fmtInt(tot.placed);
    $("kpi-delivered").textContent = fmtInt(tot.delivered);
    $("kpi-undelivered").textContent = fmtInt(tot.undelivered);
    const reports = tot.delivered + tot.undelivered;
    $("kpi-rate").textContent = reports ? `${((100 * tot.delivered) / reports).toFixed(1)} %` : "–";
    $("kpi-lag").textContent = medianLag(d, tot.lags);
    drawCalls(d, sum);
    drawLag(d, tot);
    drawBalance(d);
    drawRecent(d);
    drawPulls(d);
    $("updated").textContent = `updated ${fmtTime(d.now, false)}`;
    document.body.dataset.ready = "true";
  }

  function controls(d) {
    const seg = $("windows");
    if (!seg.children.length) {
      for (const w of d.windows) {
        const b = el("button", { type: "button", "data-window": w }, w);
        b.addEventListener("click", () => { state.window = w; load(); });
        seg.append(b);
      }
    }
    for (const b of seg.children) b.setAttribute("aria-pressed", String(b.dataset.window === state.window));
    const select = $("account");
    const known = new Set([...select.options].map((o) => o.value));
    const all = new Set([...d.accounts, ...d.pulls.map((p) => p.account), ...d.balance.readings.map((r) => r.account)]);
    for (const a of all) {
      if (!known.has(a)) select.append(el("option", { value: a }, d.totals[a] ? d.totals[a].label : a.replace("@", " @ ").split("/")[0]));
    }
  }

  async function load() {
    try {
      const reply = await fetch(`${base}api/page?window=${encodeURIComponent(state.window)}`, { credentials: "same-origin" });
      if (!reply.ok) throw new Error(`${reply.status} ${reply.statusText}: ${(await reply.text()).slice(0, 200)}`);
      state.data = await reply.json();
      $("error").hidden = true;
      controls(state.data);
      render();
    } catch (err) {
      $("error").hidden = false;
      $("error").textContent = `Could not load the ledger data: ${err.message}`;
    }
  }

  // Inside the Airflow UI the page sits in a sandboxed iframe that may not navigate the top window:
  // links to runs move the UI's own router instead (same origin), as its own links would.
  document.addEventListener("click", (e) => {
    const a = e.target.closest && e.target.closest("a[data-nav=ui]");
    if (!a || window.parent === window || e.ctrlKey || e.metaKey || e.shiftKey) return;
    try {
      const url = new URL(a.href);
      window.parent.history.pushState({}, "", url.pathname + url.search);
      window.parent.dispatchEvent(new PopStateEvent("popstate", { state: {} }));
      e.preventDefault();
    } catch (err) { /* not reachable: let the browser follow the link */ }
  });
  $("account").addEventListener("change", (e) => { state.account = e.target.value; render(); });
  load();
  setInterval(load, 15000);
})();
