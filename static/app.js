// The page's small script. The server renders everything; this only does what must happen
// in the browser: resume after reconnects, client ids for resends, the composer, attaching
// files, local times, unread counts, scrolling, typing, the message toolbar, and the sidebar
// toggle.
(function () {
  "use strict";

  var TYPING_EVERY_MS = 2000;
  var GROUP_WITHIN_MS = 5 * 60 * 1000;

  var socket = null; // htmx-ext-ws's wrapper, once open
  var failedOpens = 0;
  var lastTypingSent = 0;
  var pending = {}; // client_id -> text, until the server echoes the message back
  var reads = {}; // room slug -> newest message id seen
  var muted = {}; // room slug -> true
  var unseenHere = 0; // messages that arrived in this room while the tab was hidden

  function $(id) { return document.getElementById(id); }
  function messages() { return $("messages"); }
  function composer() { return $("composer-body"); }
  function currentRoom() {
    var room = document.querySelector("main.room");
    return room ? room.getAttribute("data-room") : null;
  }
  function draftKey() { return "draft:" + currentRoom(); }
  function viewer() { return document.body.getAttribute("data-viewer"); }
  function viewerKey() { return document.body.getAttribute("data-viewer-key"); }

  function messageId(el) { return parseInt(el.id.slice(4), 10) || 0; }

  function newestMessageId() {
    var list = messages();
    if (!list) return 0;
    var all = list.querySelectorAll(".msg[id^='msg-']");
    return all.length ? messageId(all[all.length - 1]) : 0;
  }

  // The room revision this page has seen: the server sends the message changes after it.
  function roomRevision() {
    var marker = $("room-revision");
    var revision = marker ? Number(marker.dataset.revision) : NaN;
    return Number.isSafeInteger(revision) ? revision : null;
  }

  function randomId() {
    var bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  // ---- connection state ----------------------------------------------------------------

  function showBanner(text) {
    var banner = $("connection");
    if (!banner) return;
    banner.textContent = text;
    banner.hidden = !text;
  }

  document.addEventListener("htmx:wsOpen", function (evt) {
    socket = evt.detail.socketWrapper;
    failedOpens = 0;
    showBanner("");
    if (currentRoom()) {
      // Sent before htmx-ext-ws flushes what was typed while disconnected.
      socket.send(JSON.stringify({ resume_after: newestMessageId(), revision: roomRevision() }));
    }
  });

  document.addEventListener("htmx:wsClose", function (evt) {
    socket = null;
    var code = evt.detail.event.code;
    if (code === 1008 && evt.detail.event.reason === "removed by an admin") {
      showBanner("An admin removed you from the chat. Taking you to the login page…");
      setTimeout(function () { location.href = "/login"; }, 4000);
    } else if (code === 1008) {
      showBanner("You have been logged out. Reload the page to log in again.");
    } else if (code === 1009) {
      showBanner("That message was too large to send. Reload the page to reconnect.");
    } else {
      showBanner(code === 1012 ? "The server is restarting. Reconnecting…" : "Reconnecting…");
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

  // A page kept in the back/forward cache would hold its socket open and keep its author
  // "present": close it on the way out, and reload if the page is ever shown again.
  var rawSocket = null;
  if (window.htmx && htmx.createWebSocket) {
    var createWebSocket = htmx.createWebSocket;
    htmx.createWebSocket = function (url) {
      rawSocket = createWebSocket(url);
      return rawSocket;
    };
  }
  window.addEventListener("pagehide", function () {
    if (rawSocket) rawSocket.close(1000, "page hidden");
  });
  window.addEventListener("pageshow", function (evt) {
    if (evt.persisted) location.reload();
  });

  // ---- sending -------------------------------------------------------------------------

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
    setReply(null);
    closeSuggestions();
    var shown = $("composer-error");
    if (shown && shown.getAttribute("data-error") === "action") {
      shown.textContent = "";
      shown.removeAttribute("data-error");
    }
    lastTypingSent = 0;
  });

  function syncComposer() {
    var box = composer();
    if (!box) return;
    var send = document.querySelector("#composer button[type=submit]");
    if (send) send.disabled = box.value.trim() === "";
    box.style.height = "auto";
    box.style.height = Math.min(box.scrollHeight, 200) + "px";
    box.style.overflowY = box.scrollHeight > 200 ? "auto" : "hidden";
  }

  document.addEventListener("keydown", function (evt) {
    var box = composer();
    if (evt.target === box && suggestionKey(evt)) return;
    if (evt.target !== box || evt.key !== "Enter" || evt.shiftKey || evt.isComposing) return;
    evt.preventDefault();
    if (box.value.trim() !== "") box.form.requestSubmit();
  });

  document.addEventListener("input", function (evt) {
    if (evt.target !== composer()) return;
    sessionStorage.setItem(draftKey(), evt.target.value);
    syncComposer();
    suggestMentions(evt.target);
    var now = Date.now();
    if (socket && evt.target.value.trim() !== "" && now - lastTypingSent > TYPING_EVERY_MS) {
      lastTypingSent = now;
      socket.send(JSON.stringify({ typing: true }));
    }
  });

  // ---- @mentions: suggestions while typing, notifications when mentioned ----------------

  var MENTION_BEFORE_CARET = /(^|[^\p{L}\p{N}_.\-@])@([\p{L}\p{N}_.\-]{0,32})$/u;
  var askedFor = null; // the prefix the shown suggestions are for

  function suggestions() { return $("mention-suggestions"); }

  function typedMention(box) {
    var match = MENTION_BEFORE_CARET.exec(box.value.slice(0, box.selectionStart));
    return match ? match[2] : null;
  }

  function suggestMentions(box) {
    var prefix = typedMention(box);
    if (prefix === null) {
      closeSuggestions();
    } else if (prefix !== askedFor) {
      askedFor = prefix;
      htmx.ajax("GET", "/rooms/" + currentRoom() + "/mentions?q=" + encodeURIComponent(prefix),
        { target: "#mention-suggestions", swap: "outerHTML" });
    }
  }

  function closeSuggestions() {
    var list = suggestions();
    if (list) list.hidden = true;
    askedFor = null;
  }

  function acceptSuggestion(option) {
    var box = composer();
    var prefix = typedMention(box);
    if (!option || prefix === null) return closeSuggestions();
    var caret = box.selectionStart;
    var start = caret - prefix.length;
    var name = option.getAttribute("data-nickname");
    box.value = box.value.slice(0, start) + name + " " + box.value.slice(caret);
    box.selectionStart = box.selectionEnd = start + name.length + 1;
    closeSuggestions();
    syncComposer();
    box.focus();
  }

  // Arrow keys move through open suggestions, Enter or Tab takes one, Escape closes them.
  function suggestionKey(evt) {
    var list = suggestions();
    if (!list || list.hidden) return false;
    var options = list.querySelectorAll("li");
    var current = list.querySelector("li[aria-selected='true']");
    var at = Array.prototype.indexOf.call(options, current);
    if (evt.key === "ArrowDown" || evt.key === "ArrowUp") {
      var next = options[(at + (evt.key === "ArrowDown" ? 1 : options.length - 1)) % options.length];
      if (current) current.removeAttribute("aria-selected");
      next.setAttribute("aria-selected", "true");
    } else if ((evt.key === "Enter" || evt.key === "Tab") && !evt.shiftKey) {
      acceptSuggestion(current || options[0]);
    } else if (evt.key === "Escape") {
      closeSuggestions();
    } else {
      return false;
    }
    evt.preventDefault();
    return true;
  }

  document.addEventListener("mousedown", function (evt) {
    var option = evt.target.closest ? evt.target.closest("#mention-suggestions li") : null;
    if (option) {
      evt.preventDefault(); // keep the composer focused
      acceptSuggestion(option);
    }
  });

  var notifiedUpTo = 0; // newest message id already considered for a notification

  function notifyMentions() {
    var key = viewerKey();
    var list = messages();
    if (!key || !list) return;
    var mentioned = list.querySelectorAll(".msg[data-mentions]");
    for (var i = 0; i < mentioned.length; i++) {
      var msg = mentioned[i];
      var id = messageId(msg);
      var names = msg.getAttribute("data-mentions").split(" ");
      if (id <= notifiedUpTo || names.indexOf(key) < 0 || msg.getAttribute("data-author") === viewer()) continue;
      if (document.hidden && window.Notification && Notification.permission === "granted") {
        var body = msg.querySelector(".msg-body");
        var note = new Notification(msg.getAttribute("data-author") + " mentioned you", {
          body: body ? body.textContent.slice(0, 140) : "",
          tag: currentRoom() + "/" + id,
        });
        note.onclick = function () { window.focus(); };
      }
    }
    notifiedUpTo = Math.max(notifiedUpTo, newestMessageId());
  }

  function setupNotifications() {
    var toggle = $("notify-toggle");
    if (!toggle || !window.Notification) return;
    var sync = function () { toggle.hidden = Notification.permission !== "default"; };
    sync();
    toggle.addEventListener("click", function () {
      Notification.requestPermission().then(sync);
    });
  }

  // ---- incoming messages ---------------------------------------------------------------

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

  // Consecutive messages by one author within a few minutes share one header.
  function groupMessages() {
    var list = messages();
    if (!list) return;
    var all = list.querySelectorAll(".msg");
    var previous = null;
    for (var i = 0; i < all.length; i++) {
      var msg = all[i];
      var grouped = false;
      if (previous && msg.getAttribute("data-kind") === "user" &&
          previous.getAttribute("data-kind") === "user" &&
          previous.nextElementSibling === msg &&
          previous.getAttribute("data-author") === msg.getAttribute("data-author")) {
        var a = new Date(previous.querySelector("time").getAttribute("datetime"));
        var b = new Date(msg.querySelector("time").getAttribute("datetime"));
        grouped = b - a < GROUP_WITHIN_MS;
      }
      msg.classList.toggle("grouped", grouped);
      previous = msg;
    }
  }

  function nearBottom(list) {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  function scrollToBottom() {
    var list = messages();
    if (list) list.scrollTop = list.scrollHeight;
    var pill = $("new-messages");
    if (pill) pill.hidden = true;
  }

  var stickToBottom = true;

  document.addEventListener("htmx:wsBeforeMessage", function () {
    var list = messages();
    stickToBottom = !list || nearBottom(list);
  });

  document.addEventListener("htmx:wsAfterMessage", function () {
    var list = messages();
    localizeTimes(list);
    groupMessages();
    for (var id in pending) {
      if (document.querySelector("#composer-error[data-client-id='" + id + "']")) {
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
    notifyMentions();
    var room = currentRoom();
    if (room && list) {
      var newest = newestMessageId();
      if (newest > (reads[room] || 0)) {
        if (document.hidden) unseenHere += newest - (reads[room] || 0);
        reads[room] = newest;
      }
      if (stickToBottom) {
        scrollToBottom();
      } else if ($("new-messages")) {
        $("new-messages").hidden = false;
      }
    }
    markSidebar();
  });

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      unseenHere = 0;
      markSidebar();
    }
  });

  // ---- sidebar: current room, unread counts, title --------------------------------------

  function readSidebarMarks() {
    var links = document.querySelectorAll(".room-list a[data-slug]");
    for (var i = 0; i < links.length; i++) {
      var slug = links[i].getAttribute("data-slug");
      if (links[i].hasAttribute("data-read")) {
        reads[slug] = parseInt(links[i].getAttribute("data-read"), 10) || 0;
      }
      if (links[i].hasAttribute("data-muted")) muted[slug] = true;
    }
    var room = currentRoom();
    if (room) reads[room] = Math.max(reads[room] || 0, newestMessageId());
  }

  // The newest message in a sidebar room that mentions the viewer (0 for none).
  function mentionedAt(link) {
    var key = viewerKey();
    var marks = (link.getAttribute("data-mentions") || "").split(" ");
    for (var i = 0; key && i < marks.length; i++) {
      var at = marks[i].lastIndexOf(":");
      if (marks[i].slice(0, at) === key) return parseInt(marks[i].slice(at + 1), 10) || 0;
    }
    return 0;
  }

  // The live room list is the same for everyone; this applies what is the viewer's own.
  function markSidebar() {
    var links = document.querySelectorAll(".room-list a[data-slug]");
    var room = currentRoom();
    var total = 0;
    for (var i = 0; i < links.length; i++) {
      var link = links[i];
      var slug = link.getAttribute("data-slug");
      var newest = parseInt(link.getAttribute("data-last-id"), 10) || 0;
      if (!(slug in reads)) reads[slug] = 0;
      var unread = slug === room ? 0 : Math.max(0, newest - reads[slug]);
      if (slug === room) {
        link.setAttribute("aria-current", "page");
      } else {
        link.removeAttribute("aria-current");
      }
      if (muted[slug]) link.setAttribute("data-muted", "");
      var badge = link.querySelector(".badge");
      if (badge) badge.textContent = unread > 0 ? String(unread) : "";
      link.classList.toggle("unread", unread > 0 && !muted[slug]);
      link.classList.toggle("mentioned", unread > 0 && mentionedAt(link) > reads[slug]);
      if (!muted[slug]) total += unread;
    }
    total += unseenHere;
    var title = document.title.replace(/^\(\d+\) /, "");
    document.title = total > 0 ? "(" + total + ") " + title : title;
  }

  // ---- message toolbar: react, reply, copy link, edit, delete ---------------------------

  var toolbarFor = null; // the message the toolbar is showing actions for

  function messageUrl(msg) {
    return "/rooms/" + currentRoom() + "/messages/" + messageId(msg);
  }

  function actionable(el) {
    var msg = el && el.closest ? el.closest(".msg[data-kind='user']") : null;
    return msg && !msg.classList.contains("deleted") && !msg.classList.contains("editing") ? msg : null;
  }

  function showToolbar(msg) {
    var toolbar = $("msg-toolbar");
    if (!toolbar || !msg) return;
    toolbarFor = msg;
    var pane = toolbar.parentNode.getBoundingClientRect();
    var at = msg.getBoundingClientRect();
    toolbar.style.top = Math.max(0, at.top - pane.top - 14) + "px";
    toolbar.classList.toggle("own", msg.getAttribute("data-author") === viewer());
    toolbar.hidden = false;
  }

  function hideToolbar() {
    var toolbar = $("msg-toolbar");
    if (!toolbar) return;
    toolbar.hidden = true;
    var menu = toolbar.querySelector("details");
    if (menu) menu.open = false;
    toolbarFor = null;
  }

  function toast(text) {
    var box = $("toast");
    if (!box) return;
    box.textContent = text;
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { box.hidden = true; }, 2000);
  }

  function setReply(msg) {
    var bar = $("reply-bar");
    var field = $("reply-to");
    if (!bar || !field) return;
    if (!msg) {
      bar.hidden = true;
      field.value = "";
      return;
    }
    field.value = String(messageId(msg));
    $("reply-author").textContent = msg.getAttribute("data-author");
    var body = msg.querySelector(".msg-body");
    var file = msg.querySelector(".attachment .file-name");
    var text = body ? body.textContent : "";
    if (!text.trim() && file) text = "📎 " + file.textContent;
    $("reply-excerpt").textContent = text.slice(0, 120);
    bar.hidden = false;
    var box = composer();
    if (box) box.focus();
  }

  function copyLink(msg) {
    var url = location.origin + messageUrl(msg) + "#" + msg.id;
    var done = function () { toast("Link copied"); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(url).then(done, function () { window.prompt("Copy this link:", url); });
    } else {
      window.prompt("Copy this link:", url);
    }
  }

  function act(action, msg, emoji) {
    var target = "#" + msg.id;
    if (action === "react") {
      htmx.ajax("POST", messageUrl(msg) + "/reactions", { target: target, swap: "outerHTML", values: { emoji: emoji } });
    } else if (action === "reply") {
      setReply(msg);
    } else if (action === "copy-link") {
      copyLink(msg);
    } else if (action === "edit") {
      htmx.ajax("GET", messageUrl(msg) + "/edit", { target: target, swap: "outerHTML" });
    } else if (action === "delete" && window.confirm(msg.getAttribute("data-author") === viewer()
        ? "Delete this message? It will show as deleted for everyone."
        : "Delete " + msg.getAttribute("data-author") + "’s message as an admin? It will show as deleted, and the room will see that you did it.")) {
      htmx.ajax("DELETE", messageUrl(msg), { target: target, swap: "outerHTML" });
    }
    hideToolbar();
  }

  function setupToolbar(list) {
    var toolbar = $("msg-toolbar");
    if (!toolbar) return;
    list.addEventListener("mouseover", function (evt) {
      var msg = actionable(evt.target);
      if (msg && msg !== toolbarFor) showToolbar(msg);
    });
    list.addEventListener("focusin", function (evt) { showToolbar(actionable(evt.target)); });
    list.addEventListener("scroll", hideToolbar);
    toolbar.addEventListener("click", function (evt) {
      var button = evt.target.closest("button");
      if (!button || !toolbarFor) return;
      if (button.hasAttribute("data-react")) {
        act("react", toolbarFor, button.getAttribute("data-react"));
      } else if (button.hasAttribute("data-action")) {
        act(button.getAttribute("data-action"), toolbarFor);
      }
    });
    var cancel = $("reply-cancel");
    if (cancel) cancel.addEventListener("click", function () { setReply(null); });
  }

  // Enter saves an edit, Escape cancels it (or a reply being composed).
  document.addEventListener("keydown", function (evt) {
    var form = evt.target.closest ? evt.target.closest(".edit-form") : null;
    if (form && evt.key === "Enter" && !evt.shiftKey && !evt.isComposing) {
      evt.preventDefault();
      form.requestSubmit();
    } else if (form && evt.key === "Escape") {
      form.querySelector("button[type=button]").click();
    } else if (evt.key === "Escape" && evt.target === composer()) {
      setReply(null);
    }
  });

  document.addEventListener("htmx:afterSwap", function () {
    var list = messages();
    if (!list) return;
    localizeTimes(list);
    groupMessages();
  });

  document.addEventListener("htmx:load", function (evt) {
    var editing = evt.detail.elt.matches && evt.detail.elt.matches(".msg.editing")
      ? evt.detail.elt.querySelector("textarea") : null;
    if (editing) {
      editing.focus();
      editing.setSelectionRange(editing.value.length, editing.value.length);
    }
  });

  // Refusals from message actions (not the author, gone, too fast) shown where errors go.
  document.addEventListener("htmx:responseError", function (evt) {
    var status = evt.detail.xhr.status;
    var text = status === 403 && /archived/.test(evt.detail.xhr.responseText)
        ? "This room is archived: nothing in it can change."
      : status === 403 ? "Only the person who wrote a message can edit or delete it."
      : status === 404 ? "That message no longer exists."
      : status === 422 || status === 429 ? evt.detail.xhr.responseText
      : "That did not work. Please try again.";
    var box = $("composer-error");
    if (box && box.offsetParent === null) {
      // The composer is hidden (an archived room): say it where it can be seen.
      toast(text);
    } else if (box) {
      box.textContent = text;
      box.setAttribute("data-error", "action");
    }
  });

  // ---- attachments: the paperclip, drag and drop, paste --------------------------------

  // The upload form sits outside the composer (forms don't nest); the file input inside the
  // composer belongs to it through its `form` attribute, and htmx posts it on `change`.
  function attachForm() { return $("attach-form"); }
  function attachInput() { return $("attach-file"); }

  function showComposerError(code, text) {
    var box = $("composer-error");
    if (!box) return;
    box.textContent = text;
    box.setAttribute("data-error", code);
  }

  // Hands files to the paperclip's input, which sends them like a picked file.
  function attachFiles(files) {
    var input = attachInput();
    if (!input || !files || !files.length) return;
    var transfer = new DataTransfer();
    Array.prototype.forEach.call(files, function (file) { transfer.items.add(file); });
    input.files = transfer.files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }

  // Before htmx sends: refuse files over the limit here (the server would answer 413 only
  // after receiving them), and carry what is typed as the caption.
  document.addEventListener("change", function (evt) {
    var input = attachInput();
    if (evt.target !== input || !input.files.length) return;
    var form = attachForm();
    var limit = parseInt(form.getAttribute("data-max-upload"), 10) || Infinity;
    var tooLarge = Array.prototype.filter.call(input.files, function (f) { return f.size > limit; });
    if (tooLarge.length) {
      evt.stopPropagation();
      showComposerError("too_large", "“" + tooLarge[0].name + "” is too large: files can be at most " +
        form.getAttribute("data-max-upload-text") + ".");
      input.value = "";
      return;
    }
    var box = composer();
    $("attach-caption").value = box ? box.value : "";
  }, true);

  // A refused upload's error fragment is swapped in like any other; a refusal without one
  // (from a proxy, say) is told in words.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var xhr = evt.detail.xhr;
    if (evt.detail.elt !== attachForm() || xhr.status < 400) return;
    evt.detail.isError = false;
    evt.detail.shouldSwap = xhr.responseText.indexOf('<div id="composer-error"') === 0;
    if (!evt.detail.shouldSwap) {
      showComposerError(xhr.status === 413 ? "too_large" : "store_failed",
        xhr.status === 413 ? "That file is too large to send." : "The upload failed. Please try again.");
    }
  });

  // Once sent, the caption leaves the composer (unless it was changed meanwhile).
  document.addEventListener("htmx:afterRequest", function (evt) {
    if (evt.detail.elt !== attachForm()) return;
    var input = attachInput();
    if (input) input.value = "";
    var caption = $("attach-caption").value;
    $("attach-caption").value = "";
    var box = composer();
    if (evt.detail.successful && box && box.value === caption) {
      box.value = "";
      sessionStorage.removeItem(draftKey());
      syncComposer();
      box.focus();
    } else if (!evt.detail.xhr.status) {
      showComposerError("store_failed", "The upload did not get through. Please try again.");
    }
  });

  function carriesFiles(evt) {
    return evt.dataTransfer && Array.prototype.indexOf.call(evt.dataTransfer.types, "Files") >= 0;
  }

  function setupAttachments() {
    var room = document.querySelector("main.room");
    var form = $("composer");
    if (!room || !form || !attachForm()) return;
    var depth = 0; // dragenter/leave fire for every child crossed
    room.addEventListener("dragenter", function (evt) {
      if (!carriesFiles(evt)) return;
      depth += 1;
      form.classList.add("dropping");
    });
    room.addEventListener("dragleave", function (evt) {
      if (!carriesFiles(evt)) return;
      depth = Math.max(0, depth - 1);
      if (!depth) form.classList.remove("dropping");
    });
    room.addEventListener("dragover", function (evt) {
      if (!carriesFiles(evt)) return;
      evt.preventDefault();
      evt.dataTransfer.dropEffect = "copy";
    });
    room.addEventListener("drop", function (evt) {
      if (!carriesFiles(evt)) return;
      evt.preventDefault();
      depth = 0;
      form.classList.remove("dropping");
      attachFiles(evt.dataTransfer.files);
    });
    var box = composer();
    if (box) {
      box.addEventListener("paste", function (evt) {
        var files = evt.clipboardData && evt.clipboardData.files;
        if (!files || !files.length) return;
        evt.preventDefault();
        attachFiles(files);
      });
    }
  }

  // ---- load older, keeping the reader's place -------------------------------------------

  // The swapped-out link is detached, so its afterSwap events never reach the document:
  // watch the list itself for the older page arriving.
  var fromBottom = null;
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var list = messages();
    if (list && evt.detail.target && evt.detail.target.id === "load-older") {
      fromBottom = list.scrollHeight - list.scrollTop;
    }
  });

  function watchOlderPages(list) {
    new MutationObserver(function () {
      if (fromBottom === null) return;
      // Group first: it changes heights above the reader's place.
      localizeTimes(list);
      groupMessages();
      list.scrollTop = list.scrollHeight - fromBottom;
      fromBottom = null;
    }).observe(list, { childList: true });
  }

  document.addEventListener("htmx:oobAfterSwap", function (evt) {
    var id = evt.detail.target && evt.detail.target.id;
    if (id === "room-list" || id === "dm-list") markSidebar();
    if (id === "room-name") renamed();
  });

  // An admin renamed the room: the tab title and the composer's placeholder follow.
  function renamed() {
    var name = $("room-name");
    if (!name) return;
    var unread = (document.title.match(/^\(\d+\) /) || [""])[0];
    document.title = unread + name.textContent + " · Chat";
    var box = composer();
    if (box) box.placeholder = "Message #" + name.textContent;
  }

  // ---- layout --------------------------------------------------------------------------

  function setupSidebar() {
    var app = $("app");
    var toggle = $("sidebar-toggle");
    if (app && toggle) {
      var apply = function (collapsed) {
        app.classList.toggle("sidebar-collapsed", collapsed);
        toggle.setAttribute("aria-expanded", String(!collapsed));
      };
      apply(localStorage.getItem("sidebar-collapsed") === "1");
      toggle.addEventListener("click", function () {
        var collapsed = !app.classList.contains("sidebar-collapsed");
        localStorage.setItem("sidebar-collapsed", collapsed ? "1" : "0");
        apply(collapsed);
      });
    }
    var drawer = $("drawer-toggle");
    if (app && drawer) {
      drawer.addEventListener("click", function () {
        var open = !app.classList.contains("drawer-open");
        app.classList.toggle("drawer-open", open);
        drawer.setAttribute("aria-expanded", String(open));
      });
      document.addEventListener("keydown", function (evt) {
        if (evt.key === "Escape" && app.classList.contains("drawer-open")) {
          app.classList.remove("drawer-open");
          drawer.setAttribute("aria-expanded", "false");
          drawer.focus();
        }
      });
    }
  }

  function start() {
    // The server groups the sidebar by day in this time zone from the next page on.
    document.cookie = "tz=" + (-new Date().getTimezoneOffset()) + "; path=/; max-age=31536000; SameSite=Lax";
    localizeTimes();
    groupMessages();
    setupSidebar();
    readSidebarMarks();
    markSidebar();
    var box = composer();
    if (box) {
      var draft = sessionStorage.getItem(draftKey());
      if (draft && box.value === "") box.value = draft;
      syncComposer();
      box.focus();
    }
    var pill = $("new-messages");
    if (pill) pill.addEventListener("click", scrollToBottom);
    var list = messages();
    if (list) {
      watchOlderPages(list);
      list.addEventListener("scroll", function () {
        if (nearBottom(list) && pill) pill.hidden = true;
      });
    }
    if (list) setupToolbar(list);
    setupAttachments();
    setupNotifications();
    notifiedUpTo = newestMessageId();
    var focus = list && list.getAttribute("data-focus");
    var focused = focus && $("msg-" + focus);
    var divider = $("unread-divider");
    if (focused) {
      focused.classList.add("focused");
      focused.scrollIntoView({ block: "center" });
    } else if (divider && list) {
      list.scrollTop = Math.max(0, divider.offsetTop - list.offsetTop - 40);
    } else {
      scrollToBottom();
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
