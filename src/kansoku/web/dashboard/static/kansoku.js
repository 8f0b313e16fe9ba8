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

  // Live tail of the logs page: poll the API for lines newer than the newest shown (within the CSP:
  // same-origin fetch, text set as textContent, never HTML).
  var live = document.querySelector("[data-live-tail]");
  if (live) {
    live.closest("p").hidden = false;
    var list = document.getElementById("log-lines");
    var after = Number(live.getAttribute("data-after")) || 0;
    var timer = null;
    var add = function (line) {
      var item = document.createElement("li");
      item.className = "log-line lvl-" + line.level + " fresh";
      var parts = [["time", line.time.slice(11, 23)], ["span", line.level], ["span", line.service],
                   ["span", line.logger], ["span", line.message]];
      var classes = ["", "badge lvl-" + line.level, "log-service", "log-logger", "log-message"];
      var summary = document.createElement("div");
      summary.className = "log-summary";
      parts.forEach(function (part, i) {
        var el = document.createElement(part[0]);
        el.textContent = part[1];
        if (classes[i]) { el.className = classes[i]; }
        summary.appendChild(el);
        summary.appendChild(document.createTextNode(" "));
      });
      item.appendChild(summary);
      list.insertBefore(item, list.firstChild);
    };
    var poll = function () {
      var url = live.getAttribute("data-live-tail") + "?limit=200&after=" + after +
                "&q=" + encodeURIComponent(live.getAttribute("data-query") || "");
      fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (response) { return response.ok ? response.json() : {lines: []}; })
        .then(function (page) {
          page.lines.slice().reverse().forEach(add);
          if (page.lines.length) { after = page.lines[0].id; }
        })
        .catch(function () {});
    };
    live.addEventListener("change", function () {
      if (live.checked) { poll(); timer = setInterval(poll, 2000); } else { clearInterval(timer); }
    });
  }

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
