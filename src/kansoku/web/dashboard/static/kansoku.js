// kansoku dashboard: progressive enhancement only; every page works without this file.
(function () {
  "use strict";

  // "Select all on this page" for the bulk actions of the errors list (hidden until this runs).
  document.querySelectorAll("[data-select-all]").forEach(function (box) {
    var name = box.getAttribute("data-select-all");
    var form = box.form;
    box.closest("label").hidden = false;
    box.addEventListener("change", function () {
      form.querySelectorAll('input[type="checkbox"][name="' + name + '"]').forEach(function (item) {
        item.checked = box.checked;
      });
    });
  });

  // Show times in the reader's own time zone on hover (the server renders UTC).
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var date = new Date(el.getAttribute("datetime"));
    if (!isNaN(date.getTime())) {
      el.title = date.toLocaleString() + " (" + el.title + ")";
    }
  });

  // "/" focuses the search field, as on most dashboards (not while typing elsewhere).
  var search = document.querySelector("[data-shortcut='/']");
  if (search) {
    document.addEventListener("keydown", function (event) {
      var tag = (event.target && event.target.tagName) || "";
      if (event.key === "/" && !/^(INPUT|TEXTAREA|SELECT)$/.test(tag) && !event.ctrlKey && !event.metaKey) {
        event.preventDefault();
        search.focus();
      }
    });
  }
})();
