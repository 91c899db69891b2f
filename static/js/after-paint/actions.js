// The message toolbar (react, reply, copy link, edit, delete), editing in place, and the
// refusals of those actions.

import { $, composer, currentRoom, isOwn, messageId } from "../page.js";
import { setReply, showError } from "../composer.js";

var toolbarFor = null; // the message the toolbar is showing actions for
var refocus = null; // the id of a message whose link takes the focus back once it is swapped in

function messageUrl(msg) {
  return "/rooms/" + currentRoom() + "/messages/" + messageId(msg);
}

function linkOf(msg) { return msg.querySelector(".msg-link"); }

// What Tab reaches in `root`, in order: shown, enabled, and not taken out of the tab order.
function tabbable(root) {
  var all = root.querySelectorAll("a[href], button, summary, input, textarea, select, [tabindex]");
  return Array.prototype.filter.call(all, function (el) {
    return el.tabIndex >= 0 && !el.disabled && el.getClientRects().length > 0;
  });
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
  var byKeyboard = $("msg-toolbar").contains(document.activeElement);
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
  // Hiding the toolbar took the focus from it: it goes back to the message (a reply has
  // given it to the composer, an edit to its text box).
  if (byKeyboard && action !== "reply" && action !== "edit") {
    refocus = msg.id;
    linkOf(msg).focus();
  }
}

// The toolbar is one element after the list, shared by every message: Tab from a message's
// link goes into it, Tab out of it goes on where the message left off, and Escape goes back.
function toolbarKey(evt) {
  var toolbar = $("msg-toolbar");
  var link = toolbarFor && linkOf(toolbarFor);
  if (!link || toolbar.hidden || evt.defaultPrevented) return;
  var controls = tabbable(toolbar);
  var next = null;
  if (evt.key === "Escape" && toolbar.contains(evt.target)) {
    next = link;
  } else if (evt.key !== "Tab" || !controls.length) {
    return;
  } else if (evt.target === link && !evt.shiftKey) {
    next = controls[0];
  } else if (evt.target === controls[0] && evt.shiftKey) {
    next = link;
  } else if (evt.target === controls[controls.length - 1] && !evt.shiftKey) {
    var order = tabbable(document).filter(function (el) { return !toolbar.contains(el); });
    next = order[order.indexOf(link) + 1];
  }
  if (!next) return;
  evt.preventDefault();
  next.focus();
}

export function setupToolbar(list) {
  var toolbar = $("msg-toolbar");
  if (!toolbar) return;
  list.addEventListener("mouseover", function (evt) {
    var msg = actionable(evt.target);
    if (msg && msg !== toolbarFor) showToolbar(msg);
  });
  list.addEventListener("focusin", function (evt) {
    var msg = actionable(evt.target);
    if (msg) showToolbar(msg); else hideToolbar();
  });
  // Focus leaving the messages and their toolbar takes the toolbar with it.
  document.addEventListener("focusin", function (evt) {
    if (!list.contains(evt.target) && !toolbar.contains(evt.target)) hideToolbar();
    if (refocus && !evt.target.closest("#" + refocus)) refocus = null;
  });
  // Focusing a message scrolls it into view: a focused message keeps its toolbar.
  list.addEventListener("scroll", function () {
    var focused = document.activeElement;
    if (toolbarFor && (toolbarFor.contains(focused) || toolbar.contains(focused))) {
      showToolbar(toolbarFor);
    } else {
      hideToolbar();
    }
  });
  document.addEventListener("keydown", toolbarKey);
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
  var elt = evt.detail.elt;
  if (!elt.matches || !elt.matches(".msg")) return;
  var editing = elt.matches(".editing") ? elt.querySelector("textarea") : null;
  if (editing) {
    editing.focus();
    editing.setSelectionRange(editing.value.length, editing.value.length);
    // Saved or cancelled, the message takes the focus back.
    refocus = elt.id;
    // The buttons under the text box stay in view, the last message's too.
    elt.scrollIntoView({ block: "nearest" });
  } else if (elt.id === refocus) {
    // Only if the swap took the focus away, not if the person has moved on.
    var lost = !document.activeElement || document.activeElement === document.body;
    if (lost && linkOf(elt)) linkOf(elt).focus();
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
