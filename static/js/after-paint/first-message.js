// The first-message forms (the welcome screen's, and /dm/{nickname} before a conversation
// exists) send on Enter, as the room's composer does; Shift+Enter is a new line.

document.addEventListener("keydown", function (evt) {
  var box = evt.target;
  if (!box || box.id !== "start-message" || evt.key !== "Enter" || evt.shiftKey || evt.isComposing) return;
  evt.preventDefault();
  if (box.value.trim() !== "") box.form.requestSubmit();
});
