"use strict";
// The dashboard's only script: it reloads the rows an operator watches move, and the
// overview now and then. Content comes from the server already escaped.
(function () {
  document.querySelectorAll("[data-refresh]").forEach(function (target) {
    var url = target.getAttribute("data-refresh");
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (answer) {
          if (!answer.ok) { throw new Error(String(answer.status)); }
          return answer.text();
        })
        .then(function (html) {
          target.innerHTML = html;
          if (target.querySelector("[data-moving]")) { setTimeout(tick, 1000); }
        })
        .catch(function () { setTimeout(tick, 5000); });
    }
    if (target.querySelector("[data-moving]")) { setTimeout(tick, 1000); }
  });
  var every = Number(document.body.getAttribute("data-autoreload"));
  if (every > 0) { setTimeout(function () { location.reload(); }, every * 1000); }
})();
