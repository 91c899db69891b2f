// The page script's shared lookups: what every other module asks of the page. No state.

export function $(id) { return document.getElementById(id); }
export function messages() { return $("messages"); }
export function composer() { return $("composer-body"); }
export function currentRoom() {
  var room = document.querySelector("main.room");
  return room ? room.getAttribute("data-room") : null;
}
export function viewer() { return document.body.getAttribute("data-viewer"); }
export function viewerKey() { return document.body.getAttribute("data-viewer-key"); }

export function messageId(el) { return parseInt(el.id.slice(4), 10) || 0; }

export function newestMessageId() {
  var list = messages();
  if (!list) return 0;
  var all = list.querySelectorAll(".msg[id^='msg-']");
  return all.length ? messageId(all[all.length - 1]) : 0;
}
