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
  // A running task's page: follow its events, append them to the log and update the steps;
  // once the run ends, reload for the output.
  const log = document.querySelector("pre.task-log[data-follow]");
  if (log) {
    let after = Number(log.dataset.after || 0);
    const follow = async () => {
      try {
        const response = await fetch(`${log.dataset.follow}?after=${after}`, { credentials: "same-origin" });
        if (!response.ok) { setTimeout(follow, 2000); return; }
        for (const event of await response.json()) {
          after = event.id;
          log.append(event.line + "\n");
          const step = event.stepId && document.querySelector(`[data-step-id="${CSS.escape(String(event.stepId))}"]`);
          if (step && event.status) {
            step.dataset.stepStatus = event.status;
            const status = step.querySelector(".step-status");
            if (status) status.textContent = event.status;
          }
          if (event.type === "completion") { window.location.reload(); return; }
        }
      } catch (error) {
        setTimeout(follow, 2000);
        return;
      }
      follow();
    };
    follow();
  }
});
