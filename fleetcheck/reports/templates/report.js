(function () {
  "use strict";
  var table = document.getElementById("matrix");
  var source = document.getElementById("fleet-data");
  if (!table || !source) { return; }
  var data = JSON.parse(source.textContent);
  var checks = data.checks;           // [id, title, severity]
  var PAGE = 100;
  var CODE = { p: "pass", f: "fail", e: "error", w: "warn", u: "unknown", s: "skip", v: "waived", "-": "" };
  var RANK = { "-": 0, p: 1, s: 2, v: 3, w: 4, u: 5, e: 6, f: 7 };
  var SEV = ["info", "low", "medium", "high", "critical"];
  var SEVL = ["I", "L", "M", "H", "C"];
  // hosts[i] = [name, address, groups, status, message, sevRank, failing, cells, waived, details]
  var hosts = data.hosts.map(function (h, i) {
    var failing = [];
    for (var c = 0; c < h[7].length; c++) {
      if ("feu".indexOf(h[7][c]) >= 0) { failing.push(checks[c][0]); }
    }
    var byCheck = {};
    h[9].forEach(function (d) { byCheck[d[0]] = d; });
    return { i: i, name: h[0], address: h[1], groups: h[2], status: h[3], message: h[4], sev: h[5],
      nfail: h[6], cells: h[7], waived: h[8] === 1, details: h[9], byCheck: byCheck, failing: failing,
      text: (h[0] + " " + h[1] + " " + h[2]).toLowerCase(),
      unchecked: h[7].replace(/-/g, "") === "" && h[3] !== "compliant" && h[3] !== "noncompliant" };
  });
  var tbody = table.tBodies[0];
  var search = document.getElementById("f-text");
  var statusSel = document.getElementById("f-status");
  var sevSel = document.getElementById("f-sev");
  var checkSel = document.getElementById("f-check");
  var shown = document.getElementById("shown");
  var pageLabel = document.getElementById("page");
  var view = hosts.slice();       // filtered and sorted
  var page = 0;
  var showAll = false;

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) { for (var k in attrs) { if (attrs[k] !== null && attrs[k] !== undefined) { e.setAttribute(k, attrs[k]); } } }
    if (text !== undefined && text !== null) { e.textContent = text; }
    return e;
  }

  function cellTitle(h, c) {
    var code = h.cells[c];
    var id = checks[c][0];
    if (code === "-") { return id + ": not evaluated" + (h.message ? " (" + h.message + ")" : ""); }
    var d = h.byCheck[c];
    return id + ": " + CODE[code] + (d && d[1] ? " - " + d[1] : "");
  }

  function row(h) {
    var tr = el("tr", { "data-host": h.name, "data-status": h.status });
    var td = el("td", { "class": "host" });
    td.appendChild(el("a", { href: "#h" + h.i }, h.name));
    tr.appendChild(td);
    tr.appendChild(el("td", { "class": h.sev >= 0 ? "sev sev-" + SEV[h.sev] : "sev", title: h.sev >= 0 ? SEV[h.sev] : null },
      h.sev >= 0 ? SEVL[h.sev] : ""));
    var st = el("td", { title: h.message || null });
    st.appendChild(el("span", { "class": "hs hs-" + h.status }, h.status.toUpperCase()));
    tr.appendChild(st);
    tr.appendChild(el("td", { "class": "num" }, String(h.nfail)));
    for (var c = 0; c < h.cells.length; c++) {
      var code = h.cells[c];
      tr.appendChild(el("td", { "class": "c s-" + CODE[code], title: cellTitle(h, c) }, code === "-" ? "—" : CODE[code].toUpperCase()));
    }
    return tr;
  }

  function render() {
    var pages = Math.max(1, Math.ceil(view.length / PAGE));
    if (page >= pages) { page = pages - 1; }
    var slice = showAll ? view : view.slice(page * PAGE, (page + 1) * PAGE);
    var frag = document.createDocumentFragment();
    slice.forEach(function (h) { frag.appendChild(row(h)); });
    tbody.textContent = "";
    tbody.appendChild(frag);
    shown.textContent = "Showing " + view.length + " of " + hosts.length + " hosts";
    pageLabel.textContent = showAll ? "all on one page" : "page " + (page + 1) + " of " + pages;
    document.getElementById("prev").disabled = showAll || page === 0;
    document.getElementById("next").disabled = showAll || page >= pages - 1;
    document.getElementById("all").textContent = showAll ? "Pages of " + PAGE : "Show all";
  }

  function matches(h) {
    var text = search.value.trim().toLowerCase();
    if (text && h.text.indexOf(text) < 0) { return false; }
    var status = statusSel.value;
    if (status === "unchecked" && !h.unchecked) { return false; }
    if (status === "waived" && !h.waived) { return false; }
    if (status && status !== "unchecked" && status !== "waived" && h.status !== status) { return false; }
    if (sevSel.value && h.sev < parseInt(sevSel.value, 10)) { return false; }
    if (checkSel.value && h.failing.indexOf(checkSel.value) < 0) { return false; }
    return true;
  }

  var sortKey = null;
  var sortDir = 0;
  function key(h, k) {
    if (k === "host") { return h.name.toLowerCase(); }
    if (k === "sev") { return h.sev; }
    if (k === "status") { return data.status_rank[h.status]; }
    if (k === "failing") { return h.nfail; }
    return RANK[h.cells[parseInt(k.slice(1), 10)]];
  }
  function applySort() {
    if (!sortKey) { view.sort(function (a, b) { return a.i - b.i; }); return; }
    view.sort(function (a, b) {
      var x = key(a, sortKey), y = key(b, sortKey);
      if (x < y) { return -sortDir; }
      if (x > y) { return sortDir; }
      return a.i - b.i;
    });
  }
  function applyFilter() {
    view = hosts.filter(matches);
    applySort();
    page = 0;
    render();
  }

  var heads = table.tHead.rows[0].cells;
  for (var h = 0; h < heads.length; h++) {
    heads[h].addEventListener("click", function () {
      var th = this;
      var numeric = th.getAttribute("data-type") === "num";
      var current = th.getAttribute("aria-sort");
      sortDir = current === "descending" ? 1 : (current === "ascending" ? -1 : (numeric ? -1 : 1));
      sortKey = th.getAttribute("data-key");
      for (var j = 0; j < heads.length; j++) { heads[j].removeAttribute("aria-sort"); }
      th.setAttribute("aria-sort", sortDir === 1 ? "ascending" : "descending");
      applySort();
      render();
    });
    if (!heads[h].hasAttribute("title")) { heads[h].setAttribute("title", "Sort by this column"); }
  }
  search.addEventListener("input", applyFilter);
  statusSel.addEventListener("change", applyFilter);
  sevSel.addEventListener("change", applyFilter);
  checkSel.addEventListener("change", applyFilter);
  document.getElementById("prev").addEventListener("click", function () { page--; render(); });
  document.getElementById("next").addEventListener("click", function () { page++; render(); });
  document.getElementById("all").addEventListener("click", function () { showAll = !showAll; render(); });
  var bars = document.querySelectorAll("[data-filter-check]");
  for (var b = 0; b < bars.length; b++) {
    bars[b].addEventListener("click", function () {
      checkSel.value = this.getAttribute("data-filter-check");
      applyFilter();
      table.scrollIntoView();
    });
  }

  // CSV of the hosts the filters select, one row per host x check (like --report csv).
  function csvCell(v) {
    v = v === null || v === undefined ? "" : String(v);
    if (/^[=+\-@\t\r]/.test(v)) { v = "'" + v; }
    return /[",\r\n]/.test(v) ? "\"" + v.replace(/"/g, "\"\"") + "\"" : v;
  }
  function csvText() {
    var lines = [["run_id", "host", "address", "groups", "host_status", "host_message", "check_id", "check_title",
      "check_status", "severity", "message", "observed", "expected", "waiver", "remediation"].join(",")];
    view.forEach(function (h) {
      var base = [data.run_id, h.name, h.address, h.groups, h.status, h.message];
      var any = false;
      for (var c = 0; c < h.cells.length; c++) {
        if (h.cells[c] === "-") { continue; }
        any = true;
        var d = h.byCheck[c] || [c, "", "", "", "", ""];
        lines.push(base.concat([checks[c][0], checks[c][1], CODE[h.cells[c]], checks[c][2], d[1], d[2], d[3], d[5], d[4]]).map(csvCell).join(","));
      }
      if (!any) { lines.push(base.concat(["", "", "", "", "", "", "", "", ""]).map(csvCell).join(",")); }
    });
    return lines.join("\r\n") + "\r\n";
  }
  document.getElementById("csv").addEventListener("click", function () {
    var blob = new Blob(["\ufeff" + csvText()], { type: "text/csv;charset=utf-8" });
    var a = el("a", { href: URL.createObjectURL(blob), download: "fleetcheck-" + data.run_id + ".csv" });
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 0);
  });

  // Host details, built when first opened (1,000 hosts of details would make the page slow).
  var detailsSection = document.getElementById("details");
  function details(h) {
    var existing = document.getElementById("h" + h.i);
    if (existing) { return existing; }
    var box = el("details", { "class": "host", id: "h" + h.i, "data-failing": h.nfail ? "1" : null });
    var sum = el("summary");
    sum.appendChild(el("strong", null, h.name));
    sum.appendChild(document.createTextNode(" "));
    sum.appendChild(el("span", { "class": "hs hs-" + h.status }, h.status.toUpperCase()));
    var extra = (h.address ? " · " + h.address : "") + (h.groups ? " · groups: " + h.groups : "") + (h.nfail ? " · " + h.nfail + " failing" : "");
    sum.appendChild(document.createTextNode(extra));
    box.appendChild(sum);
    if (h.message) { box.appendChild(el("p", null, h.message)); }
    var fixes = (data.fixes || {})[h.name];
    if (fixes && fixes.length) {  // what `fleetcheck fix` changed on this host since the last run
      var fixed = el("p", { "class": "fixed" });
      fixes.forEach(function (note, i) { if (i) { fixed.appendChild(el("br")); } fixed.appendChild(document.createTextNode(note)); });
      box.appendChild(fixed);
    }
    if (h.details.length) {
      var t = el("table", { "class": "detail" });
      var head = el("tr");
      ["Check", "Sev", "Status", "Finding", "Observed", "Expected", "Remediation"].forEach(function (x) { head.appendChild(el("th", null, x)); });
      t.appendChild(head);
      h.details.forEach(function (d) {
        var c = d[0];
        var tr = el("tr");
        var id = el("td");
        id.appendChild(el("code", { title: checks[c][1] }, checks[c][0]));
        tr.appendChild(id);
        tr.appendChild(el("td", { "class": "sev sev-" + checks[c][2] }, checks[c][2]));
        tr.appendChild(el("td", { "class": "s-" + CODE[h.cells[c]] }, CODE[h.cells[c]].toUpperCase()));
        var finding = el("td", null, d[1]);
        if (d[5]) { finding.appendChild(el("br")); finding.appendChild(el("em", null, "Waived: " + d[5])); }
        tr.appendChild(finding);
        tr.appendChild(el("td", { "class": "obs" }, d[2]));
        tr.appendChild(el("td", { "class": "obs" }, d[3]));
        tr.appendChild(el("td", null, d[4]));
        t.appendChild(tr);
      });
      box.appendChild(t);
    }
    var passed = [];
    for (var c = 0; c < h.cells.length; c++) { if (h.cells[c] === "p") { passed.push(checks[c][0]); } }
    if (passed.length) {
      var p = el("p", { "class": "passed" });
      p.appendChild(el("span", { "class": "hs s-pass" }, "PASS"));
      p.appendChild(document.createTextNode(" " + passed.join(", ")));
      box.appendChild(p);
    }
    detailsSection.appendChild(box);
    return box;
  }
  function openTarget() {
    var m = /^#h(\d+)$/.exec(location.hash);
    if (!m || !hosts[parseInt(m[1], 10)]) { return; }
    var box = details(hosts[parseInt(m[1], 10)]);
    box.open = true;
    box.scrollIntoView();
  }
  window.addEventListener("hashchange", openTarget);
  // On paper nothing can be clicked open: print every host with failures, details open.
  window.addEventListener("beforeprint", function () {
    hosts.forEach(function (h) { if (h.nfail) { details(h).open = true; } });
  });
  openTarget();
  applyFilter();
})();
