// Every <time datetime> on the page, in the reader's own language and time zone, one format
// everywhere (messages, edits, search results): the time alone for today, the date and
// time before. The server writes an unambiguous UTC fallback; this replaces it, for the page
// and for whatever htmx swaps in later.

var timeOnly = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
var dateAndTime = new Intl.DateTimeFormat(undefined, {
  day: "numeric", month: "short", year: "numeric", hour: "numeric", minute: "2-digit",
});
var full = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });

export function formatTime(at, now) {
  return at.toDateString() === (now || new Date()).toDateString()
    ? timeOnly.format(at)
    : dateAndTime.format(at);
}

export function localizeTimes(root) {
  var times = (root || document).querySelectorAll("time[datetime]:not([data-local])");
  var now = new Date();
  for (var i = 0; i < times.length; i++) {
    var at = new Date(times[i].getAttribute("datetime"));
    if (isNaN(at)) continue;
    times[i].textContent = formatTime(at, now);
    times[i].title = full.format(at);
    times[i].setAttribute("data-local", "");
  }
}

// Out-of-band swaps (socket frames, sidebar updates) and ordinary ones alike.
["htmx:afterSwap", "htmx:oobAfterSwap", "htmx:wsAfterMessage"].forEach(function (name) {
  document.addEventListener(name, function () { localizeTimes(); });
});
