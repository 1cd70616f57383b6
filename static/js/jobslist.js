// The Jobs list, live: one request per interval for the list head (new jobs, the unfinished
// rows as they are now, the counts on the status chips), relative times, rows that open their
// job, and date filters in the reader's time zone. The page works without it.
(function () {
  "use strict";

  var zone = "UTC";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { /* old browser */ }

  // Date filters count the reader's days: the server reads the zone from the form's hidden
  // field, else from this cookie (so a link with dates and no zone means the same days).
  document.cookie = "tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; SameSite=Lax";

  var exact = new Intl.DateTimeFormat(undefined, {
    weekday: "short", year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  });
  var rtf = typeof Intl.RelativeTimeFormat === "function"
    ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" }) : null;
  var day = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
  var dayYear = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });

  function relative(when, now) {
    var seconds = Math.round((now - when) / 1000);
    if (seconds < 45) return "just now";
    var minutes = Math.round(seconds / 60);
    if (!rtf) return when.toLocaleString();
    if (minutes < 60) return rtf.format(-minutes, "minute");
    var hours = Math.round(minutes / 60);
    if (hours < 24) return rtf.format(-hours, "hour");
    var days = Math.round(hours / 24);
    if (days < 7) return rtf.format(-days, "day");
    return (when.getFullYear() === new Date(now).getFullYear() ? day : dayYear).format(when);
  }

  function relativeTimes(root) {
    var now = Date.now();
    var items = (root || document).querySelectorAll('time[data-format="relative"]');
    for (var i = 0; i < items.length; i++) {
      var el = items[i];
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when)) continue;
      if (!el.dataset.utc) el.dataset.utc = el.getAttribute("title") || "";
      el.textContent = relative(when, now);
      el.title = exact.format(when) + (el.dataset.utc ? " (" + el.dataset.utc + ")" : "");
    }
  }

  function rows() { return document.getElementById("job-rows"); }
  function filters() { return document.getElementById("job-filters"); }

  function fillZone() {
    var form = filters();
    if (!form) return;
    var field = form.querySelector('input[name="tz"]');
    if (field) field.value = zone;
    var label = document.getElementById("tz-label");
    if (label) label.textContent = "(" + zone + ")";
  }

  function setCounts(source) {
    if (!source) return;
    var items = source.querySelectorAll("[data-status]");
    for (var i = 0; i < items.length; i++) {
      var chip = document.querySelector('.chip .count[data-status="' + items[i].dataset.status + '"]');
      if (chip) chip.textContent = items[i].textContent;
    }
  }

  // The list head: the first request goes one interval after the page loads, the next one
  // interval after the previous answer (never two at once).
  var timer = null;
  var busy = false;

  function headQuery() {
    var form = filters();
    var params = new URLSearchParams();
    if (form) {
      var data = new FormData(form);
      data.forEach(function (value, key) {
        if (key !== "cursor" && value !== "") params.append(key, value);
      });
    }
    var body = rows();
    var first = body && body.querySelector("tr.job");
    if (first) params.set("newest", first.id.slice(4));
    var ids = [];
    var open = body ? body.querySelectorAll("tr.job[data-unfinished]") : [];
    for (var i = 0; i < open.length && ids.length < 200; i++) ids.push(open[i].id.slice(4));
    if (ids.length) params.set("ids", ids.join(","));
    return params.toString();
  }

  function activate(el) {
    if (window.htmx) window.htmx.process(el);
    relativeTimes(el);
  }

  function applyHead(html) {
    var body = rows();
    if (!body) return;
    var box = document.createElement("template");
    box.innerHTML = html;
    var fresh = box.content.querySelector("template.new");
    var updated = box.content.querySelector("template.updated");
    var before = body.querySelector("tr.job");
    var added = fresh ? Array.prototype.slice.call(fresh.content.querySelectorAll("tr.job")) : [];
    var changed = updated ? Array.prototype.slice.call(updated.content.querySelectorAll("tr.job")) : [];
    added.forEach(function (row) {
      var old = document.getElementById(row.id);
      if (old) { replaceRow(old, row); return; }
      body.insertBefore(row, before || body.firstChild);
      row.classList.add("arrived");
      activate(row);
    });
    changed.forEach(function (row) {
      var old = document.getElementById(row.id);
      if (old) replaceRow(old, row);
    });
    setCounts(box.content.getElementById("chip-counts"));
  }

  function replaceRow(old, row) {
    if (old.outerHTML === row.outerHTML) return;
    var active = document.activeElement;
    var focused = active && old.contains(active);
    var label = focused && active !== old ? active.getAttribute("aria-label") : null;
    old.replaceWith(row);
    activate(row);
    if (focused) {
      var target = label ? row.querySelector('[aria-label="' + label.replace(/"/g, '\\"') + '"]') : row;
      (target || row).focus();
    }
  }

  function poll() {
    timer = null;
    var live = document.getElementById("jobs-live");
    if (!live || !rows()) return;
    if (document.hidden || busy) { schedule(); return; }
    busy = true;
    fetch(live.dataset.headUrl + "?" + headQuery(), {
      credentials: "same-origin", headers: { "X-Requested-With": "fetch" },
    }).then(function (response) {
      return response.ok ? response.text() : "";
    }).then(function (html) {
      if (html) applyHead(html);
    }).catch(function () { /* a missed poll: the next one catches up */ })
      .then(function () { busy = false; schedule(); });
  }

  function schedule() {
    var live = document.getElementById("jobs-live");
    if (!live || timer) return;
    timer = setTimeout(poll, parseInt(live.dataset.pollMs, 10) || 2000);
  }

  // The whole row opens its job: a click anywhere but on its controls, or Enter on the row.
  function isControl(el) {
    return el.closest("a, button, input, select, textarea, form, summary, label");
  }
  document.addEventListener("click", function (event) {
    var row = event.target.closest && event.target.closest("#job-rows tr.job[data-href]");
    if (!row || isControl(event.target)) return;
    if (window.getSelection && String(window.getSelection())) return; // selecting text
    if (event.ctrlKey || event.metaKey || event.button === 1) {
      window.open(row.dataset.href, "_blank", "noopener");
    } else {
      location.href = row.dataset.href;
    }
  });
  document.addEventListener("keydown", function (event) {
    var row = event.target;
    if (event.key !== "Enter" || !row.matches || !row.matches("#job-rows tr.job[data-href]")) return;
    event.preventDefault();
    location.href = row.dataset.href;
  });

  document.addEventListener("DOMContentLoaded", function () {
    if (!document.getElementById("jobs-live")) return;
    var form = filters();
    var shown = form ? form.dataset.tz : zone;
    fillZone();
    relativeTimes(document);
    // Dates filtered in another zone than the reader's (a shared link): ask again in theirs.
    if (form && shown !== zone && (form.elements.created_from.value || form.elements.created_to.value)) {
      if (window.htmx) window.htmx.trigger(form, "submit");
    }
    schedule();
    setInterval(function () { relativeTimes(document); }, 30000);
  });

  // Filter URLs carry only what is set (the zone only with a date): ?status=failed, not
  // ?q=&status=failed&created_from=…
  document.addEventListener("htmx:configRequest", function (event) {
    if (!event.detail.elt || event.detail.elt.id !== "job-filters") return;
    var params = event.detail.parameters;
    Object.keys(params).forEach(function (key) {
      if (params[key] === "") delete params[key];
    });
    if (!params.created_from && !params.created_to) delete params.tz;
  });

  document.addEventListener("htmx:load", function (event) { relativeTimes(event.target); });
  // A filter answer brings the chips' counts along (out of band, hidden): show them.
  document.addEventListener("htmx:afterSettle", function () {
    setCounts(document.getElementById("chip-counts"));
  });
})();
