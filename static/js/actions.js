// The message toolbar (react, reply, copy link, edit, delete), editing in place, and the
// refusals of those actions.

import { $, composer, currentRoom, isOwn, messageId } from "./page.js";
import { setReply, showError } from "./composer.js";

var toolbarFor = null; // the message the toolbar is showing actions for

function messageUrl(msg) {
  return "/rooms/" + currentRoom() + "/messages/" + messageId(msg);
}

function actionable(el) {
  var msg = el && el.closest ? el.closest(".msg[data-kind='user']") : null;
  return msg && !msg.classList.contains("deleted") && !msg.classList.contains("editing") ? msg : null;
}

function showToolbar(msg) {
  var toolbar = $("msg-toolbar");
  if (!toolbar || !msg) return;
  toolbarFor = msg;
  var pane = toolbar.parentNode.getBoundingClientRect();
  var at = msg.getBoundingClientRect();
  toolbar.style.top = Math.max(0, at.top - pane.top - 14) + "px";
  toolbar.classList.toggle("own", isOwn(msg));
  toolbar.hidden = false;
}

function hideToolbar() {
  var toolbar = $("msg-toolbar");
  if (!toolbar) return;
  toolbar.hidden = true;
  var menu = toolbar.querySelector("details");
  if (menu) menu.open = false;
  toolbarFor = null;
}

function toast(text) {
  var box = $("toast");
  if (!box) return;
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(function () { box.hidden = true; }, 2000);
}

function copyLink(msg) {
  var url = location.origin + messageUrl(msg) + "#" + msg.id;
  var done = function () { toast("Link copied"); };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(url).then(done, function () { window.prompt("Copy this link:", url); });
  } else {
    window.prompt("Copy this link:", url);
  }
}

function act(action, msg, emoji) {
  var target = "#" + msg.id;
  if (action === "react") {
    htmx.ajax("POST", messageUrl(msg) + "/reactions", { target: target, swap: "outerHTML", values: { emoji: emoji } });
  } else if (action === "reply") {
    setReply(msg);
  } else if (action === "copy-link") {
    copyLink(msg);
  } else if (action === "edit") {
    htmx.ajax("GET", messageUrl(msg) + "/edit", { target: target, swap: "outerHTML" });
  } else if (action === "delete" && window.confirm(isOwn(msg)
      ? "Delete this message? It will show as deleted for everyone."
      : "Delete " + msg.getAttribute("data-author") + "’s message as an admin? It will show as deleted, and the room will see that you did it.")) {
    htmx.ajax("DELETE", messageUrl(msg), { target: target, swap: "outerHTML" });
  }
  hideToolbar();
}

export function setupToolbar(list) {
  var toolbar = $("msg-toolbar");
  if (!toolbar) return;
  list.addEventListener("mouseover", function (evt) {
    var msg = actionable(evt.target);
    if (msg && msg !== toolbarFor) showToolbar(msg);
  });
  list.addEventListener("focusin", function (evt) { showToolbar(actionable(evt.target)); });
  list.addEventListener("scroll", hideToolbar);
  toolbar.addEventListener("click", function (evt) {
    var button = evt.target.closest("button");
    if (!button || !toolbarFor) return;
    if (button.hasAttribute("data-react")) {
      act("react", toolbarFor, button.getAttribute("data-react"));
    } else if (button.hasAttribute("data-action")) {
      act(button.getAttribute("data-action"), toolbarFor);
    }
  });
  var cancel = $("reply-cancel");
  if (cancel) cancel.addEventListener("click", function () { setReply(null); });
}

// Enter saves an edit, Escape cancels it (or a reply being composed).
document.addEventListener("keydown", function (evt) {
  var form = evt.target.closest ? evt.target.closest(".edit-form") : null;
  if (form && evt.key === "Enter" && !evt.shiftKey && !evt.isComposing) {
    evt.preventDefault();
    form.requestSubmit();
  } else if (form && evt.key === "Escape") {
    form.querySelector("button[type=button]").click();
  } else if (evt.key === "Escape" && evt.target === composer()) {
    setReply(null);
  }
});

document.addEventListener("htmx:load", function (evt) {
  var editing = evt.detail.elt.matches && evt.detail.elt.matches(".msg.editing")
    ? evt.detail.elt.querySelector("textarea") : null;
  if (editing) {
    editing.focus();
    editing.setSelectionRange(editing.value.length, editing.value.length);
  }
});

// Refusals from message actions (not the author, gone, too fast) shown where errors go.
document.addEventListener("htmx:responseError", function (evt) {
  var status = evt.detail.xhr.status;
  var text = status === 403 && /archived/.test(evt.detail.xhr.responseText)
      ? "This room is archived: nothing in it can change."
    : status === 403 ? "Only the person who wrote a message can edit or delete it."
    : status === 404 ? "That message no longer exists."
    : status === 422 || status === 429 ? evt.detail.xhr.responseText
    : "That did not work. Please try again.";
  var box = $("composer-error");
  if (box && box.offsetParent === null) {
    // The composer is hidden (an archived room): say it where it can be seen.
    toast(text);
  } else if (box) {
    showError("action", text);
  }
});
