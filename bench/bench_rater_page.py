"""Benchmark: key press to the next pair painted on the rating page, in headless Chromium.

What it measures: a rater presses ``1`` or ``2`` on ``/rate/<study>/``; the page POSTs the
judgment, fetches the counter, shows the pair it prefetched while the rater read (both outputs
rendered from the server's safe Markdown HTML), and the browser paints it. The time from the
``keydown`` event (``event.timeStamp``, read by a capturing listener that an init script adds
before the page's own) to the first frame after the next pair's DOM update (a
``MutationObserver`` on the prompt, then ``requestAnimationFrame`` and a ``MessageChannel``
message, which runs once that frame is produced) is one sample; it is split into key -> DOM
(network, server, script) and DOM -> paint (style, layout, paint of the new pair).

Flows, in the same run and alternating in blocks so that machine noise hits both alike:

* markdown: outputs of exactly ``--chars`` (4,000) characters of realistic Markdown on both
  sides (headings, bold/italic/inline code, numbered and nested bullet lists, a table, a fenced
  code block, a block quote);
* plain (the peer): the same page and flow with plain-prose outputs of the same length.

Between pairs the script waits ``--read-ms`` (350 ms; the page ignores keys for 300 ms after a
pair first paints) and until no ``fetch`` is in flight (the page's prefetch of the following
pair, as when a rater reads), and none of that wait is counted.

Server: gunicorn (1 gthread worker x 4 threads) with ``DEBUG=1``, the Django application
wrapped in the static-files handler ``runserver`` uses (so no ``collectstatic``; production
serves static files with WhiteNoise), on a temporary SQLite database, or with ``--pg`` on a
PostgreSQL database ``bench_rater_page`` (``_smoke`` with ``--smoke``) created and dropped by
the run. Seeded through our services: one rater, one open study per flow, overlap 1.
``manage.py runserver`` itself is not used: in a first try its counter request took a median
51 ms against 16 ms under gunicorn (1.6 ms in-process), a ~40 ms step that looks like Nagle's
algorithm meeting delayed ACKs (its ``wsgiref`` server writes headers and body separately).
Browser: Debian's ``/usr/bin/chromium`` through Playwright, headless, ``--no-sandbox
--disable-background-networking`` (the flags of the browser tests), viewport 1280 x 900.

Checks: every key press saved a judgment (counted in the database afterwards), the markdown
flow's panes hold a table and a code block, and the page raised no JavaScript error.

Usage::

    .venv/bin/python bench/bench_rater_page.py              # 200 pairs per flow, ~3 minutes
    .venv/bin/python bench/bench_rater_page.py --pg postgresql://postgres@127.0.0.1:5432
    .venv/bin/python bench/bench_rater_page.py --smoke      # 10 pairs per flow (the test suite)
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
GUNICORN = str(Path(sys.executable).parent / "gunicorn")
SERVER_ARGS = [
    "--workers",
    "1",
    "--worker-class",
    "gthread",
    "--threads",
    "4",
    "--log-level",
    "warning",
]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 900}
USERNAME = "bench-page-rater"
PASSWORD = "bench-page-password-123"
TARGET_P95_MS = 60.0
TIMEOUT_MS = 15_000

# Counts fetches in flight (as the browser tests do) and records, for every update of the
# prompt pane that follows a judging key press: the key's timestamp, when the DOM changed, and
# when the first frame after that change was produced.
INIT_SCRIPT = """
(() => {
  const bench = window.__bench = {
    keyAt: null, fetches: [], marks: [], paints: 0, lastPaint: null,
  };
  window.__inflight = 0;
  const realFetch = window.fetch.bind(window);
  window.fetch = async (resource, options) => {
    window.__inflight += 1;
    const start = performance.now();
    const pending = bench.keyAt !== null;
    try {
      return await realFetch(resource, options);
    } finally {
      window.__inflight -= 1;
      if (pending) {
        const method = (options && options.method) || "GET";
        bench.fetches.push({ what: method + " " + String(resource).split("?")[0],
                             ms: performance.now() - start });
      }
    }
  };
  window.addEventListener("keydown", (event) => {
    if (event.key === "1" || event.key === "2") {
      bench.keyAt = event.timeStamp;
      bench.fetches = [];
    }
  }, true);
  document.addEventListener("DOMContentLoaded", () => {
    const prompt = document.getElementById("prompt");
    if (!prompt) return;
    new MutationObserver(() => {
      const keyAt = bench.keyAt;
      bench.keyAt = null;
      const domAt = performance.now();
      requestAnimationFrame(() => {
        const channel = new MessageChannel();
        channel.port1.onmessage = () => {
          const paintAt = performance.now();
          if (keyAt !== null) {
            bench.marks.push({ key: keyAt, dom: domAt, paint: paintAt, fetches: bench.fetches });
          }
          bench.lastPaint = paintAt;
          bench.paints += 1;
        };
        channel.port2.postMessage(0);
      });
    }).observe(prompt, { childList: true, subtree: true, characterData: true });
  });
})();
"""

WORDS = [
    "model", "answer", "request", "latency", "cache", "index", "query", "rater", "study", "pair",
    "output", "token", "batch", "server", "page", "render", "layout", "paint", "score", "metric",
    "sample", "error", "budget", "review", "release", "queue", "lease", "vote", "judgment",
    "report", "table", "column", "value", "window", "thread", "worker", "process", "memory",
    "result", "summary", "reason", "method", "option", "trade-off", "step", "detail", "example",
    "context",
]  # fmt: skip


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def sentence(rng: random.Random, n: int) -> str:
    return words(rng, n).capitalize() + "."


def fit(text: str, tail_words: list[str], chars: int) -> str:
    """`text` plus as many `tail_words` as fit, then padded with `x`/trimmed to `chars`."""
    out = text
    for word in tail_words:
        if len(out) + 1 + len(word) > chars - 1:
            break
        out += " " + word
    out += "."
    return (out + " " + "x" * chars)[:chars] if len(out) < chars else out[:chars]


def markdown_output(rng: random.Random, chars: int) -> str:
    """About `chars` characters of typical assistant Markdown, then a closing paragraph that
    makes it exactly `chars` long."""
    parts = [
        f"## {words(rng, 3).title()}",
        f"{sentence(rng, 14)} It uses **{words(rng, 2)}** and *{words(rng, 2)}*, and calls "
        f"`{rng.choice(WORDS)}_{rng.choice(WORDS)}()` once per {rng.choice(WORDS)}.",
        f"### {words(rng, 2).title()}",
        "\n".join(f"{i}. {sentence(rng, rng.randint(6, 12))}" for i in range(1, 5)),
        "\n".join(
            f"- **{rng.choice(WORDS)}**: {sentence(rng, rng.randint(5, 9))}\n"
            f"  - {sentence(rng, rng.randint(4, 7))}"
            for _ in range(3)
        ),
        "| Option | Cost (ms) | Notes |\n|---|---:|---|\n"
        + "\n".join(
            f"| {rng.choice(WORDS)} | {rng.randint(1, 900)} | {words(rng, rng.randint(3, 6))} |"
            for _ in range(5)
        ),
        "```python\n"
        + "\n".join(
            f"def {rng.choice(WORDS)}_{i}(items):\n"
            f"    total = sum(x.{rng.choice(WORDS)} for x in items)\n"
            f"    return total / max(1, len(items))  # {words(rng, 3)}\n"
            for i in range(3)
        )
        + "```",
        f"> {sentence(rng, 16)}",
        f"### {words(rng, 2).title()}",
    ]
    while sum(len(p) + 2 for p in parts) < chars - 400:
        parts.append(sentence(rng, rng.randint(10, 18)) + " " + sentence(rng, 12))
    head = "\n\n".join(parts) + "\n\n" + sentence(rng, 4)[:-1]
    return fit(head, [rng.choice(WORDS) for _ in range(200)], chars)


def plain_output(rng: random.Random, chars: int) -> str:
    """Plain prose paragraphs (no Markdown syntax) of exactly `chars` characters."""
    paragraphs = []
    while sum(len(p) + 2 for p in paragraphs) < chars - 400:
        paragraphs.append(" ".join(sentence(rng, rng.randint(8, 16)) for _ in range(4)))
    head = "\n\n".join(paragraphs) + "\n\n" + sentence(rng, 4)[:-1]
    return fit(head, [rng.choice(WORDS) for _ in range(200)], chars)


def records(flow: str, n: int, chars: int, seed: int) -> list[dict]:
    rng = random.Random(f"{flow}-{seed}")
    make = markdown_output if flow == "markdown" else plain_output
    return [
        {
            "id": f"{flow}-{i:05d}",
            "prompt": f"Question {i}: compare two ways to cut the latency of a web page.",
            "base": make(rng, chars),
            "tuned": make(rng, chars),
        }
        for i in range(n)
    ]


def seed_database(url: str, *, items: int, chars: int, seed: int) -> dict[str, str]:
    """One rater and one open study per flow (overlap 1); returns flow -> study public id."""
    import json

    common.django_setup(url)
    from annotations import services
    from annotations.importers import parse_jsonl

    services.user_create(username=USERNAME, password=PASSWORD, role="rater")
    public_ids = {}
    for flow in ("markdown", "plain"):
        study = services.study_create(
            slug=f"bench-page-{flow}",
            name=f"Rating page benchmark ({flow})",
            task_type="generation",
            overlap=1,
            status="open",
            base_model="bench-base",
            tuned_model="bench-tuned",
        )
        lines = "\n".join(json.dumps(r) for r in records(flow, items, chars, seed)) + "\n"
        parsed = parse_jsonl(lines.encode(), file=f"{flow}.jsonl")
        if not parsed.ok:
            raise SystemExit(f"bench data did not import: {parsed.issues[:3]}")
        services.items_import(study=study, parsed=parsed, source=f"{flow}.jsonl")
        services.raters_assign(study=study, usernames=[USERNAME])
        public_ids[flow] = str(study.public_id)
    from django import db

    db.connections.close_all()  # the server writes to this SQLite file from now on
    return public_ids


def judgments_saved() -> dict[str, int]:
    from annotations.models import Judgment

    return {
        flow: Judgment.objects.filter(
            rater__username=USERNAME, item__study__slug=f"bench-page-{flow}"
        ).count()
        for flow in ("markdown", "plain")
    }


def wsgi_app():
    """gunicorn's app factory here: Django's WSGI application behind the static-files handler
    that ``runserver`` uses (DEBUG=1 serves /static/ from the source folders, no collectstatic)."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.wsgi import get_wsgi_application

    return StaticFilesHandler(get_wsgi_application())


def start_server(url: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = common.django_env(
        url, DEBUG="1", ALLOWED_HOSTS="127.0.0.1", DJANGO_SETTINGS_MODULE="evalplatform.settings"
    )
    handle = log.open("w")
    process = subprocess.Popen(
        [
            GUNICORN,
            "bench_rater_page:wsgi_app()",
            "--pythonpath",
            str(Path(__file__).resolve().parent),
            "--bind",
            f"127.0.0.1:{port}",
            *SERVER_ARGS,
        ],
        cwd=common.REPO,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"{base}/login/", timeout=5) as response:
                if response.status == 200:
                    return process, base
        except OSError:
            time.sleep(0.3)
    process.terminate()
    raise SystemExit(f"gunicorn did not answer within 60 s; see {log}")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_ready(page, read_s: float) -> None:
    """Until the last paint is `read_s` old and no fetch is in flight (the prefetch landed)."""
    page.wait_for_function("window.__bench.lastPaint !== null")
    age_s = page.evaluate("(performance.now() - window.__bench.lastPaint) / 1000")
    if age_s < read_s:
        time.sleep(read_s - age_s)
    page.wait_for_function("window.__inflight === 0")


def run_block(page, base: str, public_id: str, n: int, read_s: float, flow: str) -> list[dict]:
    page.goto(f"{base}/rate/{public_id}/")
    page.wait_for_selector("#pair", state="visible")
    marks: list[dict] = []
    for i in range(n):
        wait_ready(page, read_s)
        if flow == "markdown" and i == 0:
            for slot in ("#slot-1", "#slot-2"):
                if page.locator(f"{slot} table").count() != 1:
                    raise SystemExit(f"FAIL: no rendered table in {slot} of the markdown flow")
                if page.locator(f"{slot} pre code").count() != 1:
                    raise SystemExit(f"FAIL: no rendered code block in {slot}")
        before = page.evaluate("window.__bench.marks.length")
        page.keyboard.press("1" if i % 2 == 0 else "2")
        page.wait_for_function(f"window.__bench.marks.length > {before}")
        marks.append(page.evaluate(f"window.__bench.marks[{before}]"))
    return marks


def summary(label: str, marks: list[dict]) -> tuple[float, float]:
    total = [m["paint"] - m["key"] for m in marks]
    to_dom = [m["dom"] - m["key"] for m in marks]
    to_paint = [m["paint"] - m["dom"] for m in marks]
    median, p95 = statistics.median(total), common.percentile(total, 95)
    print(
        f"  {label:9s} n={len(total):4d}  key->paint median {median:6.1f} ms  p95 {p95:6.1f} ms  "
        f"max {max(total):6.1f} ms  | key->DOM median {statistics.median(to_dom):6.1f} "
        f"p95 {common.percentile(to_dom, 95):6.1f}  | DOM->paint median "
        f"{statistics.median(to_paint):5.1f} p95 {common.percentile(to_paint, 95):5.1f} ms"
    )
    calls: dict[str, list[float]] = {}
    for mark in marks:
        for fetch in mark["fetches"]:
            kind = "POST judgment" if fetch["what"].startswith("POST") else "GET counter"
            calls.setdefault(kind, []).append(fetch["ms"])
    print(
        "            inside key->DOM, fetch round trips: "
        + ", ".join(
            f"{kind} median {statistics.median(ms):.1f} p95 {common.percentile(ms, 95):.1f} ms"
            for kind, ms in sorted(calls.items(), reverse=True)
        )
    )
    return median, p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=200, help="measured pairs per flow")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured pairs per flow first")
    parser.add_argument("--block", type=int, default=25, help="pairs per block (flows alternate)")
    parser.add_argument("--chars", type=int, default=4_000, help="characters per output")
    parser.add_argument("--read-ms", type=float, default=350.0, help="wait between pairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pg",
        default=None,
        help="PostgreSQL server URL (e.g. postgresql://postgres@127.0.0.1:5432); default SQLite",
    )
    parser.add_argument("--db", default="bench_rater_page", help="with --pg (must start bench_)")
    parser.add_argument("--smoke", action="store_true", help="10 pairs per flow")
    args = parser.parse_args()
    if args.smoke:
        args.pairs, args.warmup, args.block = 10, 1, 5
        args.db = common.smoke_name(args.db)
    common.check_bench_name(args.db)
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        raise SystemExit(
            "the playwright Python package is missing (pip install playwright)"
        ) from exc

    print(f"reproduce: {common.reproduce_line()}")
    blocks = -(-args.pairs // args.block) + 1  # + the warm-up block
    # Every block's first page load leases a pair, and its prefetch another.
    items = args.pairs + args.warmup + 2 * blocks + 10
    with tempfile.TemporaryDirectory(prefix="bench_rater_page_") as folder:
        if args.pg:
            url = common.database_url(args.pg, args.db)
            database = f"PostgreSQL {url}"
            common.drop_at_exit(args.pg, args.db)
            common.database_recreate(args.pg, args.db)
        else:
            url = f"sqlite:///{folder}/db.sqlite3"
            database = f"SQLite {folder}/db.sqlite3"
        measure(args, url, database, items, folder)


def measure(args, url: str, database: str, items: int, folder: str) -> None:
    """Set-up, both flows in the browser, then the figures and checks."""
    from playwright.sync_api import sync_playwright

    started = time.perf_counter()
    common.migrate(url)
    public_ids = seed_database(url, items=items, chars=args.chars, seed=args.seed)
    print(
        f"set-up: {database} migrated and seeded in "
        f"{time.perf_counter() - started:.1f} s: 1 rater, 2 open studies of {items} items "
        f"(overlap 1), outputs of {args.chars:,} characters on both sides"
    )
    process, base = start_server(url, Path(folder) / "gunicorn.log")
    marks: dict[str, list[dict]] = {"markdown": [], "plain": []}
    errors: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            context = browser.new_context(viewport=VIEWPORT)
            context.set_default_timeout(TIMEOUT_MS)
            context.add_init_script(INIT_SCRIPT)
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            print(
                f"server: gunicorn {' '.join(SERVER_ARGS)} (DEBUG=1, static files through "
                f"runserver's handler) at {base}; "
                f"browser: {CHROMIUM} {browser.version} headless, "
                f"{VIEWPORT['width']}x{VIEWPORT['height']}"
            )
            page.goto(f"{base}/login/")
            page.fill("input[name=username]", USERNAME)
            page.fill("input[name=password]", PASSWORD)
            page.click("form.card button[type=submit]")
            page.wait_for_url(lambda u: "/login/" not in u)

            read_s = args.read_ms / 1000
            for flow in ("markdown", "plain"):  # warm-up, not counted
                run_block(page, base, public_ids[flow], args.warmup, read_s, flow)
            started = time.perf_counter()
            for index, first in enumerate(range(0, args.pairs, args.block)):
                n = min(args.block, args.pairs - first)
                flows = ("markdown", "plain") if index % 2 == 0 else ("plain", "markdown")
                for flow in flows:
                    marks[flow] += run_block(page, base, public_ids[flow], n, read_s, flow)
            measured_s = time.perf_counter() - started
            browser.close()
    finally:
        stop_server(process)
    saved = judgments_saved()

    judged = args.pairs + args.warmup
    print(
        f"measured {args.pairs} pairs per flow after {args.warmup} warm-up, in blocks of "
        f"{args.block} alternating between the flows, waiting {args.read_ms:.0f} ms and for a "
        f"quiet network between pairs (not counted); {measured_s:.0f} s"
    )
    print("keydown -> next pair painted (first frame after its DOM update):")
    md_median, md_p95 = summary("markdown", marks["markdown"])
    plain_median, plain_p95 = summary("plain", marks["plain"])
    print(
        f"ratio markdown/plain: median {md_median / plain_median:.2f}x, "
        f"p95 {md_p95 / plain_p95:.2f}x"
    )
    print(
        f"target p95 <= {TARGET_P95_MS:.0f} ms (markdown): "
        f"{'MET' if md_p95 <= TARGET_P95_MS else 'MISSED'}"
    )
    print(f"judgments saved: {saved} (expected {judged} per flow); page errors: {len(errors)}")
    failures = [f"{flow}: {n} saved" for flow, n in saved.items() if n != judged]
    failures += [f"page error: {e}" for e in errors]
    if failures:
        raise SystemExit("FAIL: " + "; ".join(failures))


if __name__ == "__main__":
    main()
