// The sidebar and the tab title: the current room, unread counts and mentions, muted rooms,
// a renamed room, and the sidebar and drawer toggles.

import { $, composer, currentRoom, messageId, messages, newestMessageId, viewerLogin } from "./page.js";

// Unread counts only people's and bots' messages, in rooms the viewer is a member of: the
// server gives each room's count of those (data-counted) and the viewer's marks.
var reads = {}; // room slug -> newest message id seen, for rooms the viewer is a member of
var readCounts = {}; // room slug -> the room's data-counted as of that mark
var muted = {}; // room slug -> true
var left = {}; // room slug -> true: rooms the viewer left, out of the sidebar
var unseenHere = 0; // messages that arrived in this room while the tab was hidden
var hiddenUnread = 0; // unread in rooms past the sidebar's newest, as the page was rendered

// Messages up to `newest` arrived in the open room; a hidden tab counts them as unseen.
export function readUpTo(room, newest) {
  var seen = reads[room] || 0;
  if (newest <= seen) return;
  if (document.hidden) unseenHere += countedAfter(seen);
  reads[room] = newest;
}

// People's and bots' messages in the open room after id `seen`; system lines don't count.
function countedAfter(seen) {
  var list = messages();
  var all = list ? list.querySelectorAll(".msg[data-kind='user']") : [];
  var count = 0;
  for (var i = all.length - 1; i >= 0 && messageId(all[i]) > seen; i--) count++;
  return count;
}

document.addEventListener("visibilitychange", function () {
  if (!document.hidden) {
    unseenHere = 0;
    markSidebar();
  }
});

// ---- sidebar: current room, unread counts, title --------------------------------------

// The sidebar of any page: its toggles, and the viewer's own marks on the shared list.
export function startSidebar() {
  // The server groups the sidebar by day in this time zone from the next page on.
  document.cookie = "tz=" + (-new Date().getTimezoneOffset()) + "; path=/; max-age=31536000; SameSite=Lax";
  setupSidebar();
  readSidebarMarks();
  markSidebar();
}

function readSidebarMarks() {
  var links = document.querySelectorAll(".room-list a[data-slug]");
  for (var i = 0; i < links.length; i++) {
    var slug = links[i].getAttribute("data-slug");
    if (links[i].hasAttribute("data-read")) {
      reads[slug] = parseInt(links[i].getAttribute("data-read"), 10) || 0;
      readCounts[slug] = parseInt(links[i].getAttribute("data-read-count"), 10) || 0;
    }
    if (links[i].hasAttribute("data-muted")) muted[slug] = true;
  }
  var room = currentRoom();
  if (room) reads[room] = Math.max(reads[room] || 0, newestMessageId());
  var sidebar = $("sidebar");
  var gone = sidebar ? (sidebar.getAttribute("data-left") || "").split(" ") : [];
  for (var j = 0; j < gone.length; j++) if (gone[j]) left[gone[j]] = true;
  // The server counts the rooms it doesn't list; live copies of the list leave it out.
  var more = document.querySelector(".more-rooms a[data-hidden-unread]");
  if (more) hiddenUnread = parseInt(more.getAttribute("data-hidden-unread"), 10) || 0;
}

// The newest message in a sidebar room that mentions the viewer (0 for none).
function mentionedAt(link) {
  var key = viewerLogin();
  var marks = (link.getAttribute("data-mentions") || "").split(" ");
  for (var i = 0; key && i < marks.length; i++) {
    var at = marks[i].lastIndexOf(":");
    if (marks[i].slice(0, at) === key) return parseInt(marks[i].slice(at + 1), 10) || 0;
  }
  return 0;
}

// The live room list is the same for everyone; this applies what is the viewer's own.
export function markSidebar() {
  var links = document.querySelectorAll(".room-list a[data-slug]");
  var room = currentRoom();
  var total = 0;
  for (var i = 0; i < links.length; i++) {
    var link = links[i];
    var slug = link.getAttribute("data-slug");
    var counted = parseInt(link.getAttribute("data-counted"), 10) || 0;
    // Both people of a direct conversation are its members from its first message.
    if (!(slug in reads) && link.closest("#dm-list")) {
      reads[slug] = 0;
      readCounts[slug] = 0;
    }
    if (slug === room) readCounts[slug] = counted;
    var gone = !!left[slug] && slug !== room;
    link.parentNode.hidden = gone;
    var member = slug in reads && !gone;
    var unread = slug === room || !member ? 0 : Math.max(0, counted - readCounts[slug]);
    if (slug === room) {
      link.setAttribute("aria-current", "page");
    } else {
      link.removeAttribute("aria-current");
    }
    if (muted[slug]) link.setAttribute("data-muted", "");
    var badge = link.querySelector(".badge");
    // A muted room is quiet by choice: no count.
    if (badge) badge.textContent = unread > 0 && !muted[slug] ? String(unread) : "";
    link.classList.toggle("unread", unread > 0 && !muted[slug]);
    // Being named counts in any room, member or not.
    link.classList.toggle("mentioned", slug !== room && !gone && mentionedAt(link) > (reads[slug] || 0));
    if (!muted[slug]) total += unread;
  }
  // A live list still holds the rooms the viewer left: a group of only those goes too.
  var groups = document.querySelectorAll("#room-list .room-group");
  for (var k = 0; k < groups.length; k++) groups[k].hidden = !groups[k].querySelector("li:not([hidden])");
  total += unseenHere + hiddenUnread;
  var title = document.title.replace(/^\(\d+\) /, "");
  document.title = total > 0 ? "(" + total + ") " + title : title;
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
  if (app && drawer) setupDrawer(app, drawer);
  setupPeople();
}

// On a phone the sidebar is a drawer over the page: its own button, Escape, or a tap
// anywhere beside it closes it.
function setupDrawer(app, drawer) {
  var sidebar = $("sidebar");
  var setOpen = function (open) {
    app.classList.toggle("drawer-open", open);
    drawer.setAttribute("aria-expanded", String(open));
  };
  var close = function () {
    setOpen(false);
    drawer.focus();
  };
  drawer.addEventListener("click", function () {
    var open = !app.classList.contains("drawer-open");
    setOpen(open);
    var first = open && sidebar.querySelector("a[href]");
    if (first) first.focus();
  });
  var closeButton = $("drawer-close");
  if (closeButton) closeButton.addEventListener("click", close);
  // The backdrop is the app's ::after, so a tap on it is a click on the app itself.
  app.addEventListener("click", function (evt) {
    if (app.classList.contains("drawer-open") && !sidebar.contains(evt.target)) {
      evt.preventDefault();
      evt.stopPropagation();
      close();
    }
  }, true);
  document.addEventListener("keydown", function (evt) {
    if (evt.key === "Escape" && app.classList.contains("drawer-open")) close();
  });
}

// Narrow screens hide who is here; the header's people button shows them over the messages.
function setupPeople() {
  var room = document.querySelector("main.room");
  var toggle = $("people-toggle");
  if (!room || !toggle) return;
  var setOpen = function (open) {
    room.classList.toggle("people-open", open);
    toggle.setAttribute("aria-expanded", String(open));
  };
  toggle.addEventListener("click", function () {
    setOpen(!room.classList.contains("people-open"));
  });
  document.addEventListener("click", function (evt) {
    if (room.classList.contains("people-open") && !toggle.contains(evt.target) &&
        !evt.target.closest("#presence")) setOpen(false);
  });
  document.addEventListener("keydown", function (evt) {
    if (evt.key === "Escape" && room.classList.contains("people-open")) {
      setOpen(false);
      toggle.focus();
    }
  });
}
