// Attachments: the paperclip, drag and drop, paste.

import { $, composer } from "../page.js";
import { clear, showError } from "../composer.js";

// The upload form sits outside the composer (forms don't nest); the file input inside the
// composer belongs to it through its `form` attribute, and htmx posts it on `change`.
function attachForm() { return $("attach-form"); }
function attachInput() { return $("attach-file"); }

// Hands files to the paperclip's input, which sends them like a picked file.
function attachFiles(files) {
  var input = attachInput();
  if (!input || !files || !files.length) return;
  var transfer = new DataTransfer();
  Array.prototype.forEach.call(files, function (file) { transfer.items.add(file); });
  input.files = transfer.files;
  input.dispatchEvent(new Event("change", { bubbles: true }));
}

// Before htmx sends: refuse files over the limit here (the server would answer 413 only
// after receiving them), and carry what is typed as the caption.
document.addEventListener("change", function (evt) {
  var input = attachInput();
  if (evt.target !== input || !input.files.length) return;
  var form = attachForm();
  var limit = parseInt(form.getAttribute("data-max-upload"), 10) || Infinity;
  var tooLarge = Array.prototype.filter.call(input.files, function (f) { return f.size > limit; });
  if (tooLarge.length) {
    evt.stopPropagation();
    showError("too_large", "“" + tooLarge[0].name + "” is too large: files can be at most " +
      form.getAttribute("data-max-upload-text") + ".");
    input.value = "";
    return;
  }
  var box = composer();
  $("attach-caption").value = box ? box.value : "";
}, true);

// A refused upload's error fragment is swapped in like any other; a refusal without one
// (from a proxy, say) is told in words.
document.addEventListener("htmx:beforeSwap", function (evt) {
  var xhr = evt.detail.xhr;
  if (evt.detail.elt !== attachForm() || xhr.status < 400) return;
  evt.detail.isError = false;
  evt.detail.shouldSwap = xhr.responseText.indexOf('<div id="composer-error"') === 0;
  if (!evt.detail.shouldSwap) {
    showError(xhr.status === 413 ? "too_large" : "store_failed",
      xhr.status === 413 ? "That file is too large to send." : "The upload failed. Please try again.");
  }
});

// Once sent, the caption leaves the composer (unless it was changed meanwhile).
document.addEventListener("htmx:afterRequest", function (evt) {
  if (evt.detail.elt !== attachForm()) return;
  var input = attachInput();
  if (input) input.value = "";
  var caption = $("attach-caption").value;
  $("attach-caption").value = "";
  var box = composer();
  if (evt.detail.successful && box && box.value === caption) {
    clear();
  } else if (!evt.detail.xhr.status) {
    showError("store_failed", "The upload did not get through. Please try again.");
  }
});

function carriesFiles(evt) {
  return evt.dataTransfer && Array.prototype.indexOf.call(evt.dataTransfer.types, "Files") >= 0;
}

export function setupAttachments() {
  var room = document.querySelector("main.room");
  var form = $("composer");
  if (!room || !form || !attachForm()) return;
  var depth = 0; // dragenter/leave fire for every child crossed
  room.addEventListener("dragenter", function (evt) {
    if (!carriesFiles(evt)) return;
    depth += 1;
    form.classList.add("dropping");
  });
  room.addEventListener("dragleave", function (evt) {
    if (!carriesFiles(evt)) return;
    depth = Math.max(0, depth - 1);
    if (!depth) form.classList.remove("dropping");
  });
  room.addEventListener("dragover", function (evt) {
    if (!carriesFiles(evt)) return;
    evt.preventDefault();
    evt.dataTransfer.dropEffect = "copy";
  });
  room.addEventListener("drop", function (evt) {
    if (!carriesFiles(evt)) return;
    evt.preventDefault();
    depth = 0;
    form.classList.remove("dropping");
    attachFiles(evt.dataTransfer.files);
  });
  var box = composer();
  if (box) {
    box.addEventListener("paste", function (evt) {
      var files = evt.clipboardData && evt.clipboardData.files;
      if (!files || !files.length) return;
      evt.preventDefault();
      attachFiles(files);
    });
  }
}
