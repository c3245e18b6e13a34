// The rater's page: keyboard-first, blinded. It only ever sees slot 1 / slot 2 from the API.
// The next pair is fetched while the rater reads the current one so it appears at once.
(function () {
  "use strict";
  const app = document.getElementById("rate-app");
  if (!app) return;
  const study = app.dataset.study;
  const nextUrl = app.dataset.nextUrl;
  const heartbeatMs = Number(app.dataset.heartbeat || 120) * 1000;
  const csrf = app.querySelector("input[name=csrfmiddlewaretoken]").value;
  const el = (id) => document.getElementById(id);
  let current = null;
  let prefetched = null;   // a pair object, or "none" when the queue had nothing more
  let prefetching = null;  // the promise of a prefetch in flight
  let shownAt = 0;
  let busy = false;
  let judgedHere = 0;

  function showError(message) {
    const box = el("error");
    box.textContent = message;
    box.hidden = !message;
  }

  async function api(method, url, body) {
    const response = await fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: Object.assign({ "Accept": "application/json", "X-CSRFToken": csrf },
        body ? { "Content-Type": "application/json" } : {}),
      body: body ? JSON.stringify(body) : undefined,
    });
    if (response.status === 204) return { status: 204, data: null };
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    return { status: response.status, data: data };
  }

  async function fetchNext(excludeIds) {
    const params = new URLSearchParams({ study: study });
    if (excludeIds.length) params.set("exclude", excludeIds.join(","));
    const result = await api("GET", nextUrl + "?" + params.toString());
    if (result.status === 204) return "none";
    if (result.status !== 200) throw new Error((result.data && result.data.detail) || "could not load the next pair");
    return result.data;
  }

  // Renders text safely (textContent only, never HTML): plain text keeps its line breaks and
  // Markdown code fences (``` or ~~~ at the start of a line, optional language tag) become code
  // blocks. No text is ever dropped: backticks inside a line stay text, a line that starts with a
  // fence but has more after it inside a block stays code, and an unclosed fence runs to the end.
  function renderText(container, text) {
    container.replaceChildren();
    let buffer = [];
    let fence = null;  // the opening fence ("```", "~~~~", ...) while inside a code block
    function flush() {
      const content = buffer.join("\n");
      buffer = [];
      if (!content) return;
      if (fence === null) {
        const div = document.createElement("div");
        div.className = "text";
        div.textContent = content;
        container.appendChild(div);
      } else {
        const pre = document.createElement("pre");
        pre.className = "code";
        const code = document.createElement("code");
        code.textContent = content;
        pre.appendChild(code);
        container.appendChild(pre);
      }
    }
    const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
    if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();  // the final newline
    lines.forEach(function (line) {
      if (fence === null) {
        const open = /^ {0,3}(`{3,}|~{3,})(.*)$/.exec(line);
        if (open && !(open[1][0] === "`" && open[2].includes("`"))) {
          flush();
          fence = open[1];
          return;
        }
      } else {
        const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(line);
        if (close && close[1][0] === fence[0] && close[1].length >= fence.length) {
          flush();
          fence = null;
          return;
        }
      }
      buffer.push(line);
    });
    flush();
  }

  function show(pair) {
    current = pair;
    el("loading").hidden = true;
    if (pair === "none" || pair === null) {
      current = null;
      el("pair").hidden = true;
      el("done").hidden = false;
      return;
    }
    renderText(el("prompt"), pair.prompt);
    renderText(el("slot-1"), pair.responses[0].text);
    renderText(el("slot-2"), pair.responses[1].text);
    el("rationale").value = "";
    el("pair").hidden = false;
    el("done").hidden = true;
    window.scrollTo(0, 0);
    shownAt = performance.now();
    startPrefetch();
  }

  function startPrefetch() {
    if (!current) return;
    const ids = [current.assignment];
    prefetched = null;
    prefetching = fetchNext(ids).then(function (pair) { prefetched = pair; return pair; })
      .catch(function () { prefetched = null; return null; });
  }

  async function advance() {
    if (prefetching) await prefetching;
    let next = prefetched;
    prefetched = null;
    prefetching = null;
    if (next === null || next === "none") {
      // Nothing was prefetched (or the queue looked empty a moment ago): ask once more.
      next = await fetchNext([]);
    }
    show(next);
  }

  async function submit(choice) {
    if (!current || busy) return;
    busy = true;
    showError("");
    const body = {
      choice: choice,
      rationale: el("rationale").value,
      time_ms: Math.round(performance.now() - shownAt),
    };
    try {
      const result = await api("POST", "/api/v1/assignments/" + current.assignment + "/judgment/", body);
      // 409 means this pair was already recorded (e.g. a retried click): the first one counts.
      if (result.status !== 201 && result.status !== 409) {
        throw new Error((result.data && result.data.detail) || "the judgment was not saved");
      }
      judgedHere += 1;
      el("done-count").textContent = judgedHere + " judged in this session";
      await advance();
    } catch (error) {
      showError(error.message + " Please try again.");
    } finally {
      busy = false;
    }
  }

  async function skip() {
    if (!current || busy) return;
    busy = true;
    try {
      await api("POST", "/api/v1/assignments/" + current.assignment + "/skip/");
      await advance();
    } catch (error) {
      showError(error.message);
    } finally {
      busy = false;
    }
  }

  function heartbeat() {
    [current, prefetched].forEach(function (pair) {
      if (pair && pair !== "none") api("POST", "/api/v1/assignments/" + pair.assignment + "/renew/");
    });
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    // While the help dialog is open, keys belong to it (Esc closes it): never judge blind.
    if (el("help").open) return;
    // A held-down key must not go on judging the pairs that appear next.
    if (event.repeat) return;
    const typing = event.target && (event.target.tagName === "TEXTAREA" || event.target.tagName === "INPUT");
    if (typing) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const keys = { "1": "1", "2": "2", "3": "tie", "4": "both_bad" };
    if (keys[event.key]) { event.preventDefault(); submit(keys[event.key]); }
    else if (event.key === "s") { event.preventDefault(); skip(); }
    else if (event.key === "r") { event.preventDefault(); el("rationale").focus(); }
    else if (event.key === "?") { event.preventDefault(); el("help").showModal(); }
  });
  app.querySelectorAll("button[data-choice]").forEach(function (button) {
    button.addEventListener("click", function () { submit(button.dataset.choice); });
  });
  app.querySelector("button[data-action=skip]").addEventListener("click", skip);
  el("help-button").addEventListener("click", function () { el("help").showModal(); });
  setInterval(heartbeat, heartbeatMs);

  fetchNext([]).then(show).catch(function (error) {
    el("loading").hidden = true;
    showError(error.message);
  });
})();
