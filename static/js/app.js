// Small progressive enhancements; every page works without them.
(function () {
  "use strict";

  // <time datetime> elements carry UTC; show them in the reader's time zone, UTC stays on hover.
  var dateTime = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  var thisYear = new Intl.DateTimeFormat(undefined, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  var short = new Intl.DateTimeFormat(undefined, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
  var currentYear = new Date().getFullYear();
  var clock = new Intl.DateTimeFormat(undefined, {
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });

  function localise(root) {
    var times = (root || document).querySelectorAll("time[data-format]:not([data-local])");
    for (var i = 0; i < times.length; i++) {
      var el = times[i];
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when) || el.dataset.format === "relative") continue; // static/js/jobslist.js
      if (el.dataset.format === "clock") {
        el.textContent = clock.format(when) + "." + String(when.getMilliseconds()).padStart(3, "0");
      } else if (el.dataset.format === "short" && when.getFullYear() === currentYear) {
        el.textContent = short.format(when);
      } else {
        var fmt = when.getFullYear() === currentYear ? thisYear : dateTime;
        el.textContent = fmt.format(when);
      }
      el.setAttribute("data-local", "");
    }
  }

  // A running job's duration ticks (the server sends the start time).
  function humanSeconds(seconds) {
    if (seconds < 10) return seconds.toFixed(1) + " s";
    if (seconds < 60) return Math.floor(seconds) + " s";
    seconds = Math.floor(seconds);
    var d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600);
    var m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
    if (d) return h ? d + " d " + h + " h" : d + " d";
    if (h) return m ? h + " h " + m + " min" : h + " h";
    return s ? m + " min " + s + " s" : m + " min";
  }
  setInterval(function () {
    var items = document.querySelectorAll("[data-since]");
    for (var i = 0; i < items.length; i++) {
      var since = new Date(items[i].dataset.since);
      if (!isNaN(since)) items[i].textContent = humanSeconds(Math.max(0, (Date.now() - since) / 1000));
    }
  }, 1000);

  // Keep the log view pinned to the newest line while the reader is at the bottom.
  function logBox() { return document.getElementById("log-lines"); }
  var pinned = true;

  function showAlert(message) {
    var box = document.getElementById("alerts");
    if (!box) return;
    var item = document.createElement("p");
    item.className = "alert";
    item.textContent = message;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "small link";
    close.textContent = "Dismiss";
    close.addEventListener("click", function () { item.remove(); });
    item.appendChild(document.createTextNode(" "));
    item.appendChild(close);
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, 10000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    localise(document);
    var box = logBox();
    if (box && !location.hash) box.scrollTop = box.scrollHeight;
  });

  document.addEventListener("htmx:load", function (event) { localise(event.target); });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var box = logBox();
    if (box && box.contains(event.detail.target)) {
      pinned = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    }
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    var box = logBox();
    if (box && pinned && event.detail.target && event.detail.target.id === "log-poller") {
      box.scrollTop = box.scrollHeight;
    }
  });

  // Errors of htmx requests (403, 404, 500, network) become a visible, announced message.
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var type = xhr.getResponseHeader("Content-Type") || "";
    var text = type.indexOf("text/plain") === 0 ? xhr.responseText : "";
    showAlert(text || "Request failed (" + xhr.status + " " + xhr.statusText + ").");
  });
  document.addEventListener("htmx:sendError", function () {
    showAlert("Could not reach the server; retrying when you try again.");
  });

  // Plain (non-htmx) forms that need a confirmation.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  // Copy buttons on any page: data-copy holds the text (an id, a command, a new API key);
  // data-copy-curl builds a "run this again" API call from the job page's data.
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

  document.addEventListener("focusin", function (event) {
    if (event.target.classList && event.target.classList.contains("secret-value")) {
      event.target.select();
    }
  });
})();
