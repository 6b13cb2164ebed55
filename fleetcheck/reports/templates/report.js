(function () {
  "use strict";
  var table = document.getElementById("matrix");
  if (!table) { return; }
  var tbody = table.tBodies[0];
  var rows = Array.prototype.slice.call(tbody.rows);
  var search = document.getElementById("f-text");
  var statusSel = document.getElementById("f-status");
  var checkSel = document.getElementById("f-check");
  var shown = document.getElementById("shown");

  function applyFilter() {
    var text = search.value.trim().toLowerCase();
    var status = statusSel.value;
    var check = checkSel.value;
    var n = 0;
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      var ok = true;
      if (text && r.getAttribute("data-text").indexOf(text) < 0) { ok = false; }
      if (ok && status) {
        var hs = r.getAttribute("data-status");
        if (status === "unchecked") { ok = r.getAttribute("data-unchecked") === "1"; }
        else if (status === "waived") { ok = r.getAttribute("data-waived") === "1"; }
        else { ok = hs === status; }
      }
      if (ok && check) { ok = (" " + r.getAttribute("data-failing") + " ").indexOf(" " + check + " ") >= 0; }
      r.classList.toggle("hidden", !ok);
      if (ok) { n++; }
    }
    shown.textContent = "Showing " + n + " of " + rows.length + " hosts";
  }

  function sortBy(th) {
    var col = parseInt(th.getAttribute("data-col"), 10);
    var numeric = th.getAttribute("data-type") === "num";
    var dir = th.getAttribute("aria-sort") === "descending" ? 1 : -1;
    if (!th.hasAttribute("aria-sort")) { dir = numeric ? -1 : 1; }
    var heads = table.tHead.rows[0].cells;
    for (var h = 0; h < heads.length; h++) { heads[h].removeAttribute("aria-sort"); }
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    var keyed = rows.map(function (r, i) {
      var cell = r.cells[col];
      var k = cell.getAttribute("data-sort");
      if (k === null) { k = cell.textContent; }
      return { r: r, k: numeric ? parseFloat(k) : k.toLowerCase(), i: i, h: r.getAttribute("data-host") };
    });
    keyed.sort(function (a, b) {
      if (a.k < b.k) { return -dir; }
      if (a.k > b.k) { return dir; }
      return a.h < b.h ? -1 : (a.h > b.h ? 1 : 0);
    });
    var frag = document.createDocumentFragment();
    rows = keyed.map(function (x) { frag.appendChild(x.r); return x.r; });
    tbody.appendChild(frag);
  }

  var heads = table.tHead.rows[0].cells;
  for (var h = 0; h < heads.length; h++) {
    heads[h].addEventListener("click", function () { sortBy(this); });
    heads[h].setAttribute("title", "Sort by this column");
  }
  search.addEventListener("input", applyFilter);
  statusSel.addEventListener("change", applyFilter);
  checkSel.addEventListener("change", applyFilter);
  var bars = document.querySelectorAll("[data-filter-check]");
  for (var b = 0; b < bars.length; b++) {
    bars[b].addEventListener("click", function () {
      checkSel.value = this.getAttribute("data-filter-check");
      applyFilter();
      table.scrollIntoView();
    });
  }
  // A link to a host opens its details (closed by default to keep 1,000 hosts readable).
  function openTarget() {
    var el = location.hash ? document.getElementById(location.hash.slice(1)) : null;
    if (el && el.tagName === "DETAILS") { el.open = true; }
  }
  window.addEventListener("hashchange", openTarget);
  // On paper nothing can be clicked open: print the details of hosts with failures.
  window.addEventListener("beforeprint", function () {
    var failing = document.querySelectorAll("details.host[data-failing]");
    for (var i = 0; i < failing.length; i++) { failing[i].open = true; }
  });
  openTarget();
  applyFilter();
})();
