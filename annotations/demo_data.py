"""The demo study: realistic base vs tuned outputs of a customer-support assistant fine-tune,
across generation, classification and structured-output items."""

from __future__ import annotations

from typing import Any

DEMO_STUDY = {
    "slug": "demo-support-assistant",
    "name": "Support assistant: base vs tuned (demo)",
    "task_type": "generation",
    "overlap": 3,
    "base_model": "demo/base-7b",
    "tuned_model": "demo/support-tuned-7b",
    "instructions": (
        "Read the prompt, then both responses. Choose the response that answers the user "
        "correctly, completely and politely. Prefer correct over long. Use Tie when both are "
        "equally good and Both bad when neither is acceptable."
    ),
    "gold_rate": 0.1,
    "min_time_ms": 3000,
}

GENERATION: list[dict[str, Any]] = [
    {
        "id": "gen-001",
        "prompt": "How do I reset my password if I no longer have access to my recovery email?",
        "base": "You can reset your password from the login page by clicking 'Forgot password'.",
        "tuned": (
            "If you can't reach your recovery email:\n"
            "1. On the login page choose 'Forgot password' and then 'I no longer have access'.\n"
            "2. Verify your identity with the phone number on your account, or answer the "
            "security questions.\n"
            "3. If neither works, contact support with a photo ID; we restore access within "
            "two business days."
        ),
        "reference": "Use 'Forgot password' > 'I no longer have access', verify by phone or "
        "security questions, otherwise contact support with ID.",
    },
    {
        "id": "gen-002",
        "prompt": "Summarise our refund policy in two sentences for a customer.",
        "base": (
            "Refunds are available. Please contact support. Our refund policy is designed to "
            "be fair. We value your business. Refunds may take time."
        ),
        "tuned": (
            "You can request a full refund within 30 days of purchase if the product is unused. "
            "Once approved, the money is returned to your original payment method within "
            "5-7 business days."
        ),
        "reference": "Full refund within 30 days for unused products; money returned to the "
        "original payment method in 5-7 business days.",
    },
    {
        "id": "gen-003",
        "prompt": "Write a short apology to a customer whose order arrived two weeks late.",
        "base": (
            "Dear customer, we are sorry your order was late. We apologise for any "
            "inconvenience. Regards."
        ),
        "tuned": (
            "Hi Sam,\n\nI'm sorry your order arrived two weeks later than promised - that's not "
            "the experience we want you to have. I've refunded your shipping fee and added a "
            "10% discount code (SORRY10) to your account for next time.\n\nThanks for your "
            "patience,\nAlex from Support"
        ),
        "reference": "",
    },
    {
        "id": "gen-004",
        "prompt": "Explain the difference between a process and a thread to a junior developer.",
        "base": (
            "A process is an independent program in execution with its own memory space. A "
            "thread is a unit of execution inside a process; threads of the same process share "
            "memory, which makes communication cheap but requires synchronisation such as locks."
        ),
        "tuned": (
            "A process is a running program with its own memory. A thread lives inside a "
            "process and shares that memory with the process's other threads, so threads are "
            "cheaper to create and talk to each other easily, but you must guard shared data "
            "with locks to avoid race conditions."
        ),
        "reference": "Processes have separate memory; threads share their process's memory and "
        "need synchronisation.",
    },
    {
        "id": "gen-005",
        "prompt": "Write a Python function that returns the n-th Fibonacci number iteratively.",
        "base": (
            "```python\ndef fib(n):\n    if n <= 1:\n        return n\n    return fib(n - 1) + "
            "fib(n - 2)\n```"
        ),
        "tuned": (
            "```python\ndef fib(n: int) -> int:\n    a, b = 0, 1\n    for _ in range(n):\n"
            "        a, b = b, a + b\n    return a\n```\nThis runs in O(n) time and O(1) memory."
        ),
        "reference": "",
        "metadata": {"tests": "assert fib(0) == 0\nassert fib(1) == 1\nassert fib(10) == 55"},
    },
    {
        "id": "gen-006",
        "prompt": "Our API returns HTTP 429. What does it mean and what should the client do?",
        "base": (
            "429 means Too Many Requests: the client sent too many requests in a given time. "
            "It should wait and retry, ideally honouring the Retry-After header and backing "
            "off exponentially."
        ),
        "tuned": "429 is a server error. Retry immediately until it works.",
        "reference": "Too Many Requests: rate limited; back off and retry after Retry-After.",
    },
    {
        "id": "gen-007",
        "prompt": "Draft a one-line status page update for a partial outage of the search feature.",
        "base": "Search is down.",
        "tuned": (
            "Investigating: some users see errors or slow results when searching; all other "
            "features work normally. Next update in 30 minutes."
        ),
        "reference": "",
    },
    {
        "id": "gen-008",
        "prompt": "Translate into French: 'Your package will be delivered tomorrow before noon.'",
        "base": "Votre colis sera livré demain avant midi.",
        "tuned": "Votre colis sera livré demain avant midi.",
        "reference": "Votre colis sera livré demain avant midi.",
    },
    {
        "id": "gen-009",
        "prompt": "What is the capital of Australia?",
        "base": "The capital of Australia is Sydney.",
        "tuned": "Canberra is the capital of Australia.",
        "reference": "Canberra",
    },
    {
        "id": "gen-010",
        "prompt": "Give three tips for writing a good bug report.",
        "base": (
            "1. Say exactly how to reproduce it, step by step.\n2. Describe what you expected "
            "and what happened instead.\n3. Include versions, logs and screenshots."
        ),
        "tuned": (
            "- Steps to reproduce.\n- Expected vs actual result.\n- Environment details "
            "(version, OS, browser) and any logs."
        ),
        "reference": "Reproduction steps; expected vs actual; environment and logs.",
    },
    {
        "id": "gen-011",
        "prompt": "A customer asks whether they can change the delivery address after ordering.",
        "base": "No.",
        "tuned": (
            "Yes, as long as the order hasn't shipped yet. Go to Orders > Order details > "
            "Change address. If it has already shipped, reply here and we'll ask the courier to "
            "redirect it."
        ),
        "reference": "Yes before shipping via Orders > Change address; after shipping contact "
        "support to redirect.",
    },
    {
        "id": "gen-012",
        "prompt": "Write a SQL query that counts orders per customer, highest first.",
        "base": (
            "```sql\nSELECT customer_id, COUNT(*) AS orders\nFROM orders\nGROUP BY customer_id\n"
            "ORDER BY orders DESC;\n```"
        ),
        "tuned": (
            "```sql\nSELECT customer_id, COUNT(*) AS order_count\nFROM orders\nGROUP BY "
            "customer_id\nORDER BY order_count DESC;\n```"
        ),
        "reference": "SELECT customer_id, COUNT(*) FROM orders GROUP BY customer_id ORDER BY 2 DESC",
    },
    {
        "id": "gen-013",
        "prompt": "A user says the mobile app drains their battery. Suggest first troubleshooting steps.",
        "base": (
            "Check whether background refresh is on for the app, update to the latest version, "
            "and look at the battery usage screen to confirm the app is the cause. If it is, "
            "send us the diagnostics from Settings > Help > Send logs."
        ),
        "tuned": "Uninstall the app.",
        "reference": "Update the app, check background refresh and battery usage, send logs.",
    },
    {
        "id": "gen-014",
        "prompt": "Rewrite more politely: 'You didn't read the docs. The answer is there.'",
        "base": "Read the docs again, the answer is in there.",
        "tuned": (
            "Good question! This is covered in our documentation under 'Getting started > "
            "Authentication' - here is the direct link. Let me know if anything there is unclear."
        ),
        "reference": "",
    },
    {
        "id": "gen-015",
        "prompt": "What does GDPR's 'right to erasure' let a customer ask for?",
        "base": (
            "It lets a person ask a company to delete their personal data, for example when it "
            "is no longer needed for the purpose it was collected for or when they withdraw "
            "consent, subject to exceptions such as legal obligations to keep records."
        ),
        "tuned": (
            "The right to erasure (Article 17) lets a customer ask us to delete their personal "
            "data when it is no longer needed, consent is withdrawn, or it was processed "
            "unlawfully; we may keep what the law requires, such as invoices."
        ),
        "reference": "Deletion of personal data (Art. 17) when no longer needed, consent withdrawn "
        "or unlawful processing, with legal exceptions.",
    },
    {
        "id": "gen-016",
        "prompt": "Write a regular expression that matches a UK postcode like 'SW1A 1AA'.",
        "base": "[A-Z]{2}[0-9][A-Z] [0-9][A-Z]{2}",
        "tuned": (
            "`^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$` - it accepts the common formats "
            "(e.g. 'SW1A 1AA', 'M1 1AE', 'B33 8TH'), with or without the space."
        ),
        "reference": "",
    },
]

CLASSIFICATION: list[dict[str, Any]] = [
    {
        "id": "cls-001",
        "text": "I was charged twice for my subscription this month.",
        "label": "billing",
        "base": "billing",
        "tuned": "billing",
    },
    {
        "id": "cls-002",
        "text": "The app crashes every time I open the camera screen.",
        "label": "bug",
        "base": "account",
        "tuned": "bug",
    },
    {
        "id": "cls-003",
        "text": "How do I add a second user to my team plan?",
        "label": "account",
        "base": "account",
        "tuned": "account",
    },
    {
        "id": "cls-004",
        "text": "Please cancel my order #4412, I bought the wrong size.",
        "label": "order",
        "base": "billing",
        "tuned": "order",
    },
    {
        "id": "cls-005",
        "text": "It would be great if you supported dark mode.",
        "label": "feature_request",
        "base": "bug",
        "tuned": "feature_request",
    },
    {
        "id": "cls-006",
        "text": "My invoice shows the wrong VAT number.",
        "label": "billing",
        "base": "billing",
        "tuned": "account",
    },
    {
        "id": "cls-007",
        "text": "I can't log in since I changed my phone.",
        "label": "account",
        "base": "account",
        "tuned": "account",
    },
    {
        "id": "cls-008",
        "text": "Where is my parcel? Tracking hasn't updated in 5 days.",
        "label": "order",
        "base": "order",
        "tuned": "order",
    },
    {
        "id": "cls-009",
        "text": "Export to CSV produces an empty file.",
        "label": "bug",
        "base": "bug",
        "tuned": "bug",
    },
    {
        "id": "cls-010",
        "text": "Could you add an API endpoint for bulk invoices?",
        "label": "feature_request",
        "base": "billing",
        "tuned": "feature_request",
    },
]

STRUCTURED: list[dict[str, Any]] = [
    {
        "id": "json-001",
        "text": "Hi, I'm Maria Lopez, order 88123, the blender arrived broken. I'd like a replacement.",
        "base": '{"name": "Maria Lopez", "order_id": "88123", "issue": "broken", request: replacement}',
        "tuned": '{"name": "Maria Lopez", "order_id": "88123", "issue": "arrived broken", "request": "replacement"}',
    },
    {
        "id": "json-002",
        "text": "This is John Park. Order 55102 never arrived, please refund me.",
        "base": '{"name": "John Park", "order_id": "55102", "issue": "not delivered", "request": "refund"}',
        "tuned": '{"name": "John Park", "order_id": "55102", "issue": "never arrived", "request": "refund"}',
    },
    {
        "id": "json-003",
        "text": "Aiko Tanaka here - order 70007 has the wrong colour, can I exchange it?",
        "base": "Name: Aiko Tanaka\nOrder: 70007\nIssue: wrong colour\nRequest: exchange",
        "tuned": '{"name": "Aiko Tanaka", "order_id": "70007", "issue": "wrong colour", "request": "exchange"}',
    },
    {
        "id": "json-004",
        "text": "Order 90210, from Lee Chen: the charger is missing from the box. Please send one.",
        "base": '{"name": "Lee Chen", "order_id": 90210, "issue": "missing charger", "request": "send part"}',
        "tuned": '```json\n{"name": "Lee Chen", "order_id": "90210", "issue": "charger missing", "request": "send missing part"}\n```',
    },
    {
        "id": "json-005",
        "text": "Hello, Priya Nair, order 31337. Item is fine but I was overcharged by $12.",
        "base": '{"name": "Priya Nair", "order_id": "31337", "issue": "overcharged $12", "request": "refund difference"}',
        "tuned": '{"name": "Priya Nair", "order_id": "31337", "issue": "overcharged by $12", "request": "partial refund"}',
    },
]

GOLD: list[dict[str, Any]] = [
    {
        "id": "gold-001",
        "prompt": "What is 12 x 12?",
        "base": "12 x 12 = 144.",
        "tuned": "12 x 12 = 124.",
        "gold": "base",
    },
    {
        "id": "gold-002",
        "prompt": "Name the largest planet in the Solar System.",
        "base": "The largest planet is Mars.",
        "tuned": "Jupiter is the largest planet in the Solar System.",
        "gold": "tuned",
    },
]

CLASSIFY_PROMPT = (
    "Classify the support ticket into one of: billing, bug, account, order, feature_request. "
    "Answer with the label only.\n\nTicket: {text}"
)
EXTRACT_PROMPT = (
    'Extract a JSON object with keys "name", "order_id" (string), "issue" and "request" from '
    "the customer message. Answer with JSON only.\n\nMessage: {text}"
)


def demo_records() -> list[dict[str, Any]]:
    """The demo items in the JSONL import shape."""
    records: list[dict[str, Any]] = []
    for row in GENERATION:
        record = {
            k: v
            for k, v in row.items()
            if k in ("id", "prompt", "base", "tuned", "reference", "metadata")
        }
        record["task"] = "generation"
        records.append(record)
    for row in CLASSIFICATION:
        records.append(
            {
                "id": row["id"],
                "task": "classification",
                "prompt": CLASSIFY_PROMPT.format(text=row["text"]),
                "base": row["base"],
                "tuned": row["tuned"],
                "label": row["label"],
            }
        )
    for row in STRUCTURED:
        records.append(
            {
                "id": row["id"],
                "task": "structured",
                "prompt": EXTRACT_PROMPT.format(text=row["text"]),
                "base": row["base"],
                "tuned": row["tuned"],
            }
        )
    for row in GOLD:
        records.append({**row, "task": "generation"})
    return records


DEMO_USERS = [
    ("researcher", "researcher", "lab-demo-pass"),
    ("rater1", "rater", "rate-demo-1"),
    ("rater2", "rater", "rate-demo-2"),
    ("rater3", "rater", "rate-demo-3"),
    ("admin", "admin", "admin-demo"),
    ("releaseowner", "release_owner", "sign-demo-pass"),
]
