// Copy buttons (a bot's new token): the Clipboard API where the page may use it, else the
// text is selected so the person copies it with the keyboard.

import { $ } from "../page.js";

function say(button, text) {
  var status = $(button.getAttribute("data-copy-status"));
  if (status) status.textContent = text;
}

function selectForCopy(button, field) {
  field.focus();
  field.select();
  var copied = false;
  try {
    copied = document.execCommand("copy");
  } catch (e) {
    copied = false;
  }
  say(button, copied ? "Copied." : "Selected: press Ctrl+C (⌘C on a Mac) to copy it.");
}

document.addEventListener("click", function (evt) {
  var button = evt.target.closest ? evt.target.closest("button[data-copy]") : null;
  var field = button && $(button.getAttribute("data-copy"));
  if (!field) return;
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(field.value).then(
      function () { say(button, "Copied."); },
      function () { selectForCopy(button, field); });
  } else {
    selectForCopy(button, field);
  }
});
