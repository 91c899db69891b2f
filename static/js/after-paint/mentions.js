// @mention suggestions while typing in the composer. It watches the composer's own events,
// so the composer needs to know nothing of it.

import { $, composer, currentRoom } from "../page.js";
import { syncComposer } from "../composer.js";

var MENTION_BEFORE_CARET = /(^|[^\p{L}\p{N}_.\-@])@([\p{L}\p{N}_.\-]{0,32})$/u;
var askedFor = null; // the prefix the shown suggestions are for

function suggestions() { return $("mention-suggestions"); }

function typedMention(box) {
  var match = MENTION_BEFORE_CARET.exec(box.value.slice(0, box.selectionStart));
  return match ? match[2] : null;
}

function suggestMentions(box) {
  var prefix = typedMention(box);
  if (prefix === null) {
    closeSuggestions();
  } else if (prefix !== askedFor) {
    askedFor = prefix;
    htmx.ajax("GET", "/rooms/" + currentRoom() + "/mentions?q=" + encodeURIComponent(prefix),
      { target: "#mention-suggestions", swap: "outerHTML" });
  }
}

function closeSuggestions() {
  var list = suggestions();
  if (list) list.hidden = true;
  askedFor = null;
}

function acceptSuggestion(option) {
  var box = composer();
  var prefix = typedMention(box);
  if (!option || prefix === null) return closeSuggestions();
  var caret = box.selectionStart;
  var start = caret - prefix.length;
  var name = option.getAttribute("data-nickname");
  box.value = box.value.slice(0, start) + name + " " + box.value.slice(caret);
  box.selectionStart = box.selectionEnd = start + name.length + 1;
  closeSuggestions();
  syncComposer();
  box.focus();
}

// Arrow keys move through open suggestions, Enter or Tab takes one, Escape closes them.
function suggestionKey(evt) {
  var list = suggestions();
  if (!list || list.hidden) return false;
  var options = list.querySelectorAll("li");
  var current = list.querySelector("li[aria-selected='true']");
  var at = Array.prototype.indexOf.call(options, current);
  if (evt.key === "ArrowDown" || evt.key === "ArrowUp") {
    var next = options[(at + (evt.key === "ArrowDown" ? 1 : options.length - 1)) % options.length];
    if (current) current.removeAttribute("aria-selected");
    next.setAttribute("aria-selected", "true");
  } else if ((evt.key === "Enter" || evt.key === "Tab") && !evt.shiftKey) {
    acceptSuggestion(current || options[0]);
  } else if (evt.key === "Escape") {
    closeSuggestions();
  } else {
    return false;
  }
  evt.preventDefault();
  return true;
}

document.addEventListener("input", function (evt) {
  if (evt.target === composer()) suggestMentions(evt.target);
});

// In the capture phase, so a key it takes (and prevents) never reaches the composer's own
// handler as an Enter to send.
document.addEventListener("keydown", function (evt) {
  if (evt.target === composer()) suggestionKey(evt);
}, true);

document.addEventListener("htmx:wsConfigSend", function () { closeSuggestions(); });

document.addEventListener("mousedown", function (evt) {
  var option = evt.target.closest ? evt.target.closest("#mention-suggestions li") : null;
  if (option) {
    evt.preventDefault(); // keep the composer focused
    acceptSuggestion(option);
  }
});
