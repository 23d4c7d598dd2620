// The run page: metric charts (plotly; data from /run/<id>/metrics.json, downsampled on
// the server; zooming in fetches the visible range at full resolution), a running run's
// live updates (server-sent events from /run/<id>/events: printed lines, growing
// charts, files written; the page reloads once when the run is sealed), and the filter
// of the package list. plotly.js (4.8 MB) is loaded once the page has loaded: the page
// is usable before the browser has compiled it (~2 s on a busy 2-core machine).
"use strict";
(function () {
  const PLOTLY_URL = document.currentScript ? document.currentScript.dataset.plotly : null;
  let plotly = null; // a promise of window.Plotly, asked for by the first chart

  function withPlotly() {
    if (plotly) return plotly;
    plotly = new Promise((resolve, reject) => {
      if (window.Plotly) { resolve(window.Plotly); return; }
      const start = () => {
        const script = document.createElement("script");
        script.src = PLOTLY_URL;
        script.onload = () => resolve(window.Plotly);
        script.onerror = () => reject(new Error("plotly.js did not load"));
        document.head.append(script);
      };
      if (document.readyState === "complete") start();
      else window.addEventListener("load", start, { once: true });
    });
    return plotly;
  }
  const LAYOUT = {
    margin: { l: 50, r: 10, t: 10, b: 40 }, xaxis: { title: { text: "step" } },
    showlegend: false, height: 300,
  };
  const CONFIG = { displaylogo: false, responsive: true };
  const charts = new Map(); // metric key -> {key, div, src, overview, zoomed, asked}

  function describe(entry, s) {
    const note = entry.div.parentElement.querySelector(".chart-note");
    if (!note) return;
    const n = (x) => x.toLocaleString("en");
    let text = s.shown < s.count ? `${n(s.shown)} of ${n(s.count)} points (${s.method})` : `${n(s.count)} points`;
    if (s.total !== undefined) text += ` in steps ${n(s.start)}..${n(s.end)} of ${n(s.total)}; double-click for all`;
    note.textContent = text;
  }

  // Draw a series; uirevision keeps the user's zoom across redraws.
  function draw(entry, s) {
    const trace = { x: s.x, y: s.y, type: "scatter", mode: s.shown > 1 ? "lines" : "markers", name: s.key };
    const layout = Object.assign({}, LAYOUT, { uirevision: entry.key });
    describe(entry, s);
    return withPlotly().then((Plotly) => Plotly.react(entry.div, [trace], layout, CONFIG)).then(() => {
      entry.div.dataset.ready = "1";
      entry.div.dataset.count = String(s.count);
      entry.div.dataset.shown = String(s.shown);
    });
  }

  function zoom(entry, ev) {
    if (ev["xaxis.autorange"]) {
      entry.zoomed = false;
      entry.asked += 1;
      delete entry.div.dataset.zoom;
      if (entry.overview) draw(entry, entry.overview);
      return;
    }
    const range = ev["xaxis.range"];
    const start = ev["xaxis.range[0]"] !== undefined ? ev["xaxis.range[0]"] : range && range[0];
    const end = ev["xaxis.range[1]"] !== undefined ? ev["xaxis.range[1]"] : range && range[1];
    if (start === undefined || end === undefined) return; // (a zoom of y alone)
    entry.zoomed = true;
    const asked = ++entry.asked;
    const url = `${entry.src}&start=${encodeURIComponent(start)}&end=${encodeURIComponent(end)}`;
    fetch(url, { credentials: "same-origin" })
      .then((r) => r.json())
      .then((s) => {
        if (asked !== entry.asked || s.error) return; // a later zoom (or an unzoom) won
        draw(entry, s).then(() => { entry.div.dataset.zoom = `${s.start},${s.end}`; });
      });
  }

  function chart(div) {
    const entry = { key: div.dataset.key, div: div, src: div.dataset.src, overview: null, zoomed: false, asked: 0 };
    charts.set(entry.key, entry);
    return entry;
  }

  function bind(entry) {
    if (entry.bound) return;
    entry.bound = true;
    entry.div.on("plotly_relayout", (ev) => zoom(entry, ev));
  }

  function load(entry) {
    fetch(entry.src, { credentials: "same-origin" })
      .then((r) => r.json())
      .then((s) => {
        if (s.error) {
          const note = entry.div.parentElement.querySelector(".chart-note");
          if (note) note.textContent = s.error;
          return;
        }
        if (entry.overview && entry.overview.count > s.count) return; // live data came first
        entry.overview = s;
        if (!entry.zoomed) draw(entry, s).then(() => bind(entry));
      })
      .catch((e) => { entry.div.textContent = "could not load: " + e; });
  }

  document.querySelectorAll(".chart[data-src]").forEach((div) => load(chart(div)));
  if (document.getElementById("live")) withPlotly(); // (its charts may come any moment)

  // -- live: a running run ------------------------------------------------------------
  const live = document.getElementById("live");
  const MAX_LOG = 256 * 1024; // characters of a log kept on the page (its tail)

  function trim(pre) {
    let length = pre.textContent.length;
    if (length <= MAX_LOG * 1.5) return;
    while (pre.firstChild && length > MAX_LOG) {
      length -= pre.firstChild.textContent.length;
      pre.removeChild(pre.firstChild);
    }
  }

  function addChart(s) {
    const box = document.createElement("figure");
    box.className = "chart-box";
    const caption = document.createElement("figcaption");
    caption.textContent = s.key;
    const div = document.createElement("div");
    div.className = "chart";
    div.dataset.key = s.key;
    div.dataset.src = `/run/${live.dataset.run}/metrics.json?key=${encodeURIComponent(s.key)}`;
    const note = document.createElement("p");
    note.className = "chart-note muted";
    box.append(caption, div, note);
    document.querySelector("#metrics .charts").append(box);
    const none = document.getElementById("no-metrics");
    if (none) none.remove();
    return chart(div);
  }

  function showOutputs(d) {
    const list = document.getElementById("live-files");
    if (!list) return;
    const items = d.files.map((f) => { const li = document.createElement("li"); li.textContent = f; li.dataset.path = f; return li; });
    d.kept.forEach((k) => { const li = document.createElement("li"); li.textContent = `${k} (kept)`; li.dataset.kept = k; items.push(li); });
    if (d.more) { const li = document.createElement("li"); li.className = "muted"; li.textContent = "and more"; items.push(li); }
    list.replaceChildren(...items);
  }

  if (live && window.EventSource) {
    const source = new EventSource(live.dataset.src);
    live.hidden = false;
    source.addEventListener("log", (e) => {
      const d = JSON.parse(e.data);
      const pre = document.getElementById(d.stream);
      if (!pre) return;
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.insertAdjacentHTML("beforeend", d.html); // (escaped by the server: ui/ansi.py)
      trim(pre);
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    });
    source.addEventListener("metric", (e) => {
      const s = JSON.parse(e.data);
      const entry = charts.get(s.key) || addChart(s);
      entry.overview = s;
      if (!entry.zoomed) draw(entry, s).then(() => bind(entry));
    });
    source.addEventListener("outputs", (e) => showOutputs(JSON.parse(e.data)));
    source.addEventListener("end", (e) => {
      source.close(); // (else EventSource reconnects)
      live.textContent = `ended: ${JSON.parse(e.data).status}`;
      window.location.reload();
    });
  }

  const filter = document.getElementById("package-filter");
  if (filter) {
    filter.addEventListener("input", () => {
      const want = filter.value.trim().toLowerCase();
      document.querySelectorAll("#package-list tr").forEach((tr) => {
        tr.hidden = want !== "" && !tr.dataset.name.includes(want);
      });
    });
  }
})();
