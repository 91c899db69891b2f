// The message list: local times, grouping, what happens when messages arrive, and keeping
// the reader's place (at the bottom, or where they were when an older page loads).

import { $, currentRoom, messages, newestMessageId } from "./page.js";
import { settlePending } from "./composer.js";
import { localizeTimes } from "./times.js";
import { notifyMentions } from "./notifications.js";
import { markSidebar, readUpTo } from "./sidebar.js";

var GROUP_WITHIN_MS = 5 * 60 * 1000;

// ---- incoming messages ---------------------------------------------------------------

// Consecutive messages by one author within a few minutes share one header.
export function groupMessages() {
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
        previous.getAttribute("data-login") === msg.getAttribute("data-login")) {
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
  settlePending(list);
  notifyMentions();
  var room = currentRoom();
  if (room && list) {
    readUpTo(room, newestMessageId());
    if (stickToBottom) {
      scrollToBottom();
    } else if ($("new-messages")) {
      $("new-messages").hidden = false;
    }
  }
  markSidebar();
});

document.addEventListener("htmx:afterSwap", function () {
  var list = messages();
  if (!list) return;
  localizeTimes(list);
  groupMessages();
});

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

// ---- on page load --------------------------------------------------------------------

export function setupScrolling() {
  var pill = $("new-messages");
  if (pill) pill.addEventListener("click", scrollToBottom);
  var list = messages();
  if (list) {
    watchOlderPages(list);
    list.addEventListener("scroll", function () {
      if (nearBottom(list) && pill) pill.hidden = true;
    });
  }
}

// Opens on the linked message, else on the first unread one, else at the bottom.
export function scrollToStart() {
  var list = messages();
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
