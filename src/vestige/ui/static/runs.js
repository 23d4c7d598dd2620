// The runs page: the count of matching runs (fetched after the page: it may cost more
// than the page itself) and the selection of runs.
"use strict";
(function () {
  const count = document.getElementById("count");
  if (count && count.dataset.src) {
    fetch(count.dataset.src, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null))
      .then((data) => {
        if (data && typeof data.count === "number") {
          count.textContent = data.count.toLocaleString("en") + (data.count === 1 ? " run" : " runs");
        }
      })
      .catch(() => {});
  }
  const table = document.getElementById("runs");
  const box = document.getElementById("selection");
  const shown = document.getElementById("selected-count");
  const all = document.getElementById("pick-all");
  if (!table) return;
  const picks = () => Array.from(table.querySelectorAll("tbody input[name=run]"));
  function update() {
    const chosen = picks().filter((p) => p.checked);
    picks().forEach((p) => p.closest("tr").classList.toggle("selected", p.checked));
    shown.textContent = String(chosen.length);
    box.hidden = chosen.length === 0;
    box.dataset.runs = chosen.map((p) => p.value).join(",");
  }
  table.addEventListener("change", (e) => {
    if (e.target === all) picks().forEach((p) => { p.checked = all.checked; });
    update();
  });
  update();
})();
