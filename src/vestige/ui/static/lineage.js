// The lineage page: zoom (wheel, around the pointer) and pan (drag) of the graph drawn on
// the server, by the transform of its <g id="viewport">. A drag is not a click: a node
// (a link) let go after a drag does not navigate.
"use strict";
(function () {
  const svg = document.getElementById("lineage");
  const view = document.getElementById("viewport");
  if (!svg || !view) return;
  const MIN = 0.1;
  const MAX = 8;
  let scale = 1;
  let tx = 0;
  let ty = 0;
  let drag = null;
  let dragged = false;

  function apply() {
    view.setAttribute("transform", `translate(${tx.toFixed(2)} ${ty.toFixed(2)}) scale(${scale.toFixed(4)})`);
  }

  // A point of the window in the SVG's user units (outside the viewport's transform).
  function point(clientX, clientY) {
    const m = svg.getScreenCTM();
    if (!m) return { x: 0, y: 0 };
    const p = new DOMPoint(clientX, clientY).matrixTransform(m.inverse());
    return { x: p.x, y: p.y };
  }

  svg.addEventListener("wheel", (e) => {
    e.preventDefault();
    const p = point(e.clientX, e.clientY);
    const factor = Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015));
    const next = Math.min(MAX, Math.max(MIN, scale * factor));
    const k = next / scale;
    tx = p.x - (p.x - tx) * k;
    ty = p.y - (p.y - ty) * k;
    scale = next;
    apply();
  }, { passive: false });

  svg.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    drag = { start: point(e.clientX, e.clientY), tx, ty, x: e.clientX, y: e.clientY, id: e.pointerId };
    dragged = false;
  });
  // (a link dragged would start the browser's own drag and drop, which ends the pointer's
  // events: no pan)
  svg.addEventListener("dragstart", (e) => e.preventDefault());
  svg.addEventListener("pointermove", (e) => {
    if (!drag || e.pointerId !== drag.id) return;
    if (!dragged && Math.hypot(e.clientX - drag.x, e.clientY - drag.y) < 4) return;
    if (!dragged) {
      dragged = true;
      svg.setPointerCapture(e.pointerId);
      svg.classList.add("dragging");
    }
    const p = point(e.clientX, e.clientY);
    tx = drag.tx + (p.x - drag.start.x);
    ty = drag.ty + (p.y - drag.start.y);
    apply();
  });
  function end(e) {
    if (drag && e.pointerId === drag.id) {
      drag = null;
      svg.classList.remove("dragging");
    }
  }
  svg.addEventListener("pointerup", end);
  svg.addEventListener("pointercancel", end);
  // (capture: runs before the link's own navigation)
  svg.addEventListener("click", (e) => {
    if (dragged) {
      e.preventDefault();
      e.stopPropagation();
      dragged = false;
    }
  }, true);

  const reset = document.getElementById("lineage-reset");
  if (reset) {
    reset.addEventListener("click", () => {
      scale = 1;
      tx = 0;
      ty = 0;
      apply();
    });
  }
  apply();
})();
