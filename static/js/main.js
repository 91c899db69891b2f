// The pages' small script (search has its own entry, search.js). The server renders
// everything; this only does what must happen in the browser: resume after reconnects,
// client ids for resends, the composer, local times, unread counts, scrolling, typing and
// the sidebar toggle. This entry module imports the others (each evaluates once, registering
// its own listeners) and sets the page up before its first paint; what only matters once
// someone acts (after-paint/) comes after.

import "./socket.js";
import { restoreDraft } from "./composer.js";
import { setupNotifications } from "./notifications.js";
import { groupMessages, scrollToStart, setupScrolling } from "./messages.js";
import { localizeTimes } from "./times.js";
import { startSidebar } from "./sidebar.js";
import { markOwnPresence } from "./presence.js";

function start() {
  localizeTimes();
  groupMessages();
  startSidebar();
  markOwnPresence();
  setupScrolling();
  setupNotifications();
  // Measuring the page (the composer's height, the scroll position) forces a layout; in the
  // frame's own rendering step it is the layout the first paint needs anyway, not a second
  // one inside this script's task.
  requestAnimationFrame(function () {
    restoreDraft();
    scrollToStart();
    setTimeout(function () { import("./after-paint/start.js"); });
  });
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
