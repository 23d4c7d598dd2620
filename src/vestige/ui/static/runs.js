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
    // Compare opens /compare with the chosen runs by number (a URL a person can read)
    // (oldest first: the page compares each run with the first)
    const seqs = chosen.map((p) => Number(p.closest("tr").dataset.seq)).sort((a, b) => a - b);
    compare.href = "/compare?runs=" + seqs.join(",");
    compare.setAttribute("aria-disabled", chosen.length < 2 ? "true" : "false");
  }
  const compare = document.getElementById("compare-selected");
  compare.addEventListener("click", (e) => {
    if (compare.getAttribute("aria-disabled") === "true") e.preventDefault();  // one run: nothing to compare
  });
  table.addEventListener("change", (e) => {
    if (e.target === all) picks().forEach((p) => { p.checked = all.checked; });
    update();
  });
  update();
})();
