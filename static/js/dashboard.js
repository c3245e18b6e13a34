// The live study dashboard: every few seconds, replace the figures with the fragment the
// server renders (annotations.views.study_dashboard_fragment). Nothing is computed here: the
// page shows what the server returned, or says plainly that it could not refresh.
(() => {
  "use strict";
  const root = document.getElementById("dashboard");
  const notice = document.getElementById("dashboard-refresh");
  if (!root || !notice) return;
  const url = root.dataset.fragmentUrl;
  const everyMs = Math.max(2, Number(root.dataset.refreshSeconds) || 10) * 1000;
  let timer = null;
  let busy = false;

  function say(text, failed) {
    notice.textContent = text;
    notice.classList.toggle("warn", failed);
  }

  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const response = await fetch(url, {
        credentials: "same-origin",
        cache: "no-store",
        redirect: "manual",
        headers: { Accept: "text/html" },
      });
      // A redirect here is the login page: the session ended.
      if (response.type === "opaqueredirect") throw new Error("signed out; reload the page to sign in");
      if (!response.ok) throw new Error(`the server answered ${response.status}`);
      root.innerHTML = await response.text();
      say(`Refreshes every ${everyMs / 1000} s; every figure below is the server's.`, false);
    } catch (error) {
      const asOf = document.getElementById("dashboard-as-of");
      const when = asOf ? asOf.dataset.generatedAt : "the last refresh";
      say(`Could not refresh (${error.message}); the figures below are from ${when}.`, true);
    } finally {
      busy = false;
      schedule();
    }
  }

  function schedule() {
    clearTimeout(timer);
    // A hidden tab does not poll; it refreshes as soon as it is shown again.
    if (!document.hidden) timer = setTimeout(refresh, everyMs);
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) clearTimeout(timer);
    else refresh();
  });
  schedule();
})();
