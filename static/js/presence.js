// "Here now": the list is the same for everyone, so the viewer's own name arrives as a link
// to a conversation with themselves; it becomes plain text (the page's own style marks it "(you)").

import { $ } from "./page.js";

export function markOwnPresence() {
  var me = document.body.getAttribute("data-viewer");
  var list = $("presence");
  if (!me || !list) return;
  var items = list.querySelectorAll("li[data-author]");
  for (var i = 0; i < items.length; i++) {
    var link = items[i].querySelector("a");
    if (items[i].getAttribute("data-author") !== me || !link) continue;
    var name = document.createElement("span");
    name.textContent = me;
    items[i].replaceChild(name, link);
  }
}

document.addEventListener("htmx:oobAfterSwap", function (evt) {
  if (evt.detail.target && evt.detail.target.id === "presence") markOwnPresence();
});
