// What only matters once someone acts, loaded after the first paint (see main.js): the
// message toolbar, attachments, @mention suggestions, the first-message forms, menus and
// copy buttons. Each module registers its own listeners as it evaluates.

import { messages } from "../page.js";
import "./mentions.js";
import "./first-message.js";
import "./menus.js";
import "./copy.js";
import { setupToolbar } from "./actions.js";
import { setupAttachments } from "./uploads.js";

var list = messages();
if (list) setupToolbar(list);
setupAttachments();
