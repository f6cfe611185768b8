// Keyboard for the leads list (j/k move, Enter opens, / searches, ? shows the keys) and keeping
// the selection when the list refreshes itself. Everything works without this file.
(function () {
  "use strict";
  var selectedId = null;

  function rows() { return Array.prototype.slice.call(document.querySelectorAll("tr.lead-row")); }

  function select(row) {
    rows().forEach(function (r) { r.classList.remove("selected"); r.removeAttribute("aria-selected"); });
    if (!row) { return; }
    row.classList.add("selected");
    row.setAttribute("aria-selected", "true");
    selectedId = row.getAttribute("data-id");
    row.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    var all = rows();
    if (!all.length) { return; }
    var index = all.findIndex(function (r) { return r.classList.contains("selected"); });
    var next = index < 0 ? 0 : Math.min(all.length - 1, Math.max(0, index + step));
    select(all[next]);
  }

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var dialog = document.getElementById("shortcuts");
    if (typing(event.target)) {
      if (event.key === "Escape") { event.target.blur(); }
      return;
    }
    if (event.key === "j") { move(1); event.preventDefault(); }
    else if (event.key === "k") { move(-1); event.preventDefault(); }
    else if (event.key === "Enter") {
      var row = document.querySelector("tr.lead-row.selected a.open");
      if (row) { row.click(); event.preventDefault(); }
    } else if (event.key === "/") {
      var search = document.getElementById("q");
      if (search) { search.focus(); search.select(); event.preventDefault(); }
    } else if (event.key === "?") {
      if (dialog) { if (dialog.open) { dialog.close(); } else { dialog.showModal(); } event.preventDefault(); }
    }
  });

  // The reports page's print button (inline handlers are refused by the pane's CSP).
  document.addEventListener("click", function (event) {
    if (event.target && event.target.closest && event.target.closest("[data-print]")) { window.print(); }
  });

  // The poller replaced the list: select the same lead again (scroll position stays, the
  // page around the list is untouched).
  document.addEventListener("htmx:afterSwap", function () {
    if (selectedId === null) { return; }
    var again = document.querySelector('tr.lead-row[data-id="' + CSS.escape(selectedId) + '"]');
    if (again) { again.classList.add("selected"); again.setAttribute("aria-selected", "true"); }
  });

  // Don't poll while the person is typing in the search field: the answer to their typing comes.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var source = event.detail && event.detail.elt;
    if (source && source.id === "results" && document.activeElement && document.activeElement.id === "q"
        && document.activeElement.value !== (new URLSearchParams(source.getAttribute("hx-get").split("?")[1] || "")).get("q")) {
      event.preventDefault();
    }
  });
})();
