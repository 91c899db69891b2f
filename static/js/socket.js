// The room socket and its reconnect banner: resume after every open, say why a closed socket
// stays closed, and check the session when reconnecting keeps failing.

import { $, currentRoom, newestMessageId } from "./page.js";

var socket = null; // htmx-ext-ws's wrapper, once open
var failedOpens = 0;

export function isOpen() { return socket !== null; }
export function sendFrame(frame) { socket.send(JSON.stringify(frame)); }

// The room revision this page has seen: the server sends the message changes after it.
function roomRevision() {
  var marker = $("room-revision");
  var revision = marker ? Number(marker.dataset.revision) : NaN;
  return Number.isSafeInteger(revision) ? revision : null;
}

function showBanner(text) {
  var banner = $("connection");
  if (!banner) return;
  banner.textContent = text;
  banner.hidden = !text;
}

// A socket closed for good: says why, and the composer stops taking what could not be sent
// (its text stays in it).
function stayClosed(text) {
  showBanner(text);
  var form = $("composer");
  if (!form) return;
  var fields = form.querySelectorAll("textarea, button, input");
  for (var i = 0; i < fields.length; i++) fields[i].disabled = true;
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
    stayClosed("An admin removed you from the chat. Taking you to the login page…");
    setTimeout(function () { location.href = "/login"; }, 4000);
  } else if (code === 1008 && evt.detail.event.reason === "left the room") {
    stayClosed("You left this room. Reload the page to join it again.");
  } else if (code === 1008) {
    stayClosed("You have been logged out. Reload the page to log in again.");
  } else if (code === 1009) {
    stayClosed("That message was too large to send. Reload the page to reconnect.");
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

// The browser's own WebSocket under htmx-ext-ws's wrapper: the one sends go out on.
var rawSocket = null;
export function currentSocket() { return rawSocket; }

// Replaces a socket that stopped answering with a fresh one at once. The old one is closed
// quietly: it gets no say in reconnecting (htmx-ext-ws 2.0.4 reconnects from the socket's
// `onclose`, and `reconnect` is its wrapper's), and the messages it may still receive are
// dropped (a closing socket delivers none).
export function restartSocket() {
  if (!socket || !rawSocket) return;
  var wrapper = socket;
  rawSocket.onclose = null;
  rawSocket.onerror = null;
  socket = null;
  showBanner("Reconnecting…");
  wrapper.reconnect();
}

// A page kept in the back/forward cache would hold its socket open and keep its author
// "present": close it on the way out, and reload if the page is ever shown again.
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
