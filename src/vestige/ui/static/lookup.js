// The lookup page: a file dropped on the box, or an image pasted anywhere on the page,
// becomes the form's file and is sent (the form's own POST, with its CSRF token).
"use strict";
(function () {
  const form = document.getElementById("lookup-form");
  const box = document.getElementById("drop");
  const input = document.getElementById("lookup-file");
  if (!form || !box || !input) return;

  function send(files) {
    if (!files || files.length === 0) return;
    const chosen = new DataTransfer();
    chosen.items.add(files[0]);
    input.files = chosen.files;
    form.requestSubmit();
  }

  ["dragenter", "dragover"].forEach((type) => {
    box.addEventListener(type, (e) => {
      e.preventDefault();
      box.classList.add("over");
    });
  });
  box.addEventListener("dragleave", () => box.classList.remove("over"));
  box.addEventListener("drop", (e) => {
    e.preventDefault();
    box.classList.remove("over");
    send(e.dataTransfer && e.dataTransfer.files);
  });
  document.addEventListener("paste", (e) => {
    const files = e.clipboardData && e.clipboardData.files;
    if (files && files.length) {
      e.preventDefault();
      send(files);
    }
  });
})();
