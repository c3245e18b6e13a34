"""A self-contained HTML sign-off record for the release ticket: who decided what, on which
report (its SHA-256), under which policy, with every criterion and its evidence."""

from __future__ import annotations

import json
from html import escape

from annotations.errors import NotFoundError
from scoring.models import SignOff, SignOffInvalidation

STYLE = """
body{font:14px/1.5 system-ui,sans-serif;max-width:900px;margin:2rem auto;color:#1b1f24}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #d5dae0;padding:.3rem .5rem;text-align:left}
.pass{color:#176f2c;font-weight:600}.fail{color:#a11;font-weight:600}.stale{background:#fff3cd;padding:.6rem}
code,pre{font:12px monospace;background:#f0f2f5;padding:.1rem .3rem;overflow-wrap:anywhere}pre{padding:.6rem;white-space:pre-wrap}
"""


def render_signoff_record(*, signoff_id: int) -> str:
    signoff = (
        SignOff.objects.select_related("study", "run", "signed_by").filter(pk=signoff_id).first()
    )
    if signoff is None:
        raise NotFoundError(f"no sign-off {signoff_id}")
    invalidation = SignOffInvalidation.objects.filter(signoff=signoff).first()
    rows = "".join(
        f'<tr><td>{escape(c["name"])}</td><td class="{"pass" if c["passed"] else "fail"}">'
        f"{'pass' if c['passed'] else 'fail'}</td><td>{'required' if c.get('required', True) else 'informational'}"
        f"</td><td>{escape(str(c.get('evidence', '')))}</td></tr>"
        for c in signoff.criteria
    )
    stale = (
        f'<p class="stale"><strong>Stale</strong> since {escape(invalidation.created_at.isoformat())}: '
        f"{escape(invalidation.reason)}; the evidence now hashes to <code>{escape(invalidation.new_report_sha256)}</code>.</p>"
        if invalidation
        else ""
    )
    run = escape(signoff.run.run_id) if signoff.run else "–"
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Sign-off {signoff.pk}: {escape(signoff.study.name)}</title><style>{STYLE}</style></head><body>
<h1>Release sign-off record</h1>{stale}
<table>
<tr><th>Study</th><td>{escape(signoff.study.name)} (<code>{escape(signoff.study.slug)}</code>)</td></tr>
<tr><th>Training run</th><td>{run}</td></tr>
<tr><th>Base / tuned</th><td>{escape(signoff.study.base_model)} / {escape(signoff.study.tuned_model)}</td></tr>
<tr><th>Decision</th><td class="{"pass" if signoff.decision == "approve" else "fail"}">{escape(signoff.decision)}</td></tr>
<tr><th>By</th><td>{escape(signoff.signed_by.username)}</td></tr>
<tr><th>When</th><td>{escape(signoff.created_at.isoformat())}</td></tr>
<tr><th>Comment</th><td>{escape(signoff.comment)}</td></tr>
<tr><th>Report SHA-256</th><td><code>{escape(signoff.report_sha256)}</code></td></tr>
</table>
<h2>Criteria</h2><table><tr><th>Criterion</th><th>Result</th><th></th><th>Evidence</th></tr>{rows}</table>
<h2>Policy</h2><pre>{escape(json.dumps(signoff.policy, indent=2, sort_keys=True))}</pre>
<h2>Approved report (canonical JSON)</h2>
<p>Hash this text with SHA-256 to check it against the record.</p>
<pre>{escape(signoff.report_json)}</pre>
</body></html>"""
