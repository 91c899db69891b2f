// The composer: a client id for every send (kept until the server echoes it, so a refused
// text can be given back), Enter to send, the draft kept per room, typing pings, the message
// being replied to, and the error line. Mentions, uploads and message actions build on it.

import { $, composer, currentRoom, messageId, messages } from "./page.js";
import { currentSocket, isOpen, restartSocket, sendFrame } from "./socket.js";

var TYPING_EVERY_MS = 2000;
// A send the server has not answered by then went into a socket that may be dead without
// knowing it (a laptop that slept, a network that drops packets): TCP could take minutes
// to say so.
var ANSWER_WITHIN_MS = 5000;

var lastTypingSent = 0;
// client_id -> { text, frame: the JSON sent, socket: the raw socket that took it }, until the
// server echoes the message back.
var pending = {};
// The last send the server refused: sent again unchanged, it keeps its client_id, so a
// message the database stored after all (its answer was lost) is stored once.
var refused = null; // { text, id }

function draftKey() { return "draft:" + currentRoom(); }

function randomId() {
  var bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return Array.prototype.map.call(bytes, function (b) {
    return ("0" + b.toString(16)).slice(-2);
  }).join("");
}

document.addEventListener("htmx:wsConfigSend", function (evt) {
  var params = evt.detail.parameters;
  var id = refused && refused.text === params.body ? refused.id : randomId();
  refused = null;
  params.client_id = id;
  pending[id] = { text: params.body, frame: null, socket: null };
  // htmx-ext-ws keeps it until the socket opens again: until then it shows as sending.
  if (!isOpen()) showSending(id);
  clear();
  setReply(null);
  var shown = $("composer-error");
  if (shown && shown.getAttribute("data-error") === "action") {
    shown.textContent = "";
    shown.removeAttribute("data-error");
  }
  lastTypingSent = 0;
});

// A send not delivered yet while the socket is down: shown at the end of the list, marked,
// until the server echoes it (or refuses it and its text goes back in the composer).
function showSending(id) {
  var list = messages();
  if (!list || !(id in pending) || list.querySelector("[data-sending='" + id + "']")) return;
  var item = document.createElement("article");
  item.className = "msg sending";
  item.setAttribute("data-kind", "sending");
  item.setAttribute("data-sending", id);
  var body = document.createElement("div");
  body.className = "msg-body";
  body.textContent = pending[id].text;
  var sign = document.createElement("span");
  sign.className = "msg-sending";
  sign.textContent = "Sending…";
  item.append(body, sign);
  list.appendChild(item);
  list.scrollTop = list.scrollHeight;
}

// Sends the socket took but the server had not answered when it closed may be lost with it.
document.addEventListener("htmx:wsClose", function () {
  for (var id in pending) showSending(id);
});

// A send a socket took: unanswered in time, it shows as sending and the socket is replaced.
function expectAnswer(id) {
  var socket = currentSocket();
  pending[id].socket = socket;
  setTimeout(function () {
    if (!(id in pending) || pending[id].socket !== socket) return;
    showSending(id);
    restartSocket();
  }, ANSWER_WITHIN_MS);
}

document.addEventListener("htmx:wsAfterSend", function (evt) {
  var frame;
  try {
    frame = JSON.parse(evt.detail.message);
  } catch (e) {
    return;
  }
  var id = frame && frame.client_id;
  if (!id || !(id in pending)) return;
  pending[id].frame = evt.detail.message;
  expectAnswer(id);
});

// What an earlier socket took and nobody answered goes again on the new one, under the same
// client id: the server stores it once, and answers a copy it already has with that message.
document.addEventListener("htmx:wsOpen", function (evt) {
  for (var id in pending) {
    if (!pending[id].frame || pending[id].socket === currentSocket()) continue;
    evt.detail.socketWrapper.send(pending[id].frame);
    expectAnswer(id);
  }
});

function settled(id) {
  delete pending[id];
  var sending = document.querySelector("[data-sending='" + id + "']");
  if (sending) sending.remove();
}

// Empties the composer once its text has gone out (sent, or taken as an upload's caption).
export function clear() {
  var box = composer();
  if (!box) return;
  box.value = "";
  box.focus();
  sessionStorage.removeItem(draftKey());
  syncComposer();
}

export function showError(code, text) {
  var box = $("composer-error");
  if (!box) return;
  box.textContent = text;
  box.setAttribute("data-error", code);
}

export function setReply(msg) {
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

export function syncComposer() {
  var box = composer();
  if (!box) return;
  var send = document.querySelector("#composer button[type=submit]");
  if (send) send.disabled = box.value.trim() === "";
  box.style.height = "auto";
  box.style.height = Math.min(box.scrollHeight, 200) + "px";
  box.style.overflowY = box.scrollHeight > 200 ? "auto" : "hidden";
}

// A key that the open @mention suggestions took (mentions.js) does not send.
document.addEventListener("keydown", function (evt) {
  var box = composer();
  if (evt.defaultPrevented) return;
  if (evt.target !== box || evt.key !== "Enter" || evt.shiftKey || evt.isComposing) return;
  evt.preventDefault();
  if (box.value.trim() !== "") box.form.requestSubmit();
});

document.addEventListener("input", function (evt) {
  if (evt.target !== composer()) return;
  sessionStorage.setItem(draftKey(), evt.target.value);
  syncComposer();
  var now = Date.now();
  if (isOpen() && evt.target.value.trim() !== "" && now - lastTypingSent > TYPING_EVERY_MS) {
    lastTypingSent = now;
    sendFrame({ typing: true });
  }
});

// Settles the sends the server has answered, once their answer is in the page.
export function settlePending(list) {
  for (var id in pending) {
    if (document.querySelector("#composer-error[data-client-id='" + id + "']")) {
      refused = { text: pending[id].text, id: id };
      // Not stored: give the text back, unless something new was typed meanwhile.
      var box = composer();
      if (box && box.value.trim() === "") {
        box.value = pending[id].text;
        sessionStorage.setItem(draftKey(), box.value);
        syncComposer();
      }
      settled(id);
    } else if (list && list.querySelector(".msg[data-client-id='" + id + "']")) {
      settled(id);
    }
  }
}

export function restoreDraft() {
  var box = composer();
  if (box) {
    var draft = sessionStorage.getItem(draftKey());
    if (draft && box.value === "") box.value = draft;
    syncComposer();
    box.focus();
  }
}
