// The run page: metric charts (plotly, data from /run/<id>/metrics.json, downsampled on
// the server) and the filter of the package list.
"use strict";
(function () {
  document.querySelectorAll(".chart[data-src]").forEach((div) => {
    fetch(div.dataset.src, { credentials: "same-origin" })
      .then((r) => r.json())
      .then((s) => {
        const note = div.parentElement.querySelector(".chart-note");
        if (s.error) { if (note) note.textContent = s.error; return; }
        const trace = { x: s.x, y: s.y, type: "scatter", mode: s.shown > 1 ? "lines" : "markers", name: s.key };
        const layout = {
          margin: { l: 50, r: 10, t: 10, b: 40 }, xaxis: { title: { text: "step" } },
          showlegend: false, height: 300,
        };
        window.Plotly.newPlot(div, [trace], layout, { displaylogo: false, responsive: true }).then(() => {
          div.dataset.ready = "1";
        });
        if (note) {
          note.textContent = s.shown < s.count
            ? `${s.shown.toLocaleString("en")} of ${s.count.toLocaleString("en")} points (${s.method})`
            : `${s.count.toLocaleString("en")} points`;
        }
      })
      .catch((e) => { div.textContent = "could not load: " + e; });
  });
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
