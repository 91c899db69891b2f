// Desktop notifications when someone mentions the viewer while the tab is hidden.

import { $, currentRoom, isOwn, messageId, messages, newestMessageId, viewerLogin } from "./page.js";

var notifiedUpTo = 0; // newest message id already considered for a notification

export function notifyMentions() {
  var key = viewerLogin();
  var list = messages();
  if (!key || !list) return;
  var mentioned = list.querySelectorAll(".msg[data-mentions]");
  for (var i = 0; i < mentioned.length; i++) {
    var msg = mentioned[i];
    var id = messageId(msg);
    var names = msg.getAttribute("data-mentions").split(" ");
    if (id <= notifiedUpTo || names.indexOf(key) < 0 || isOwn(msg)) continue;
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

function setupToggle() {
  var toggle = $("notify-toggle");
  if (!toggle || !window.Notification) return;
  var sync = function () { toggle.hidden = Notification.permission !== "default"; };
  sync();
  toggle.addEventListener("click", function () {
    Notification.requestPermission().then(sync);
  });
}

export function setupNotifications() {
  setupToggle();
  notifiedUpTo = newestMessageId();
}
