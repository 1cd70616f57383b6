// The job page's log viewer: the log fills the viewport, permalinks to any line, find in the
// log, toggles, the job's status in the tab and an opt-in notification when it ends (its copy
// buttons: static/js/app.js). The page works without it.
(function () {
  "use strict";

  function $(id) { return document.getElementById(id); }
  function box() { return $("log-lines"); }

  // The log takes the rest of the viewport below its own top.
  function fit() {
    var b = box();
    if (!b || !document.querySelector(".job-page")) return;
    var top = b.getBoundingClientRect().top + window.scrollY;
    document.documentElement.style.setProperty("--log-top", Math.max(0, Math.round(top) + 16) + "px");
  }

  // The job's status in the tab: the title and a coloured dot as the favicon.
  var COLOURS = { pending: "#c48a00", running: "#1c5fcf", succeeded: "#1b7a3d", failed: "#b4232c", canceled: "#5d6679" };
  function showStatus() {
    var summary = $("job-summary");
    if (!summary) return;
    var status = summary.dataset.status;
    if (summary.dataset.title) document.title = summary.dataset.title;
    var colour = COLOURS[status] || "#5d6679";
    var svg = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><circle cx='8' cy='8' r='7' fill='" +
      colour + "'/></svg>";
    var link = document.querySelector("link[rel=icon]");
    if (link) link.href = "data:image/svg+xml," + encodeURIComponent(svg);
    document.documentElement.dataset.jobStatus = status;
    notifyIfEnded(summary);
    notifyButton();
  }

  // An opt-in browser notification when a job the reader started ends. The server marks the
  // reader's own job (data-mine) and offers the button only there, while it runs; the opt-in is
  // remembered in this browser, so the next job pages offer it as on.
  var FINISHED = { succeeded: 1, failed: 1, canceled: 1 };
  var NOTIFY_KEY = "oneoff.notify";
  var BLOCKED = "Notifications are blocked for this site: allow them in the browser's site " +
    "settings to be told when the job ends.";
  var seenStatus = null, notified = false;
  function canNotify() { return typeof window.Notification === "function"; }
  function optedIn() {
    try { return localStorage.getItem(NOTIFY_KEY) === "1"; } catch (e) { return false; }
  }
  function optIn(on) {
    try { localStorage.setItem(NOTIFY_KEY, on ? "1" : "0"); } catch (e) { /* private mode */ }
  }
  function notifyOn() { return canNotify() && optedIn() && Notification.permission === "granted"; }
  var noteText = "";  // what the last press of the button came to, until the next press
  function notifyButton(note) {
    if (note !== undefined) noteText = note;
    var button = $("notify-toggle");
    if (!button) return;
    if (!canNotify()) { button.hidden = true; return; }
    var on = notifyOn();
    button.hidden = false;
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.textContent = on ? "Notifying when it ends" : "Notify me when it ends";
    var text = noteText;
    if (!text && optedIn() && Notification.permission === "denied") text = BLOCKED;
    $("notify-note").textContent = text;
  }
  function notifyIfEnded(summary) {
    var status = summary.dataset.status, before = seenStatus;
    seenStatus = status;
    if (notified || before === null || FINISHED[before] || !FINISHED[status]) return;
    if (!summary.hasAttribute("data-mine") || !notifyOn()) return;
    notified = true;
    var command = summary.querySelector("code.command");
    var id = summary.querySelector("code.job-id");
    try {
      var note = new Notification("Job " + status + (id ? " · " + id.textContent : ""), {
        body: command ? command.textContent.slice(0, 300) : "",
        tag: id ? id.textContent : "oneoff-job",
      });
      note.onclick = function () { window.focus(); note.close(); };
    } catch (e) { /* a browser that shows them only from a service worker */ }
  }
  document.addEventListener("click", function (event) {
    if (event.target.id !== "notify-toggle" || !canNotify()) return;
    if (notifyOn()) { optIn(false); notifyButton(""); return; }
    if (Notification.permission === "denied") { notifyButton(BLOCKED); return; }
    if (Notification.permission === "granted") { optIn(true); notifyButton(""); return; }
    Promise.resolve(Notification.requestPermission()).then(function (answer) {
      if (answer === "granted") { optIn(true); notifyButton(""); return; }
      notifyButton(answer === "denied" ? BLOCKED :
        "Notifications were not allowed: press the button again to be asked once more.");
    });
  });

  // Permalinks: #L2500 shows line 2,500 whatever page holds it. A line this page does not hold
  // loads the page around it (?line=2500#L2500); a line it holds is scrolled to and highlighted
  // (:target).
  function lineOf(hash) {
    var match = /^#L([1-9][0-9]{0,17})$/.exec(hash || "");
    return match ? match[1] : null;
  }
  function goToLine() {
    var n = lineOf(location.hash);
    var b = box();
    if (!n || !b) return;
    var el = $("L" + n);
    if (el) {
      var top = el.getBoundingClientRect().top - b.getBoundingClientRect().top;
      if (top >= 0 && top + el.offsetHeight <= b.clientHeight && window.scrollY === 0) return;  // in view
      // The page stays put (header in view) and the log scrolls: the line a third down.
      window.scrollTo(0, 0);
      b.scrollTop += el.getBoundingClientRect().top - b.getBoundingClientRect().top -
        Math.round(b.clientHeight / 3);
      return;
    }
    var params = new URLSearchParams(location.search);
    if (params.get("line") === n) return;  // asked already: there is no such line
    params.delete("q");
    params.set("line", n);
    location.replace(location.pathname + "?" + params.toString() + location.hash);
  }

  // "Load earlier lines" keeps the lines in view where they were: what was added above is added
  // to the scroll position. The browser's own scroll anchoring is off for that swap, or it would
  // add it a second time (Chromium anchors whenever the box is not scrolled to its very top).
  var fromBottom = null;
  var loadedEarlier = false;  // asked for: from the request on, the view is the reader's
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.target && event.detail.target.id === "log-earlier") loadedEarlier = true;
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    var b = box();
    if (b && event.detail.target && event.detail.target.id === "log-earlier") {
      loadedEarlier = true;
      fromBottom = b.scrollHeight - b.scrollTop;
      b.style.overflowAnchor = "none";
    }
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    var b = box();
    if (b && fromBottom !== null) {
      b.scrollTop = b.scrollHeight - fromBottom;
      fromBottom = null;
      b.style.overflowAnchor = "";
    }
  });


  // Find in the lines shown: every match counted and highlighted (CSS Custom Highlight API,
  // the DOM untouched), Enter / Shift+Enter or the arrows for next / previous, "/" to find,
  // Escape to clear. The server's "Search" looks through the whole log.
  var matches = [], current = -1;
  var canHighlight = window.CSS && CSS.highlights && window.Highlight;
  function clearFound() {
    if (canHighlight) { CSS.highlights.delete("log-find"); CSS.highlights.delete("log-find-current"); }
    var old = document.querySelectorAll("#log-lines li.found-current");
    for (var i = 0; i < old.length; i++) old[i].classList.remove("found-current");
  }
  function find(keepIndex) {
    var input = $("log-find"), b = box();
    if (!input || !b) return;
    var needle = input.value.toLowerCase();
    clearFound();
    matches = [];
    if (needle) {
      var walker = document.createTreeWalker(b, NodeFilter.SHOW_TEXT, {
        acceptNode: function (node) {
          return node.parentElement.closest(".msg") ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_REJECT;
        },
      });
      for (var node = walker.nextNode(); node; node = walker.nextNode()) {
        var hay = node.data.toLowerCase(), at = hay.indexOf(needle);
        while (at !== -1) {
          var range = document.createRange();
          range.setStart(node, at);
          range.setEnd(node, at + needle.length);
          matches.push(range);
          at = hay.indexOf(needle, at + needle.length);
        }
      }
    }
    if (!keepIndex || current >= matches.length) current = matches.length ? 0 : -1;
    if (canHighlight && matches.length) {
      var all = new Highlight();
      for (var m = 0; m < matches.length; m++) all.add(matches[m]);
      CSS.highlights.set("log-find", all);
    }
    show();
  }
  function show() {
    var count = $("log-find-count");
    if (!count) return;
    var input = $("log-find");
    count.textContent = !input.value ? "" : matches.length ? (current + 1) + " of " + matches.length : "No matches";
    if (current < 0 || !matches[current]) return;
    var range = matches[current];
    if (canHighlight) CSS.highlights.set("log-find-current", new Highlight(range));
    var li = range.startContainer.parentElement.closest("li");
    var old = document.querySelectorAll("#log-lines li.found-current");
    for (var i = 0; i < old.length; i++) old[i].classList.remove("found-current");
    if (li) {
      li.classList.add("found-current");
      var b = box(), top = li.getBoundingClientRect().top - b.getBoundingClientRect().top;
      if (top < 0 || top > b.clientHeight - li.offsetHeight) b.scrollTop += top - Math.round(b.clientHeight / 3);
    }
  }
  function step(by) {
    if (!matches.length) return;
    current = (current + by + matches.length) % matches.length;
    show();
  }
  document.addEventListener("input", function (event) {
    if (event.target.id === "log-find") find(false);
  });
  document.addEventListener("click", function (event) {
    var id = event.target.id;
    if (id === "log-find-next") step(1);
    else if (id === "log-find-prev") step(-1);
  });
  document.addEventListener("keydown", function (event) {
    var t = event.target;
    if (t.id === "log-find") {
      if (event.key === "Enter") { event.preventDefault(); step(event.shiftKey ? -1 : 1); }
      else if (event.key === "Escape") { t.value = ""; find(false); t.blur(); }
      return;
    }
    var typing = t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName);
    if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey && $("log-find")) {
      event.preventDefault();
      $("log-find").focus();
      $("log-find").select();
    }
  });

  // Timestamps and wrap toggles, remembered in this browser.
  function toggles() {
    var viewer = $("log-viewer");
    if (!viewer) return;
    [["log-ts", "no-ts"], ["log-wrap", "no-wrap"]].forEach(function (pair) {
      var input = $(pair[0]);
      if (!input) return;
      var saved = null;
      try { saved = localStorage.getItem("oneoff." + pair[0]); } catch (e) { saved = null; }
      if (saved !== null) input.checked = saved === "1";
      viewer.classList.toggle(pair[1], !input.checked);
    });
  }
  document.addEventListener("change", function (event) {
    var id = event.target.id;
    if (id !== "log-ts" && id !== "log-wrap") return;
    try { localStorage.setItem("oneoff." + id, event.target.checked ? "1" : "0"); } catch (e) { /* private mode */ }
    toggles();
  });

  // A cap on the lines kept in the page while the tail comes in: the oldest are dropped, and
  // "Load earlier lines" brings them back.
  var CAP = window.ONEOFF_LOG_CAP || 5000;
  function cap() {
    var b = box();
    if (!b || !b.dataset.logsUrl) return;
    var lines = b.querySelectorAll("li.line");
    var extra = lines.length - CAP;
    if (extra <= 0) return;
    for (var i = 0; i < extra; i++) lines[i].remove();
    var systems = b.querySelectorAll("li.system");
    for (var j = 0; j < systems.length; j++) {
      if (systems[j].compareDocumentPosition(lines[extra]) & Node.DOCUMENT_POSITION_FOLLOWING) systems[j].remove();
    }
    var earlier = $("log-earlier");
    if (!earlier) {
      earlier = document.createElement("li");
      earlier.id = "log-earlier";
      earlier.className = "more";
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = "Load earlier lines";
      button.setAttribute("hx-target", "#log-earlier");
      button.setAttribute("hx-swap", "outerHTML");
      earlier.appendChild(button);
      b.insertBefore(earlier, lines[extra]);
    }
    earlier.firstChild.setAttribute("hx-get", b.dataset.logsUrl + "?before=" + lines[extra].dataset.seq);
    if (window.htmx) htmx.process(earlier);
  }
  document.addEventListener("htmx:afterSettle", function (event) {
    var id = event.detail.target && event.detail.target.id;
    if (id === "log-poller" || id === "log-later") cap();
    if ($("log-find") && $("log-find").value) find(true);
  });

  document.addEventListener("DOMContentLoaded", function () {
    toggles();
    showStatus();
    fit();
    goToLine();
  });
  window.addEventListener("hashchange", function () { goToLine(); });
  // The browser's own scroll to the fragment comes after DOMContentLoaded: place the line again.
  // Once more just after load (fonts and layout settle), unless lines were loaded meanwhile: it
  // would then undo "Load earlier lines" keeping the lines in view.
  function goToLineUnlessMoved() { if (!loadedEarlier) goToLine(); }
  window.addEventListener("load", function () {
    setTimeout(goToLineUnlessMoved, 0);
    setTimeout(goToLineUnlessMoved, 150);
  });
  window.addEventListener("resize", fit);
  document.addEventListener("toggle", fit, true);
  // The summary is swapped in anew when the status changes: keep its details panel as it was.
  var detailsOpen = false;
  document.addEventListener("htmx:beforeSwap", function () {
    var details = $("job-details");
    detailsOpen = !!(details && details.open);
  });
  document.addEventListener("htmx:afterSettle", function () {
    var details = $("job-details");
    if (details && detailsOpen) details.open = true;
    showStatus();
  });
})();
