// Things that open in place, the topic editor and the reaction menu: Escape closes them and
// gives the focus back to their button, and the topic editor closes once its topic is saved.

var MENUS = "details.topic-edit, details.react-menu";

document.addEventListener("keydown", function (evt) {
  if (evt.key !== "Escape" || !evt.target.closest) return;
  var menu = evt.target.closest(MENUS);
  if (!menu || !menu.open) return;
  evt.preventDefault();
  menu.open = false;
  menu.querySelector("summary").focus();
});

document.addEventListener("htmx:afterRequest", function (evt) {
  var editor = evt.detail.elt.closest ? evt.detail.elt.closest("details.topic-edit") : null;
  if (editor && evt.detail.successful) {
    editor.open = false;
    editor.querySelector("summary").focus();
  }
});
