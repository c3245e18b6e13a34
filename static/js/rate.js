// The rater's page: keyboard-first, blinded. It only ever sees slot 1 / slot 2 from the API.
// The next pair is fetched while the rater reads the current one so it appears at once.
//
// The page says only what the server confirmed: a judgment counts when the server answered 201
// (or replayed that 201 for a retry with the same Idempotency-Key); every 409 says why nothing
// was saved, and the counter is the server's own figure, fetched after each outcome.
(function () {
  "use strict";
  const app = document.getElementById("rate-app");
  if (!app) return;

  // A page restored from the back/forward cache would show a pair that may be judged by now:
  // load it afresh instead.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) window.location.reload();
  });

  const study = app.dataset.study;
  const nextUrl = app.dataset.nextUrl;
  const progressUrl = app.dataset.progressUrl;
  const heartbeatMs = Number(app.dataset.heartbeat || 120) * 1000;
  const undoMs = Number(app.dataset.undoSeconds || 60) * 1000;
  const guardMs = Number(app.dataset.guardMs || 300);
  const csrf = app.querySelector("input[name=csrfmiddlewaretoken]").value;
  const el = (id) => document.getElementById(id);
  const LABELS = { "1": "Response 1 is better", "2": "Response 2 is better", "tie": "Tie", "both_bad": "Both bad" };
  const REMOVED = "You are no longer in this study. The judgments you saved are kept. Thank you for your work.";

  let current = null;      // the pair on screen
  let upcoming = [];       // pairs leased for later (prefetched, or put back by an undo)
  let prefetching = null;  // the promise of a prefetch in flight
  let queueEmpty = false;  // the last fetch found nothing more
  let paintedAt = null;    // when the current pair first painted (performance.now())
  let busy = false;
  let lastSaved = null;    // { pair, savedAt } of the last judgment the server confirmed
  let lastProgress = null;
  const keys = {};         // assignment id -> Idempotency-Key, kept across retries

  function showError(message) {
    const box = el("error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  function showNotice(message, warn) {
    const box = el("notice");
    box.textContent = message || "";
    box.hidden = !message;
    box.classList.toggle("warn", Boolean(warn));
  }

  function newKey() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return String(Date.now()) + "-" + Math.random().toString(16).slice(2);
  }

  // 503 means the database is briefly unreachable (a restart): wait as told and send the same
  // request again, with the same Idempotency-Key, so a retried judgment still counts once.
  const UNAVAILABLE_RETRIES = 5;

  async function api(method, url, body, extraHeaders) {
    let response;
    for (let attempt = 0; ; attempt++) {
      response = await fetch(url, {
        method: method,
        credentials: "same-origin",
        cache: "no-store",
        headers: Object.assign({ "Accept": "application/json", "X-CSRFToken": csrf },
          body ? { "Content-Type": "application/json" } : {}, extraHeaders || {}),
        body: body ? JSON.stringify(body) : undefined,
      });
      if (response.status !== 503 || attempt >= UNAVAILABLE_RETRIES) break;
      const waitS = Math.min(Number(response.headers.get("Retry-After")) || 2, 30);
      showNotice("The server is busy for a moment; trying again in " + waitS + " s.", true);
      await new Promise(function (resolve) { setTimeout(resolve, waitS * 1000); });
      showNotice("");
    }
    if (response.status === 204) return { status: 204, data: null };
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    return { status: response.status, data: data };
  }

  function detail(result, fallback) {
    return (result.data && result.data.detail) || fallback;
  }

  async function refreshProgress() {
    try {
      const result = await api("GET", progressUrl);
      if (result.status === 409 && result.data && result.data.code === "removed") {
        showDone(REMOVED);
        return null;
      }
      if (result.status !== 200) return null;
      lastProgress = result.data;
      el("progress").textContent = result.data.judged_by_me + " of " + result.data.can_judge + " for you";
      return result.data;
    } catch (e) {
      return null;  // the counter keeps its last server figure
    }
  }

  // Outcomes of loading a pair: a pair, "none" (nothing left), or a thrown Error whose
  // `code` is the server's (e.g. study_closed) when it answered.
  async function fetchNext(excludeIds) {
    const params = new URLSearchParams({ study: study, render: "html" });
    if (excludeIds.length) params.set("exclude", excludeIds.join(","));
    const result = await api("GET", nextUrl + "?" + params.toString());
    if (result.status === 204) return "none";
    if (result.status !== 200) {
      const error = new Error(detail(result, "could not load the next pair"));
      error.code = result.data && result.data.code;
      throw error;
    }
    return result.data;
  }

  function heldIds() {
    return [current].concat(upcoming).filter(Boolean).map(function (p) { return p.assignment; });
  }

  function render(container, html, text) {
    // `html` comes from the server's Markdown renderer and allow-list (annotations.rendering);
    // without it, plain text only.
    if (typeof html === "string") container.innerHTML = html;
    else container.textContent = text;
    container.scrollTop = 0;
  }

  // `completionCode`: a crowd participant's code, only ever from the server's counter, which
  // sends it once the server counts them done.
  function showDone(reason, completionCode) {
    current = null;
    paintedAt = null;
    el("loading").hidden = true;
    el("retry").hidden = true;
    el("pair").hidden = true;
    el("done").hidden = false;
    el("done-reason").textContent = reason;
    el("completion-code").textContent = completionCode || "";
    el("completion").hidden = !completionCode;
    el("announce").textContent = reason + (completionCode ? " Your completion code: " + completionCode + "." : "");
  }

  async function showNothingLeft() {
    const progress = await refreshProgress();
    if (progress && progress.completion_code) {
      showDone("You have done all the pairs this study asks of you. Thank you!", progress.completion_code);
    } else if (!progress && !el("done").hidden) {
      return;  // the counter already said why (removed from the study)
    } else if (progress && progress.status !== "open") {
      showDone("This study is closed for rating right now. Your saved judgments are kept.");
    } else if (progress && progress.left_for_me > 0) {
      showDone("Nothing is free for you right now: the remaining items are being judged by " +
        "other raters. Try again in a few minutes.");
    } else {
      showDone("There is nothing left for you in this study. Thank you!");
    }
  }

  function show(pair) {
    el("loading").hidden = true;
    el("retry").hidden = true;
    if (pair === "none" || pair === null) {
      showNothingLeft();
      return;
    }
    current = pair;
    if (!keys[pair.assignment]) keys[pair.assignment] = newKey();
    render(el("prompt"), pair.prompt_html, pair.prompt);
    render(el("slot-1"), pair.responses[0].html, pair.responses[0].text);
    render(el("slot-2"), pair.responses[1].html, pair.responses[1].text);
    el("rationale").value = "";
    el("pair").hidden = false;
    el("done").hidden = true;
    window.scrollTo(0, 0);
    // Keys count only from the first paint of this pair on (plus the guard): two frames, so
    // the pair is on screen, not merely in the DOM.
    paintedAt = null;
    requestAnimationFrame(function () {
      requestAnimationFrame(function () { if (current === pair) paintedAt = performance.now(); });
    });
    const position = lastProgress ? " (" + (lastProgress.judged_by_me + 1) + " of " + lastProgress.can_judge + ")" : "";
    el("announce").textContent = "New pair to judge" + position + ".";
    if (!upcoming.length) startPrefetch();
  }

  function startPrefetch() {
    if (!current || queueEmpty || prefetching) return;
    prefetching = fetchNext(heldIds()).then(function (pair) {
      if (pair === "none") queueEmpty = true;
      else if (pair) upcoming.push(pair);
    }).catch(function () { /* the next advance asks again */ })
      .finally(function () { prefetching = null; });
  }

  async function advance() {
    current = null;
    paintedAt = null;
    if (prefetching) await prefetching;
    let next = upcoming.shift();
    if (!next) {
      queueEmpty = false;
      try {
        next = await fetchNext(heldIds());
      } catch (error) {
        if (error.code === "study_closed") {
          showDone("This study was closed for rating. Your saved judgments are kept.");
          return;
        }
        if (error.code === "removed") {
          showDone(REMOVED);
          return;
        }
        // Nothing on screen can be judged now, so a key press cannot count anything twice.
        el("pair").hidden = true;
        el("retry").hidden = false;
        showError("Loading the next pair failed (" + error.message + "). Press n or the button to try again.");
        return;
      }
    }
    show(next);
  }

  function ready() {
    return current && !busy && paintedAt !== null && performance.now() - paintedAt >= guardMs;
  }

  async function submit(choice) {
    if (!ready()) return;
    busy = true;
    showError("");
    const pair = current;
    const body = {
      choice: choice,
      rationale: el("rationale").value,
      time_ms: Math.round(performance.now() - paintedAt),
    };
    let result;
    try {
      result = await api("POST", "/api/v1/assignments/" + pair.assignment + "/judgment/", body,
        { "Idempotency-Key": keys[pair.assignment] });
    } catch (error) {
      busy = false;
      showNotice("");
      showError("No answer from the server: your choice is not confirmed. Press it again to " +
        "retry; it will not count twice.");
      return;
    }
    const code = result.data && result.data.code;
    if (result.status === 201) {
      lastSaved = { pair: pair, savedAt: Date.now() };
      showNotice("Saved: " + LABELS[result.data.choice] + ".");
    } else if (result.status === 409 && code === "already_judged") {
      lastSaved = { pair: pair, savedAt: Date.now() };
      const saved = result.data.errors && result.data.errors.saved_choice;
      showNotice("Already saved by you earlier" + (saved ? " (" + LABELS[saved] + ")" : "") +
        "; it counts once.");
    } else if (result.status === 409 && code === "key_reused") {
      lastSaved = { pair: pair, savedAt: Date.now() };
      showNotice(detail(result, "This pair was already saved; the changed choice was not saved."), true);
    } else if (result.status === 409 && code === "study_closed") {
      busy = false;
      await refreshProgress();
      showNotice("Not saved: " + detail(result, "the study was closed") + ".", true);
      showDone("This study was closed for rating. Your saved judgments are kept.");
      return;
    } else if (result.status === 409 && code === "removed") {
      busy = false;
      showNotice("Not saved: you are no longer in this study.", true);
      showDone(REMOVED);
      return;
    } else if (result.status === 409 && code === "participant_done") {
      busy = false;
      showNotice("Not saved: " + detail(result, "you have done all the pairs asked of you") + ".", true);
      await showNothingLeft();
      return;
    } else if (result.status === 409 || result.status === 404) {
      // The lease was lost and others completed the item, or it was skipped: not counted.
      showNotice("Not saved: " + detail(result, "this pair is no longer yours") + ". Moving on.", true);
    } else {
      busy = false;
      showError(detail(result, "The judgment was not saved.") + " Please try again.");
      return;
    }
    updateUndo();
    try {
      // The next pair (already prefetched) need not wait for the counter: the counter shows
      // the server's figure as soon as it arrives.
      await Promise.all([refreshProgress(), advance()]);
    } finally {
      busy = false;
    }
  }

  async function skip() {
    if (!ready()) return;
    busy = true;
    showError("");
    try {
      const result = await api("POST", "/api/v1/assignments/" + current.assignment + "/skip/");
      if (result.status === 200) showNotice("Skipped.");
      else showNotice("Not skipped: " + detail(result, "the server refused") + ".", true);
      await advance();
    } catch (error) {
      showError("No answer from the server; the pair was not skipped. Try again.");
    } finally {
      busy = false;
    }
  }

  function canUndo() {
    return lastSaved && Date.now() - lastSaved.savedAt < undoMs;
  }

  function updateUndo() {
    app.querySelector("button[data-action=undo]").disabled = !canUndo();
  }

  async function undo() {
    if (busy || !canUndo()) return;
    busy = true;
    showError("");
    const pair = lastSaved.pair;
    try {
      const result = await api("DELETE", "/api/v1/assignments/" + pair.assignment + "/judgment/");
      if (result.status !== 200) {
        showNotice("Not undone: " + detail(result, "the server refused") + ".", true);
        lastSaved = null;
        return;
      }
      lastSaved = null;
      if (prefetching) await prefetching;
      if (current) upcoming.unshift(current);  // still leased to this rater: shown next
      keys[pair.assignment] = newKey();        // a new choice is a new submission
      showNotice("Undone: your judgment was taken back. Choose again.");
      await refreshProgress();
      show(pair);
    } catch (error) {
      showError("No answer from the server; nothing was undone.");
    } finally {
      busy = false;
      updateUndo();
    }
  }

  function heartbeat() {
    [current].concat(upcoming).forEach(function (pair) {
      if (pair) api("POST", "/api/v1/assignments/" + pair.assignment + "/renew/").catch(function () {});
    });
    updateUndo();
  }

  async function retryLoad() {
    if (busy || current) return;
    busy = true;
    showError("");
    el("retry").hidden = true;
    el("loading").hidden = false;
    try {
      await advance();
    } finally {
      busy = false;
    }
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
    const choices = { "1": "1", "2": "2", "3": "tie", "4": "both_bad" };
    if (choices[event.key]) { event.preventDefault(); submit(choices[event.key]); }
    else if (event.key === "s") { event.preventDefault(); skip(); }
    else if (event.key === "u") { event.preventDefault(); undo(); }
    else if (event.key === "n") { event.preventDefault(); retryLoad(); }
    else if (event.key === "r") { event.preventDefault(); el("rationale").focus(); }
    else if (event.key === "?") { event.preventDefault(); el("help").showModal(); }
  });
  app.querySelectorAll("button[data-choice]").forEach(function (button) {
    button.addEventListener("click", function () { submit(button.dataset.choice); });
  });
  app.querySelector("button[data-action=skip]").addEventListener("click", skip);
  app.querySelector("button[data-action=undo]").addEventListener("click", undo);
  app.querySelector("button[data-action=retry]").addEventListener("click", retryLoad);
  el("help-button").addEventListener("click", function () { el("help").showModal(); });
  setInterval(heartbeat, heartbeatMs);
  setInterval(updateUndo, 5000);

  // One request at a time at start-up: the counter, then the first pair.
  refreshProgress().then(function () { return fetchNext([]); }).then(show).catch(function (error) {
    el("loading").hidden = true;
    if (error.code === "study_closed") showDone("This study is closed for rating right now.");
    else if (error.code === "removed") showDone(REMOVED);
    else showError(error.message);
  });
})();
