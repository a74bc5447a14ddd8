// Live preview for the content editor (templates/admin/cms/edit.html). Optional: without
// script the editor is a plain form, and its "Preview" button opens the full page preview.
// As the body changes, the form is posted (URL-encoded, with its form token, like the form
// itself) to the preview endpoint, which renders the Markdown with the server's one
// sanitizing renderer; the answer is that sanitized HTML.
(function () {
  "use strict";
  var form = document.getElementById("editor");
  var pane = document.getElementById("live-preview");
  if (!form || !pane || !window.fetch) return;
  var body = form.querySelector("textarea[name=body]");
  if (!body) return;
  var timer = null;
  var sequence = 0;
  pane.hidden = false;
  function refresh() {
    var data = new URLSearchParams(new FormData(form));
    data.set("fragment", "1");
    var mine = ++sequence;
    fetch("/admin/content/preview", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: data.toString()
    }).then(function (res) {
      return res.ok ? res.text() : Promise.reject(res.status);
    }).then(function (html) {
      // Only the newest answer is shown; the HTML is the server's sanitized rendering.
      if (mine === sequence) pane.querySelector(".prose").innerHTML = html;
    }).catch(function () {
      pane.querySelector(".prose").textContent = "The preview is unavailable right now.";
    });
  }
  body.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 400);
  });
  refresh();
})();
