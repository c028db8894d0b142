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
})();
