// The page script's shared lookups: what every other module asks of the page. No state.

export function $(id) { return document.getElementById(id); }
export function messages() { return $("messages"); }
export function composer() { return $("composer-body"); }
export function currentRoom() {
  var room = document.querySelector("main.room");
  return room ? room.getAttribute("data-room") : null;
}
// The viewer's login handle: "own" messages are the ones whose data-login is this, not the
// ones under the same name (a later holder of a nickname is someone else).
export function viewerLogin() { return document.body.getAttribute("data-viewer-login"); }
export function isOwn(msg) { return !!msg.getAttribute("data-login") && msg.getAttribute("data-login") === viewerLogin(); }

export function messageId(el) { return parseInt(el.id.slice(4), 10) || 0; }

export function newestMessageId() {
  var list = messages();
  if (!list) return 0;
  var all = list.querySelectorAll(".msg[id^='msg-']");
  return all.length ? messageId(all[all.length - 1]) : 0;
}
