// Every page: htmx errors become visible. htmx 2 does not swap 4xx/5xx responses, so a
// refused label or a failed request would otherwise show nothing at all.
(function () {
  "use strict";

  function flash(text, kind) {
    const list = document.getElementById("messages");
    if (!list) return;
    const item = document.createElement("li");
    item.className = kind || "error";
    item.setAttribute("role", "alert");
    item.textContent = text; // text only: the server's words, never its markup
    list.appendChild(item);
    item.scrollIntoView({ block: "nearest" });
  }

  function messageOf(xhr) {
    const type = xhr.getResponseHeader("Content-Type") || "";
    let text = "";
    if (type.startsWith("text/html")) {
      const doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
      const main = doc.querySelector(".error, main section, main") || doc.body;
      text = (main && main.textContent) || "";
    } else {
      text = xhr.responseText || "";
    }
    text = text.replace(/\s+/g, " ").trim().slice(0, 400);
    return text || `The server answered ${xhr.status} ${xhr.statusText}; nothing was changed.`;
  }

  document.addEventListener("htmx:beforeSwap", (event) => {
    const xhr = event.detail.xhr;
    if (xhr.status < 400) return;
    const type = xhr.getResponseHeader("Content-Type") || "";
    const fragment = type.startsWith("text/html") && !/<html[\s>]/i.test(xhr.responseText || "");
    if (xhr.status < 500 && fragment && xhr.responseText) {
      // A fragment that explains itself (a step card with the error): swap it in.
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    } else {
      event.detail.shouldSwap = false;
      flash(messageOf(xhr), "error");
    }
  });
  document.addEventListener("htmx:sendError", () =>
    flash("The server could not be reached; nothing was saved. Try again.", "error"));
  document.addEventListener("htmx:timeout", () =>
    flash("The server took too long to answer; nothing was saved. Try again.", "error"));
})();
