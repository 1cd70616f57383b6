// The job page's log viewer: the log fills the viewport, permalinks to any line, find in the
// log, toggles, copy buttons and the job's status in the tab. The page works without it.
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

  // Copy buttons: data-copy holds the text; data-copy-curl builds a "run this again" API call.
  function shellQuote(text) { return "'" + String(text).replace(/'/g, "'\\''") + "'"; }
  function curlFor(button) {
    var body = JSON.stringify({ startCommand: button.dataset.command, planId: button.dataset.plan });
    return "curl -X POST " + shellQuote(location.origin + "/v1/services/" + button.dataset.service + "/jobs") +
      " \\\n  -H \"Authorization: Bearer $ONEOFF_API_KEY\" \\\n  -H 'Content-Type: application/json' \\\n  -d " +
      shellQuote(body);
  }
  function copied(button, ok) {
    var label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = ok ? "Copied" : "Copy failed";
    setTimeout(function () { button.textContent = label; }, 1500);
  }
  function copyText(text, button) {
    function fallback() {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed"; area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      area.remove();
      copied(button, ok);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { copied(button, true); }, fallback);
    } else {
      fallback();
    }
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button.copy");
    if (!button) return;
    var text = button.hasAttribute("data-copy-curl") ? curlFor(button) : button.dataset.copy;
    button.dataset.copied = text;  // what was copied, for tests and for a reader's check
    copyText(text, button);
  });

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
  }

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
  // to the scroll position.
  var fromBottom = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    var b = box();
    if (b && event.detail.target && event.detail.target.id === "log-earlier") {
      fromBottom = b.scrollHeight - b.scrollTop;
    }
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    var b = box();
    if (b && fromBottom !== null) {
      b.scrollTop = b.scrollHeight - fromBottom;
      fromBottom = null;
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    showStatus();
    fit();
    goToLine();
  });
  window.addEventListener("hashchange", function () { goToLine(); });
  // The browser's own scroll to the fragment comes after DOMContentLoaded: place the line again.
  window.addEventListener("load", function () { setTimeout(goToLine, 0); setTimeout(goToLine, 150); });
  window.addEventListener("resize", fit);
  document.addEventListener("toggle", fit, true);
  document.addEventListener("htmx:afterSettle", function () { showStatus(); });
})();
