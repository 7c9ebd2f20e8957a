// The desk's small script: a drop zone for the sheet, and a cell of the
// table changed in place. Without it, the file picker and each row's Edit
// page do the same.
(function () {
  "use strict";
  var drop = document.getElementById("drop");
  var picker = document.getElementById("sheet");
  var dropForm = document.getElementById("drop-form");
  // A file over the limit is refused here, before it is sent.
  function fits() {
    var max = Number(dropForm.dataset.maxBytes);
    var file = picker.files && picker.files[0];
    var ok = !file || !max || file.size <= max;
    document.getElementById("too-large").hidden = ok;
    return ok;
  }
  if (dropForm && picker) {
    dropForm.addEventListener("submit", function (ev) {
      if (!fits()) { ev.preventDefault(); }
    });
  }
  if (drop && picker) {
    ["dragenter", "dragover"].forEach(function (e) {
      drop.addEventListener(e, function (ev) { ev.preventDefault(); drop.classList.add("over"); });
    });
    drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
    drop.addEventListener("drop", function (ev) {
      ev.preventDefault();
      drop.classList.remove("over");
      if (ev.dataTransfer && ev.dataTransfer.files.length > 0) {
        picker.files = ev.dataTransfer.files;
        if (fits()) { dropForm.submit(); }
      }
    });
  }

  var table = document.getElementById("rows");
  var form = document.getElementById("cell-form");
  if (!table || !form) { return; }

  function edit(td) {
    if (td.querySelector("input")) { return; }
    var shown = td.querySelector(".value");
    var input = document.createElement("input");
    input.value = shown ? shown.textContent : "";
    input.setAttribute("aria-label", "New value for row " + td.dataset.row);
    td.dataset.was = td.innerHTML;
    td.textContent = "";
    td.appendChild(input);
    input.focus();
    input.select();
    input.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") {
        ev.preventDefault();
        form.elements.row.value = td.dataset.row;
        form.elements.col.value = td.dataset.col;
        form.elements.value.value = input.value;
        form.submit();
      } else if (ev.key === "Escape") {
        ev.preventDefault();
        td.innerHTML = td.dataset.was;
        td.focus();
      }
    });
  }

  table.addEventListener("dblclick", function (ev) {
    var td = ev.target.closest("td[data-col]");
    if (td) { edit(td); }
  });
  table.addEventListener("keydown", function (ev) {
    var td = ev.target;
    if ((ev.key === "Enter" || ev.key === "F2") && td.matches && td.matches("td[data-col]")) {
      ev.preventDefault();
      edit(td);
    }
  });
})();

// A run's progress, live: the server's events update the numbers; at
// the end the page is drawn again with the report's link.
(function () {
  "use strict";
  var run = document.getElementById("run");
  if (!run || run.dataset.live !== "yes" || !window.EventSource) { return; }
  var source = new EventSource("/sheets/" + run.dataset.sheet + "/events");
  var names = ["done", "total", "accepted", "rejected", "failed", "skipped"];
  source.onmessage = function (ev) {
    var s = JSON.parse(ev.data);
    names.forEach(function (n) {
      var el = document.getElementById("run-" + n);
      if (el) { el.textContent = String(s[n]); }
    });
    var rate = document.getElementById("run-rate");
    if (rate) { rate.textContent = s.rate.toFixed(1); }
    // Rows on this page whose order was answered: what sending gave.
    (s.answered || []).forEach(function (a) {
      document.querySelectorAll("tr[data-group='" + a[0] + "'] .sent").forEach(function (el) {
        el.textContent = "sent: " + a[1];
      });
    });
    var state = document.getElementById("run-state");
    if (state && !s.finished) {
      state.textContent = s.waiting !== null ? s.waiting
        : "Sending… " + (s.eta_s === null ? "" : "about " + s.eta_s + " s left");
    }
    if (s.finished) {
      source.close();
      window.location.reload();
    }
  };
})();

// The drop folders' files, looked at again every few seconds.
(function () {
  "use strict";
  var files = document.getElementById("folder-files");
  if (!files || !window.fetch) { return; }
  window.setInterval(function () {
    fetch("/folders/table", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("folder-files");
        if (fresh) { files.replaceWith(fresh); files = fresh; }
      })
      .catch(function () {});
  }, 2000);
})();
