// The review queue: n opens the next item (a plain form button, so it works without this).
(function () {
  "use strict";
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (["INPUT", "TEXTAREA", "SELECT"].includes(e.target.tagName)) return;
    if (e.key === "n") document.getElementById("start-review")?.click();
  });
})();
