// The search page's entry. Its form is an ordinary GET and its sidebar a snapshot (no socket,
// no htmx), so its first paint waits only for the local times and the viewer's sidebar marks.

import { localizeTimes } from "./times.js";
import { startSidebar } from "./sidebar.js";

localizeTimes();
startSidebar();
