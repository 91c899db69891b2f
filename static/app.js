// The page's small script: resume after reconnects, client ids for resends, composer
// behaviour, local times and the sidebar toggle. Everything else is server-rendered HTML.
(function () {
  "use strict";

  var failedOpens = 0;
  var pending = {}; // client_id -> text, until the server echoes the message back

  function messages() { return document.getElementById("messages"); }
  function composer() { return document.getElementById("composer-body"); }
  function roomSlug() {
    var room = document.querySelector("main.room");
    return room ? room.getAttribute("data-room") : null;
  }
  function draftKey() { return "draft:" + roomSlug(); }

  function newestMessageId() {
    var list = messages();
    if (!list) return 0;
    var all = list.querySelectorAll("[id^='msg-']");
    var newest = 0;
    for (var i = all.length - 1; i >= 0 && i >= all.length - 5; i--) {
      var id = parseInt(all[i].id.slice(4), 10);
      if (id > newest) newest = id;
    }
    return newest;
  }

  function randomId() {
    var bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function setStatus(text) {
    var status = document.getElementById("connection");
    if (status) status.textContent = text;
  }

  function nearBottom(list) {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 120;
  }

  function scrollToBottom() {
    var list = messages();
    if (list) list.scrollTop = list.scrollHeight;
  }

  function localizeTimes(root) {
    var times = (root || document).querySelectorAll("time[datetime]:not([data-local])");
    for (var i = 0; i < times.length; i++) {
      var at = new Date(times[i].getAttribute("datetime"));
      if (isNaN(at)) continue;
      times[i].textContent = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      times[i].title = at.toLocaleString();
      times[i].setAttribute("data-local", "");
    }
  }

  function syncComposer() {
    var box = composer();
    if (!box) return;
    var send = document.querySelector("#composer button[type=submit]");
    if (send) send.disabled = box.value.trim() === "";
    box.style.height = "auto";
    box.style.height = Math.min(box.scrollHeight, 200) + "px";
    box.style.overflowY = box.scrollHeight > 200 ? "auto" : "hidden";
  }

  document.addEventListener("htmx:wsOpen", function (evt) {
    failedOpens = 0;
    setStatus("");
    // Sent before htmx-ext-ws flushes what was typed while disconnected.
    evt.detail.socketWrapper.send(JSON.stringify({ resume_after: newestMessageId() }));
  });

  document.addEventListener("htmx:wsClose", function (evt) {
    var code = evt.detail.event.code;
    if (code === 1008) {
      setStatus("You have been logged out. Reload the page to log in again.");
    } else if (code === 1009) {
      setStatus("That message was too large to send. Reload the page to reconnect.");
    } else if (code === 1012) {
      setStatus("The server is restarting. Reconnecting…");
    } else {
      setStatus("Connection lost. Reconnecting…");
      failedOpens += 1;
      if (failedOpens >= 3) checkSession();
    }
  });

  // A refused upgrade looks like a network error (1006); ask the server whether we are
  // still logged in before retrying forever.
  function checkSession() {
    fetch("/", { redirect: "manual", credentials: "same-origin" }).then(function (res) {
      if (res.type === "opaqueredirect" || res.status === 303 || res.status === 401) {
        location.href = "/login?next=" + encodeURIComponent(location.pathname);
      }
    }).catch(function () {});
  }

  document.addEventListener("htmx:wsConfigSend", function (evt) {
    var params = evt.detail.parameters;
    var id = randomId();
    params.client_id = id;
    pending[id] = params.body;
    var box = composer();
    if (box) {
      box.value = "";
      box.focus();
      sessionStorage.removeItem(draftKey());
      syncComposer();
    }
  });

  document.addEventListener("htmx:wsAfterMessage", function () {
    var list = messages();
    var stick = list && nearBottom(list);
    localizeTimes(list);
    for (var id in pending) {
      if (document.querySelector("[data-client-id='" + id + "']#composer-error")) {
        // Not stored: give the text back, unless something new was typed meanwhile.
        var box = composer();
        if (box && box.value.trim() === "") {
          box.value = pending[id];
          syncComposer();
        }
        delete pending[id];
      } else if (list && list.querySelector(".msg[data-client-id='" + id + "']")) {
        delete pending[id];
      }
    }
    if (stick) scrollToBottom();
  });

  document.addEventListener("htmx:afterSwap", function () { localizeTimes(); });

  document.addEventListener("keydown", function (evt) {
    var box = composer();
    if (evt.target !== box || evt.key !== "Enter" || evt.shiftKey || evt.isComposing) return;
    evt.preventDefault();
    if (box.value.trim() !== "") box.form.requestSubmit();
  });

  document.addEventListener("input", function (evt) {
    if (evt.target !== composer()) return;
    sessionStorage.setItem(draftKey(), evt.target.value);
    syncComposer();
  });

  function setupSidebar() {
    var app = document.getElementById("app");
    var toggle = document.getElementById("sidebar-toggle");
    if (!app || !toggle) return;
    function apply(collapsed) {
      app.classList.toggle("sidebar-collapsed", collapsed);
      toggle.setAttribute("aria-expanded", String(!collapsed));
    }
    apply(localStorage.getItem("sidebar-collapsed") === "1");
    toggle.addEventListener("click", function () {
      var collapsed = !app.classList.contains("sidebar-collapsed");
      localStorage.setItem("sidebar-collapsed", collapsed ? "1" : "0");
      apply(collapsed);
    });
  }

  function start() {
    localizeTimes();
    setupSidebar();
    var box = composer();
    if (box) {
      var draft = sessionStorage.getItem(draftKey());
      if (draft && box.value === "") box.value = draft;
      syncComposer();
      box.focus();
    }
    scrollToBottom();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
