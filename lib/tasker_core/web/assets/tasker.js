// tasker dashboard: live updates of a running task's page, without a framework. The page works
// without this script; with it, the task's state, progress and step colours follow the engine
// (a poll of the REST API every 2 s) until the task finishes.
(function () {
  "use strict";
  var TERMINAL = ["complete", "error", "cancelled", "resolved_manually"];

  function badge(el, state) {
    if (!el) return;
    var span = el.querySelector(".badge");
    if (!span) return;
    span.className = "badge state-" + state;
    span.textContent = state;
  }

  function apply(task) {
    badge(document.getElementById("task-status"), task.status);
    var progress = document.getElementById("task-progress");
    if (progress) progress.textContent = task.completed_steps + "/" + task.total_steps;
    (task.steps || []).forEach(function (step) {
      var uuid = step.workflow_step_uuid, state = step.current_state;
      document.querySelectorAll('[data-step="' + uuid + '"]').forEach(function (node) {
        node.setAttribute("class", "node state-" + state);
        var label = node.querySelector(".state");
        if (label) label.textContent = state;
      });
      badge(document.querySelector('[data-step-state="' + uuid + '"]'), state);
    });
  }

  function poll(el) {
    var url = el.getAttribute("data-poll");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (task) {
        if (task) apply(task);
        if (!task || TERMINAL.indexOf(task.status) < 0) setTimeout(function () { poll(el); }, 2000);
        else el.removeAttribute("data-poll");
      })
      .catch(function () { setTimeout(function () { poll(el); }, 5000); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var el = document.querySelector("[data-poll]");
    if (el) setTimeout(function () { poll(el); }, 2000);
  });
})();
