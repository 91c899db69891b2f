// The page's small script. The server renders everything; this only does what must happen
// in the browser: resume after reconnects, client ids for resends, the composer, attaching
// files, local times, unread counts, scrolling, typing, the message toolbar, the sidebar
// toggle, and copy buttons. This entry module imports the others (each evaluates once,
// registering its own listeners) and sets the page up.

import { messages } from "./page.js";
import "./socket.js";
import { restoreDraft } from "./composer.js";
import "./mentions.js";
import "./first-message.js";
import "./menus.js";
import "./copy.js";
import { setupNotifications } from "./notifications.js";
import { groupMessages, scrollToStart, setupScrolling } from "./messages.js";
import { localizeTimes } from "./times.js";
import { markSidebar, readSidebarMarks, setupSidebar } from "./sidebar.js";
import { markOwnPresence } from "./presence.js";
import { setupToolbar } from "./actions.js";
import { setupAttachments } from "./uploads.js";

function start() {
  // The server groups the sidebar by day in this time zone from the next page on.
  document.cookie = "tz=" + (-new Date().getTimezoneOffset()) + "; path=/; max-age=31536000; SameSite=Lax";
  localizeTimes();
  groupMessages();
  setupSidebar();
  readSidebarMarks();
  markSidebar();
  markOwnPresence();
  restoreDraft();
  setupScrolling();
  var list = messages();
  if (list) setupToolbar(list);
  setupAttachments();
  setupNotifications();
  scrollToStart();
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
