// Portico's only script: conveniences on top of pages that work without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Filter forms apply as soon as a selection changes.
  for (const form of document.querySelectorAll("form[data-autosubmit]")) {
    for (const select of form.querySelectorAll("select")) {
      select.addEventListener("change", () => form.requestSubmit());
    }
  }
  // The theme switch applies at once; the form still posts so the choice is remembered.
  const toggle = document.querySelector("[data-theme-toggle]");
  if (toggle) {
    toggle.form.addEventListener("submit", () => {
      const next = toggle.form.elements.theme.value;
      document.documentElement.setAttribute("data-theme", next);
    });
  }
});
