// The Compare page: the toggle of the rows that are the same in every run, the overlaid
// metric charts (one fetch of /compare/metrics.json, downsampled on the server: a trace
// per run), the shared files' verdicts, and the figure overlays' sliders (opacity or wipe).
"use strict";
(function () {
  const toggle = document.getElementById("show-same");
  if (toggle) {
    toggle.addEventListener("change", () => {
      document.querySelectorAll("#compare-table tr.same").forEach((tr) => {
        tr.hidden = !toggle.checked;
      });
      // the view stays shareable: the address says whether the same rows show
      const url = new URL(window.location.href);
      if (toggle.checked) url.searchParams.set("same", "1");
      else url.searchParams.delete("same");
      window.history.replaceState(null, "", url);
    });
  }

  const box = document.getElementById("compare-charts");
  if (box && box.dataset.src) {
    fetch(box.dataset.src, { credentials: "same-origin" })
      .then((r) => r.json())
      .then((data) => {
        if (data.error) { box.textContent = data.error; return; }
        box.querySelectorAll(".chart[data-key]").forEach((div) => {
          const series = data.keys[div.dataset.key] || [];
          const note = div.parentElement.querySelector(".chart-note");
          const traces = series.map((s) => ({
            x: s.x, y: s.y, type: "scatter", mode: s.shown > 1 ? "lines" : "markers",
            name: "#" + s.seq,
          }));
          const layout = {
            margin: { l: 50, r: 10, t: 10, b: 40 }, xaxis: { title: { text: "step" } },
            showlegend: true, legend: { orientation: "h" }, height: 320,
          };
          window.Plotly.newPlot(div, traces, layout, { displaylogo: false, responsive: true })
            .then(() => { div.dataset.ready = "1"; });
          if (note) {
            const cut = series.filter((s) => s.shown < s.count);
            note.textContent = cut.length
              ? cut.map((s) => `#${s.seq}: ${s.shown.toLocaleString("en")} of ${s.count.toLocaleString("en")} points`).join(", ") + ` (${cut[0].method})`
              : "";
          }
        });
        if (data.errors && data.errors.length) {
          const p = document.createElement("p");
          p.className = "error";
          p.textContent = data.errors.join("; ");
          box.after(p);
        }
      })
      .catch((e) => { box.textContent = "could not load the metrics: " + e; });
  }

  // each shared figure's and table's verdicts, fetched after the page (they read and
  // parse every copy): the server's lines, made from its templates, in their slots
  document.querySelectorAll("[data-verdicts]").forEach((block) => {
    fetch(block.dataset.verdicts, { credentials: "same-origin" })
      .then((r) => r.json())
      .then((data) => {
        block.querySelectorAll(".verdict-slot[data-verdict-seq]").forEach((slot) => {
          const v = data.verdicts && data.verdicts[slot.dataset.verdictSeq];
          if (v) {
            slot.innerHTML = v.html;
            slot.dataset.verdict = v.verdict;
          } else {
            slot.textContent = data.error || "not compared";
            slot.dataset.verdict = "error";
          }
        });
      })
      .catch((e) => {
        block.querySelectorAll(".verdict-slot").forEach((slot) => {
          slot.textContent = "could not compare: " + e;
          slot.dataset.verdict = "error";
        });
      });
  });

  document.querySelectorAll("figure.overlay").forEach((fig) => {
    const over = fig.querySelector("img.over");
    const slider = fig.querySelector(".overlay-slider");
    const modes = Array.from(fig.querySelectorAll(".overlay-mode"));
    function draw() {
      const v = Number(slider.value);
      const wipe = modes.some((m) => m.checked && m.value === "wipe");
      // (CSSOM, not a style attribute: the page's CSP allows no inline style)
      over.style.opacity = wipe ? "1" : String(v / 100);
      over.style.clipPath = wipe ? `inset(0 ${100 - v}% 0 0)` : "none";
      fig.dataset.mode = wipe ? "wipe" : "opacity";
    }
    slider.addEventListener("input", draw);
    modes.forEach((m) => m.addEventListener("change", draw));
    draw();
  });
})();
