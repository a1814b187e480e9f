// Follows a job's log through the agent's Server-Sent Events: each message is a chunk of
// (already masked) log text, added as text, never as markup. EventSource resumes from the last
// event id by itself after a dropped connection.
(function () {
  var pre = document.getElementById("log");
  var status = document.getElementById("log-status");
  if (!pre || !window.EventSource) return;
  pre.textContent = "";
  var source = new EventSource(pre.getAttribute("data-src"));
  source.onmessage = function (event) {
    var follow = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.appendChild(document.createTextNode(event.data));
    if (follow) pre.scrollTop = pre.scrollHeight;
  };
  source.addEventListener("end", function () {
    source.close();
    status.textContent = "ended";
    status.className = "state quiet";
  });
  source.onerror = function () {
    if (source.readyState === EventSource.CLOSED) status.textContent = "disconnected";
  };
})();
