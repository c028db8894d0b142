// Bulwark console: the only script. Pages work without it; it saves a
// click by submitting filter forms when a select or checkbox changes.
(function () {
  "use strict";
  document.addEventListener("change", function (ev) {
    var el = ev.target;
    if (!el || !el.form || !el.form.hasAttribute("data-autosubmit")) return;
    if (el.tagName === "SELECT" || el.type === "checkbox") {
      var page = el.form.querySelector("input[name=page]");
      if (page) page.remove();
      el.form.requestSubmit ? el.form.requestSubmit() : el.form.submit();
    }
  });
  // The alert list's bulk bar: "select all on this page" and the count
  // of selected rows (the checkboxes post with the bulk form either way).
  function updateBulk(form) {
    var boxes = document.querySelectorAll('input[name=id][form="' + form + '"]');
    var n = 0;
    for (var i = 0; i < boxes.length; i++) if (boxes[i].checked) n++;
    var out = document.getElementById("bulk-count");
    if (out) {
      out.textContent = n + " selected";
      out.setAttribute("data-selected", String(n));
    }
    var all = document.querySelector('[data-select-all="' + form + '"]');
    if (all) {
      all.checked = n > 0 && n === boxes.length;
      all.indeterminate = n > 0 && n < boxes.length;
    }
  }
  document.addEventListener("change", function (ev) {
    var el = ev.target;
    if (!el || el.type !== "checkbox") return;
    var form = el.getAttribute("data-select-all");
    if (form) {
      var boxes = document.querySelectorAll('input[name=id][form="' + form + '"]');
      for (var i = 0; i < boxes.length; i++) boxes[i].checked = el.checked;
      updateBulk(form);
    } else if (el.name === "id" && el.getAttribute("form")) {
      updateBulk(el.getAttribute("form"));
    }
  });
})();
