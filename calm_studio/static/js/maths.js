// Typeset the maths the server marked (escaped TeX in .math-inline / .math-display) with the
// vendored KaTeX. The TeX is read as text and trust stays off, so a formula cannot add markup.
(function () {
  "use strict";
  function typeset(root) {
    if (!window.katex) return;
    root.querySelectorAll(".math-inline, .math-display").forEach((el) => {
      if (el.dataset.typeset) return;
      const tex = el.textContent;
      try {
        katex.render(tex, el, {
          displayMode: el.classList.contains("math-display"),
          throwOnError: false, // a malformed formula shows in red, the page goes on
          trust: false,
          strict: "ignore",
          output: "htmlAndMathml",
        });
        el.dataset.typeset = "1";
      } catch (err) {
        el.textContent = tex;
      }
    });
  }
  document.addEventListener("DOMContentLoaded", () => typeset(document));
  document.addEventListener("htmx:afterSwap", (e) => typeset(e.target));
})();
