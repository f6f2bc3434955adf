// Keyboard-first review of a trajectory. Every action here is also a plain form or link.
(function () {
  "use strict";
  const steps = () => Array.from(document.querySelectorAll("article.step"));
  const typing = (el) =>
    el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));
  let focused = null;

  function focusStep(index, push) {
    const all = steps();
    if (!all.length) return;
    index = Math.max(0, Math.min(all.length - 1, index));
    all.forEach((s) => s.classList.remove("focused"));
    focused = all[index];
    focused.classList.add("focused");
    focused.scrollIntoView({ block: "start", behavior: "instant" });
    const url = new URL(window.location);
    url.searchParams.set("step", index);
    url.hash = "step-" + index;
    // The URL keeps the focused step, so links and the back button work.
    if (push) history.pushState({ step: index }, "", url);
    else history.replaceState({ step: index }, "", url);
  }
  const current = () => (focused ? Number(focused.dataset.step) : -1);

  // Collapsed/expanded state of long blocks, remembered per kind of block.
  const KEY = "calm.collapse.";
  function rememberToggles() {
    document.querySelectorAll("details.collapsible").forEach((d) => {
      const saved = localStorage.getItem(KEY + d.dataset.kind);
      if (saved === "open") d.open = true;
      if (saved === "closed") d.open = false;
      d.addEventListener("toggle", () => {
        if (d.dataset.bulk) return;
        localStorage.setItem(KEY + d.dataset.kind, d.open ? "open" : "closed");
      });
    });
  }
  function toggleAll() {
    const all = Array.from(document.querySelectorAll("details.collapsible"));
    const open = !all.every((d) => d.open);
    all.forEach((d) => {
      d.dataset.bulk = "1";
      d.open = open;
      setTimeout(() => delete d.dataset.bulk, 0);
    });
    ["reasoning", "output", "stderr"].forEach((k) =>
      localStorage.setItem(KEY + k, open ? "open" : "closed"));
  }

  function labelFocused(key) {
    if (!focused) return;
    const form = focused.querySelector("form.label-form");
    const select = form.querySelector("select[name=flaw_type]");
    if (key === "0") select.value = "";
    else {
      const option = select.querySelector(`option[data-key="${key}"]`);
      if (!option) return;
      select.value = option.value;
    }
    form.requestSubmit();
  }

  function openHint() {
    if (!focused) return;
    const box = focused.querySelector("details.hint-box");
    box.open = true;
    box.querySelector("textarea.hint-text").focus();
  }

  function wireHintForms(root) {
    root.querySelectorAll("details.hint-box").forEach((box) => {
      const picker = box.querySelector("textarea.cut-picker");
      const offset = box.querySelector("input.char-offset");
      if (picker && offset) {
        const sync = () => (offset.value = picker.selectionStart);
        picker.addEventListener("click", sync);
        picker.addEventListener("keyup", sync);
      }
      const template = box.querySelector("select.hint-template");
      if (template) template.addEventListener("change", () => {
        const text = box.querySelector("textarea.hint-text");
        if (template.value) text.value = template.value;
        const opt = template.selectedOptions[0];
        box.querySelector("input.hint-flaw").value = (opt && opt.dataset.flaw) || "";
      });
    });
  }

  // a and r change what becomes training data: they ask first (Enter confirms, Esc cancels).
  function confirmDecision(buttonId, what) {
    const dialog = document.getElementById("confirm-decision");
    const button = document.getElementById(buttonId);
    if (!dialog || !button) return;
    document.getElementById("confirm-what").textContent = what;
    dialog.returnValue = "";
    dialog.onclose = () => { if (dialog.returnValue === "yes") button.click(); };
    dialog.showModal();
    document.getElementById("confirm-yes").focus();
  }

  // Renew the lock while the reviewer is active: any key, click or scroll since the last
  // renewal counts; an idle page lets the lock expire for others.
  let active = false;
  ["keydown", "click", "scroll", "mousemove"].forEach((name) =>
    document.addEventListener(name, () => (active = true), { passive: true }));
  function renewLock() {
    const box = document.getElementById("lock-status");
    if (!box || !active || box.dataset.mine !== "1" || !window.htmx) return;
    active = false;
    htmx.ajax("POST", box.dataset.renewUrl, { target: "#lock-status", swap: "outerHTML" });
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (document.querySelector("dialog[open]")) return; // the dialog has the keyboard
    const key = event.key;
    if (key === "j") focusStep(current() + 1, true);
    else if (key === "k") focusStep(current() - 1, true);
    else if (key === "h") { event.preventDefault(); openHint(); }
    else if (/^[0-9]$/.test(key)) labelFocused(key);
    else if (key === "a") confirmDecision("approve", "approve as golden");
    else if (key === "r") confirmDecision("reject", "reject");
    else if (key === "n") document.getElementById("next-form")?.submit();
    else if (key === "e") toggleAll();
    else if (key === "?") document.getElementById("cheatsheet")?.showModal();
    else return;
  });

  window.addEventListener("popstate", (e) => {
    if (e.state && e.state.step !== undefined) focusStep(e.state.step, false);
  });
  document.addEventListener("DOMContentLoaded", () => {
    rememberToggles();
    wireHintForms(document);
    document.getElementById("expand-all")?.addEventListener("click", toggleAll);
    const box = document.getElementById("lock-status");
    if (box) setInterval(renewLock, Math.max(1, Number(box.dataset.renewEvery || 60)) * 1000);
    const param = new URL(window.location).searchParams.get("step");
    if (param !== null && param !== "") focusStep(Number(param), false);
  });
  // A relabelled step card is swapped in by htmx: keep it focused and wired.
  document.body.addEventListener("htmx:afterSwap", (e) => {
    const card = e.target.closest ? e.target.closest("article.step") || e.target : e.target;
    if (card.matches && card.matches("article.step")) {
      wireHintForms(card);
      if (focused && focused.dataset.step === card.dataset.step) {
        focused = card;
        card.classList.add("focused");
      }
    }
  });
})();
