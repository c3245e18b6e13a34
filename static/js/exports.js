// Export buttons (templates/scoring/_export_buttons.html). A button starts a background export
// through the API (the session cookie and the page's CSRF token), shows the export's status as
// the server reports it, polling until the server says it is done or failed, and then downloads
// the file. Nothing is called ready before the server says so.
(function () {
  "use strict";
  const REPORT_KINDS = new Set(["report_json", "report_html", "report_csv"]);
  const POLL_MS = [300, 600, 1000, 2000, 3000, 5000];

  const sleep = (ms) => new Promise((resolve) => window.setTimeout(resolve, ms));

  function sizeText(bytes) {
    if (bytes >= 1048576) return (bytes / 1048576).toFixed(1) + " MB";
    if (bytes >= 1024) return (bytes / 1024).toFixed(1) + " kB";
    return bytes + " bytes";
  }

  function setUp(box) {
    const startUrl = box.dataset.exportStart;
    const csrf = box.querySelector("input[name=csrfmiddlewaretoken]").value;
    const includeJudge = box.querySelector("input[name=include_judge]");
    const statusList = box.querySelector(".export-status");
    const lines = {}; // kind -> the status line of its latest export

    function say(kind, text, state) {
      let line = lines[kind];
      if (!line) {
        line = document.createElement("li");
        line.dataset.kind = kind;
        statusList.appendChild(line);
        lines[kind] = line;
      }
      line.textContent = text;
      line.dataset.state = state;
      line.classList.toggle("error", state === "failed");
    }

    async function request(method, url, body) {
      const headers = { Accept: "application/json" };
      if (body !== undefined) {
        headers["Content-Type"] = "application/json";
        headers["X-CSRFToken"] = csrf;
      }
      const response = await fetch(url, {
        method: method,
        credentials: "same-origin",
        headers: headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      let data = null;
      try {
        data = await response.json();
      } catch (error) {
        data = null;
      }
      if (!response.ok) {
        const detail = data && data.detail ? data.detail : "no details";
        throw new Error("the server answered " + response.status + " (" + detail + ")");
      }
      return data;
    }

    function download(url) {
      const link = document.createElement("a");
      link.href = url;
      link.download = "";
      link.hidden = true;
      document.body.appendChild(link);
      link.click();
      link.remove();
    }

    async function run(button) {
      const kind = button.dataset.kind;
      const label = button.textContent.trim();
      const body = { kind: kind };
      if (REPORT_KINDS.has(kind) && box.dataset.excludeFlaggedRaters) {
        body.exclude_flagged_raters = true;
      }
      if (kind === "dpo_jsonl" && includeJudge && includeJudge.checked) body.include_judge = true;
      button.disabled = true;
      say(kind, label + ": asking the server to build it…", "starting");
      try {
        let status = await request("POST", startUrl, body);
        const started = Date.now();
        for (let tries = 0; status.status === "pending"; tries += 1) {
          const seconds = Math.round((Date.now() - started) / 1000);
          say(kind, label + ": export " + status.id + " is being built (" + seconds + " s)", "pending");
          await sleep(POLL_MS[Math.min(tries, POLL_MS.length - 1)]);
          status = await request("GET", status.status_url);
        }
        if (status.status === "done") {
          say(
            kind,
            label + ": ready, downloading (" + status.rows + " rows, " + sizeText(status.size_bytes) + ")",
            "done"
          );
          download(status.download_url);
        } else {
          say(kind, label + ": failed: " + (status.error || status.status), "failed");
        }
      } catch (error) {
        say(kind, label + ": not exported: " + error.message, "failed");
      } finally {
        button.disabled = false;
      }
    }

    box.addEventListener("click", function (event) {
      const button = event.target.closest("button[data-kind]");
      if (button && !button.disabled) run(button);
    });
  }

  document.querySelectorAll("[data-export-start]").forEach(setUp);
})();
