"""Judge prompt templates, strict answer parsing and position-swap logic (pure Python).

Formats provided (``TEMPLATES``):

* ``mtbench_pairwise`` / ``mtbench_pairwise_reference``: the pairwise judge of MT-Bench
  (Zheng et al., 2023, "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena", prompts
  ``pair-v2`` and ``pair-math-v1``), verdict ``[[A]]`` / ``[[B]]`` / ``[[C]]`` (tie). One deliberate
  change: the paper asks for an explanation *before* the verdict; these variants ask for the
  verdict only, so that a single next-token distribution (or a few generated tokens) carries it.
  ``mtbench_pairwise_explained`` keeps the paper's explanation-first wording verbatim for
  generate-then-parse judging with a long ``max_new_tokens``.
* ``alpacaeval_pairwise``: AlpacaEval 2.0 style (``weighted_alpaca_eval_gpt4_turbo``): the judge
  names the better output with a single token, ``m`` (first) or ``M`` (second), and the
  preference is ``P(first) / (P(first) + P(second))``.
* ``prometheus_absolute`` / ``prometheus_absolute_reference``: Prometheus 2 (Kim et al., 2024)
  direct assessment against a rubric with five score descriptions, ``[RESULT] n`` with n in 1-5.
* ``prometheus_relative`` / ``prometheus_relative_reference``: Prometheus 2 pairwise ranking,
  ``[RESULT] A`` or ``[RESULT] B``.
* ``geval_absolute``: G-Eval style (Liu et al., 2023) form-filling grading on 1-10, where the
  score is the probability-weighted mean over the score tokens, ``sum_s s * p(s)``.

Every template renders with ``render(question, answer_1, answer_2=None, reference=None,
rubric=None)`` into a :class:`RenderedPrompt` (system text, user text and the *answer prefix*:
the text right before the verdict, e.g. ``[[``, that a local model is forced to continue from).
The candidate answers are ``labels`` (e.g. ``A``/``B``/``C``); ``label_separator`` and
``label_suffix`` are the text between prefix and label and after the label, which keep the
candidate continuations prefix-free (``[[1]]`` vs ``[[10]]``).

Templates are editable: :meth:`JudgeTemplate.with_text` (or :func:`template_from_settings`)
takes a study's own system/user text with the same ``{placeholders}``; unknown or missing
placeholders raise :class:`~scoring.lm.errors.TemplateError`. Literal braces must be doubled
(``{{`` / ``}}``), as with :meth:`str.format`.

Position swap: a pairwise judge is run in both orders. :func:`combine_swapped` turns the two
"first answer is better" probabilities into one :class:`Verdict`; :func:`combine_for_tuned`
expresses it as the probability that the *tuned* model is preferred.

This module imports neither torch nor Django.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from scoring.lm.errors import JudgeParseError, TemplateError

PLACEHOLDERS = ("question", "answer_1", "answer_2", "reference", "rubric")

Kind = Literal["pairwise", "absolute"]


@dataclass(frozen=True)
class Rubric:
    """A Prometheus-style rubric: one criterion and descriptions for scores 1 to 5."""

    criteria: str
    score_descriptions: tuple[str, str, str, str, str]

    def render(self, *, with_scores: bool = True) -> str:
        """Prometheus layout: ``[criteria]`` then ``Score n: description`` lines."""
        lines = [f"[{self.criteria}]"]
        if with_scores:
            lines += [f"Score {i}: {d}" for i, d in enumerate(self.score_descriptions, start=1)]
        return "\n".join(lines)


DEFAULT_RUBRIC = Rubric(
    criteria="Does the response address the user's question helpfully, accurately and completely?",
    score_descriptions=(
        "The response is irrelevant, wrong or unhelpful for the question.",
        "The response touches on the question but is mostly unhelpful or contains major errors.",
        "The response is partly helpful and correct but misses important parts of the question.",
        "The response is helpful and correct with only minor omissions or inaccuracies.",
        "The response fully, accurately and helpfully answers the question.",
    ),
)


@dataclass(frozen=True)
class RenderedPrompt:
    """A filled-in judge prompt.

    Attributes:
        system: system message text ("" for none).
        user: user message text.
        answer_prefix: text the verdict follows (``[[``, ``[RESULT]`` or ``""``); a local judge
            appends it to the assistant turn and reads the next token.
        template_name: name of the template that produced it.
    """

    system: str
    user: str
    answer_prefix: str
    template_name: str

    def messages(self) -> list[dict[str, str]]:
        """Chat messages (system message omitted when empty)."""
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return [*msgs, {"role": "user", "content": self.user}]


@dataclass(frozen=True)
class JudgeTemplate:
    """A judge prompt format together with how its answer is read.

    Attributes:
        name: identifier (stored with results and part of the cache key).
        kind: ``"pairwise"`` (two answers) or ``"absolute"`` (grade ``answer_1`` alone).
        system, user: message texts with ``{placeholders}`` from :data:`PLACEHOLDERS`.
        answer_prefix: text right before the verdict label.
        labels: candidate verdict strings.
        label_separator: text between prefix and label (``" "`` for ``[RESULT] 3``).
        label_suffix: text right after the label (``"]]"``); makes the candidates prefix-free.
        first_label, second_label, tie_label: pairwise meaning of the labels.
        scores: absolute kind: the numeric score of each label (same order as ``labels``).
        max_new_tokens: generation budget for generate-then-parse and HTTP judges.
        rubric_style: ``"full"`` renders a :class:`Rubric` with score lines, ``"criteria"``
            only its criterion (Prometheus relative grading).
    """

    name: str
    kind: Kind
    system: str
    user: str
    answer_prefix: str
    labels: tuple[str, ...]
    label_separator: str = ""
    label_suffix: str = ""
    first_label: str | None = None
    second_label: str | None = None
    tie_label: str | None = None
    scores: tuple[float, ...] | None = None
    max_new_tokens: int = 16
    rubric_style: Literal["full", "criteria"] = "full"
    _fields: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = _placeholders(self.system, f"{self.name}.system") | _placeholders(
            self.user, f"{self.name}.user"
        )
        required = {"question", "answer_1"} | ({"answer_2"} if self.kind == "pairwise" else set())
        missing = required - fields
        if missing:
            raise TemplateError(
                f"template {self.name!r} lacks required placeholder(s) "
                f"{', '.join('{' + m + '}' for m in sorted(missing))}"
            )
        if self.kind == "absolute" and "answer_2" in fields:
            raise TemplateError(f"absolute template {self.name!r} must not use {{answer_2}}")
        if len(set(self.labels)) != len(self.labels) or len(self.labels) < 2:
            raise TemplateError(f"template {self.name!r} needs at least two distinct labels")
        if self.kind == "pairwise":
            if self.first_label not in self.labels or self.second_label not in self.labels:
                raise TemplateError(f"template {self.name!r}: first/second label not in labels")
            if self.tie_label is not None and self.tie_label not in self.labels:
                raise TemplateError(f"template {self.name!r}: tie label not in labels")
        elif self.scores is None or len(self.scores) != len(self.labels):
            raise TemplateError(f"absolute template {self.name!r} needs one score per label")
        if self.max_new_tokens < 1:
            raise TemplateError("max_new_tokens must be positive")
        object.__setattr__(self, "_fields", frozenset(fields))

    # -- rendering -------------------------------------------------------------------------

    @property
    def placeholders(self) -> frozenset[str]:
        """The placeholders this template uses."""
        return self._fields

    def render(
        self,
        question: str,
        answer_1: str,
        answer_2: str | None = None,
        reference: str | None = None,
        rubric: str | Rubric | None = None,
    ) -> RenderedPrompt:
        """Fill in the template.

        ``answer_1`` is the answer shown first (or the graded answer for absolute templates).
        Inputs the template does not use are ignored; a missing rubric falls back to
        :data:`DEFAULT_RUBRIC`.

        Raises:
            TemplateError: the template needs ``answer_2`` or ``reference`` and got None.
        """
        if "answer_2" in self._fields and answer_2 is None:
            raise TemplateError(f"template {self.name!r} is pairwise and needs answer_2")
        if "reference" in self._fields and reference is None:
            raise TemplateError(f"template {self.name!r} needs a reference answer")
        if rubric is None:
            rubric = DEFAULT_RUBRIC
        if isinstance(rubric, Rubric):
            rubric = rubric.render(with_scores=self.rubric_style == "full")
        values = {
            "question": question,
            "answer_1": answer_1,
            "answer_2": answer_2 or "",
            "reference": reference or "",
            "rubric": rubric,
        }
        # str.format substitutes values without re-parsing them, so braces inside answers
        # (code, JSON) are safe.
        return RenderedPrompt(
            system=self.system.format(**values),
            user=self.user.format(**values),
            answer_prefix=self.answer_prefix,
            template_name=self.name,
        )

    def continuations(self) -> dict[str, str]:
        """Label -> the exact text that follows ``answer_prefix`` for that verdict."""
        return {lab: f"{self.label_separator}{lab}{self.label_suffix}" for lab in self.labels}

    def with_text(
        self, *, user: str | None = None, system: str | None = None, name: str | None = None
    ) -> JudgeTemplate:
        """A copy with a study's own prompt text (same answer format and labels).

        Raises:
            TemplateError: unknown, malformed or missing placeholders.
        """
        return replace(
            self,
            user=self.user if user is None else user,
            system=self.system if system is None else system,
            name=name or f"{self.name}+custom",
        )

    def fingerprint(self) -> str:
        """sha256 of everything that changes the judge's input or how its answer is read."""
        payload = {
            "name": self.name,
            "kind": self.kind,
            "system": self.system,
            "user": self.user,
            "prefix": self.answer_prefix,
            "labels": list(self.labels),
            "sep": self.label_separator,
            "suffix": self.label_suffix,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    # -- reading answers -------------------------------------------------------------------

    def parse(self, text: str) -> str:
        """Strictly read the verdict label from a generated answer.

        With an answer prefix, the answer must contain exactly one distinct verdict written as
        ``prefix label suffix`` (whitespace allowed between the parts; repeating the *same*
        verdict is accepted). Without a prefix (AlpacaEval style) the whole stripped answer must
        be one label.

        Raises:
            JudgeParseError: no verdict, or several different verdicts.
        """
        if not self.answer_prefix:
            stripped = text.strip()
            if stripped in self.labels:
                return stripped
            raise JudgeParseError(
                f"{self.name}: expected exactly one of {list(self.labels)}, got {text[:200]!r}"
            )
        found = {m.group(1) for m in self._verdict_regex().finditer(text)}
        if len(found) != 1:
            what = "no verdict" if not found else f"conflicting verdicts {sorted(found)}"
            raise JudgeParseError(f"{self.name}: {what} in answer {text[:200]!r}")
        return found.pop()

    def locate(self, text: str) -> tuple[str, int]:
        """Strictly parse ``text`` and return ``(label, offset of the label's first char)``.

        Raises:
            JudgeParseError: as :meth:`parse`.
        """
        label = self.parse(text)
        if not self.answer_prefix:
            return label, len(text) - len(text.lstrip())
        for m in self._verdict_regex().finditer(text):
            if m.group(1) == label:
                return label, m.start(1)
        raise JudgeParseError(f"{self.name}: verdict vanished")  # pragma: no cover

    def label_of_token(self, token_text: str, head: str = "") -> str | None:
        """The label a generated token spells, given the verdict token's text before the label.

        ``head`` is what the verdict token carried before the label (``"[["`` when the
        tokenizer merged the prefix into it). Whitespace is ignored; a token may also carry the
        start of the suffix (``A]]``). Returns None when the token is no candidate.
        """
        text = token_text.strip()
        head = head.strip()
        if not text.startswith(head):
            return None
        rest = text[len(head) :].strip()
        for label in sorted(self.labels, key=len, reverse=True):
            if rest == label:
                return label
            tail = rest[len(label) :]
            if rest.startswith(label) and self.label_suffix and self.label_suffix.startswith(tail):
                return label
        return None

    def _verdict_regex(self) -> re.Pattern[str]:
        # Longest label first so "10" wins over "1"; the look-ahead stops "1" matching "10".
        alternatives = "|".join(
            re.escape(lab) for lab in sorted(self.labels, key=len, reverse=True)
        )
        tail = r"\s*" + re.escape(self.label_suffix) if self.label_suffix else r"(?![0-9A-Za-z])"
        return re.compile(re.escape(self.answer_prefix) + r"\s*(" + alternatives + ")" + tail)

    def normalise(self, probs: Mapping[str, float]) -> dict[str, float]:
        """Renormalise candidate probabilities over ``labels`` (missing labels count as 0).

        Raises:
            ValueError: negative values or zero total mass.
        """
        values = {lab: float(probs.get(lab, 0.0)) for lab in self.labels}
        if any(v < 0 or math.isnan(v) for v in values.values()):
            raise ValueError(f"invalid candidate probabilities {values}")
        total = math.fsum(values.values())
        if total <= 0:
            raise ValueError(f"{self.name}: no probability mass on any candidate")
        return {lab: v / total for lab, v in values.items()}

    def p_first(self, probs: Mapping[str, float]) -> float:
        """Pairwise: probability that the answer shown first is better.

        ``P(first) + P(tie) / 2`` after renormalising over the labels: a tie counts as half a
        win for each side (for two-label formats this is ``P(first) / (P(first) + P(second))``).
        """
        if self.kind != "pairwise":
            raise TemplateError(f"template {self.name!r} is not pairwise")
        p = self.normalise(probs)
        tie = p[self.tie_label] if self.tie_label else 0.0
        return p[self.first_label] + 0.5 * tie

    def score_distribution(self, probs: Mapping[str, float]) -> dict[float, float]:
        """Absolute: score value -> probability (renormalised over the labels)."""
        if self.kind != "absolute" or self.scores is None:
            raise TemplateError(f"template {self.name!r} is not absolute")
        p = self.normalise(probs)
        return {s: p[lab] for lab, s in zip(self.labels, self.scores, strict=True)}

    def expected_score(self, probs: Mapping[str, float]) -> float:
        """Absolute: G-Eval score ``sum_s s * p(s)`` over the renormalised score labels."""
        return math.fsum(s * p for s, p in self.score_distribution(probs).items())


def _placeholders(text: str, where: str) -> set[str]:
    """Placeholder names in ``text``; raise TemplateError on anything but plain ``{name}``."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"{where}: malformed braces ({exc}); double literal braces") from exc
    names: set[str] = set()
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            shown = (
                "{"
                + name
                + (f"!{conversion}" if conversion else "")
                + (f":{spec}" if spec else "")
                + "}"
            )
            raise TemplateError(
                f"{where}: unknown placeholder {shown}; allowed: "
                + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
                + " (double literal braces)"
            )
        names.add(name)
    return names


# ------------------------------------------------------------------------------------------
# Built-in templates
# ------------------------------------------------------------------------------------------

_MTBENCH_SYSTEM_HEAD = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two "
    "AI assistants to the user question displayed below. You should choose the assistant that "
    "follows the user's instructions and answers the user's question better. Your evaluation "
    "should consider factors such as the helpfulness, relevance, accuracy, depth, creativity, "
    "and level of detail of their responses."
)
_MTBENCH_SYSTEM_BIAS = (
    "Avoid any position biases and ensure that the order in which the responses were presented "
    "does not influence your decision. Do not allow the length of the responses to influence "
    "your evaluation. Do not favor certain names of the assistants. Be as objective as possible."
)
_MTBENCH_FORMAT = (
    'output your final verdict by strictly following this format: "[[A]]" if assistant A is '
    'better, "[[B]]" if assistant B is better, and "[[C]]" for a tie.'
)

#: The MT-Bench ``pair-v2`` system prompt, verbatim (explanation first, then the verdict).
MT_BENCH_PAIRWISE_SYSTEM_ORIGINAL = (
    f"{_MTBENCH_SYSTEM_HEAD} Begin your evaluation by comparing the two responses and provide a "
    f"short explanation. {_MTBENCH_SYSTEM_BIAS} After providing your explanation, {_MTBENCH_FORMAT}"
)
#: Verdict-only variant used for logprob judging (the paper's text minus the explanation).
MT_BENCH_PAIRWISE_SYSTEM = (
    f"{_MTBENCH_SYSTEM_HEAD} {_MTBENCH_SYSTEM_BIAS} Do not write an explanation; {_MTBENCH_FORMAT}"
)
_MTBENCH_REF_SYSTEM_HEAD = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two "
    "AI assistants to the user question displayed below. Your evaluation should consider "
    "correctness and helpfulness. You will be given a reference answer, assistant A's answer, "
    "and assistant B's answer. Your job is to evaluate which assistant's answer is better."
)
_MTBENCH_USER = (
    "[User Question]\n{question}\n\n"
    "[The Start of Assistant A's Answer]\n{answer_1}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{answer_2}\n[The End of Assistant B's Answer]"
)
_MTBENCH_REF_USER = (
    "[User Question]\n{question}\n\n"
    "[The Start of Reference Answer]\n{reference}\n[The End of Reference Answer]\n\n"
    "[The Start of Assistant A's Answer]\n{answer_1}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{answer_2}\n[The End of Assistant B's Answer]"
)
_MTBENCH_COMMON: dict[str, Any] = {
    "kind": "pairwise",
    "answer_prefix": "[[",
    "labels": ("A", "B", "C"),
    "label_suffix": "]]",
    "first_label": "A",
    "second_label": "B",
    "tie_label": "C",
    "max_new_tokens": 8,
}

_ALPACA_SYSTEM = (
    "You are a highly efficient assistant, who evaluates and selects the best large language "
    "model (LLMs) based on the quality of their responses to a given instruction. This process "
    "will be used to create a leaderboard reflecting the most accurate and human-preferred "
    "answers."
)
_ALPACA_USER = """I require a leaderboard for various large language models. I'll provide you \
with prompts given to these models and their corresponding outputs. Your task is to assess these \
responses, and select the model that produces the best output from a human perspective.

## Instruction

{{
    "instruction": \"\"\"{question}\"\"\",
}}

## Model Outputs

Here are the unordered outputs from the models. Each output is associated with a specific \
model, identified by a unique model identifier.

{{
    {{
        "model_identifier": "m",
        "output": \"\"\"{answer_1}\"\"\"
    }},
    {{
        "model_identifier": "M",
        "output": \"\"\"{answer_2}\"\"\"
    }}
}}

## Task

Evaluate the models on the basis of the quality and relevance of their results, and select the \
model that generated the best output. Answer by providing the model identifier of the best model. \
We will use your output as the name of the best model, so make sure your output only contains \
one of the following model identifiers and nothing else (no quotes, no spaces, no new lines, \
...): m or M.

## Best Model Identifier"""

_PROMETHEUS_ABS_SYSTEM = (
    "You are a fair judge assistant tasked with providing clear, objective feedback based on "
    "specific criteria, ensuring each assessment reflects the absolute standards set for "
    "performance."
)
_PROMETHEUS_REL_SYSTEM = (
    "You are a fair judge assistant assigned to deliver insightful feedback that compares "
    "individual performances, highlighting how each stands relative to others within the same "
    "cohort."
)


def _prometheus_absolute_user(with_reference: bool) -> str:
    ref_intro = " a reference answer that gets a score of 5," if with_reference else ""
    ref_block = "###Reference Answer (Score 5):\n{reference}\n\n" if with_reference else ""
    return (
        "###Task Description:\n"
        f"An instruction (might include an Input inside it), a response to evaluate,{ref_intro} "
        "and a score rubric representing a evaluation criteria are given.\n"
        "1. Write a detailed feedback that assess the quality of the response strictly based on "
        "the given score rubric, not evaluating in general.\n"
        "2. After writing a feedback, write a score that is an integer between 1 and 5. You "
        "should refer to the score rubric.\n"
        '3. The output format should look as follows: "(write a feedback for criteria) [RESULT] '
        '(an integer number between 1 and 5)"\n'
        "4. Please do not generate any other opening, closing, and explanations.\n\n"
        "###The instruction to evaluate:\n{question}\n\n"
        "###Response to evaluate:\n{answer_1}\n\n"
        f"{ref_block}"
        "###Score Rubrics:\n{rubric}\n\n"
        "###Feedback: "
    )


def _prometheus_relative_user(with_reference: bool) -> str:
    ref_intro = " a reference answer," if with_reference else ""
    ref_block = "###Reference Answer:\n{reference}\n\n" if with_reference else ""
    return (
        "###Task Description:\n"
        f"An instruction (might include an Input inside it), a response to evaluate,{ref_intro} "
        "and a score rubric representing a evaluation criteria are given.\n"
        "1. Write a detailed feedback that assess the quality of two responses strictly based on "
        "the given score rubric, not evaluating in general.\n"
        "2. After writing a feedback, choose a better response between Response A and Response "
        "B. You should refer to the score rubric.\n"
        '3. The output format should look as follows: "(write a feedback for criteria) [RESULT] '
        '(A or B)"\n'
        "4. Please do not generate any other opening, closing, and explanations.\n\n"
        "###Instruction:\n{question}\n\n"
        "###Response A:\n{answer_1}\n\n"
        "###Response B:\n{answer_2}\n\n"
        f"{ref_block}"
        "###Score Rubric:\n{rubric}\n\n"
        "###Feedback: "
    )


_GEVAL_USER = """You will be given a user question and one response written by an AI assistant.

Your task is to rate the response on one metric.

Please make sure you read and understand these instructions carefully.

Evaluation Criteria:

Overall quality (1-10) - how helpful, relevant, accurate and complete the response is for the \
user's question, where 1 is the lowest and 10 is the highest.

Evaluation Steps:

1. Read the question carefully and identify what a good response must contain.
2. Read the response and check whether it is correct, complete and on topic.
3. Assign a score for overall quality on a scale of 1 to 10 based on the Evaluation Criteria.

Question:

{question}

Response:

{answer_1}

Evaluation Form (score ONLY, written as [[score]], for example [[5]]):"""

_TEMPLATE_LIST = [
    JudgeTemplate(
        name="mtbench_pairwise",
        system=MT_BENCH_PAIRWISE_SYSTEM,
        user=_MTBENCH_USER,
        **_MTBENCH_COMMON,
    ),
    JudgeTemplate(
        name="mtbench_pairwise_reference",
        system=(
            f"{_MTBENCH_REF_SYSTEM_HEAD} Compare both assistants' answers with the reference "
            f"answer. {_MTBENCH_SYSTEM_BIAS} Do not write an explanation; {_MTBENCH_FORMAT}"
        ),
        user=_MTBENCH_REF_USER,
        **_MTBENCH_COMMON,
    ),
    JudgeTemplate(
        name="mtbench_pairwise_explained",
        system=MT_BENCH_PAIRWISE_SYSTEM_ORIGINAL,
        user=_MTBENCH_USER,
        **{**_MTBENCH_COMMON, "max_new_tokens": 1024},
    ),
    JudgeTemplate(
        name="alpacaeval_pairwise",
        kind="pairwise",
        system=_ALPACA_SYSTEM,
        user=_ALPACA_USER,
        answer_prefix="",
        labels=("m", "M"),
        first_label="m",
        second_label="M",
        max_new_tokens=2,
    ),
    *[
        JudgeTemplate(
            name="prometheus_absolute" + ("_reference" if ref else ""),
            kind="absolute",
            system=_PROMETHEUS_ABS_SYSTEM,
            user=_prometheus_absolute_user(ref),
            answer_prefix="[RESULT]",
            label_separator=" ",
            labels=("1", "2", "3", "4", "5"),
            scores=(1.0, 2.0, 3.0, 4.0, 5.0),
            max_new_tokens=1024,
        )
        for ref in (False, True)
    ],
    *[
        JudgeTemplate(
            name="prometheus_relative" + ("_reference" if ref else ""),
            kind="pairwise",
            system=_PROMETHEUS_REL_SYSTEM,
            user=_prometheus_relative_user(ref),
            answer_prefix="[RESULT]",
            label_separator=" ",
            labels=("A", "B"),
            first_label="A",
            second_label="B",
            max_new_tokens=1024,
            rubric_style="criteria",
        )
        for ref in (False, True)
    ],
    JudgeTemplate(
        name="geval_absolute",
        kind="absolute",
        system="",
        user=_GEVAL_USER,
        answer_prefix="[[",
        labels=tuple(str(i) for i in range(1, 11)),
        label_suffix="]]",
        scores=tuple(float(i) for i in range(1, 11)),
        max_new_tokens=8,
    ),
]

#: Built-in templates by name.
TEMPLATES: dict[str, JudgeTemplate] = {t.name: t for t in _TEMPLATE_LIST}


def get_template(name: str) -> JudgeTemplate:
    """Return a built-in template.

    Raises:
        TemplateError: unknown name (the message lists the known ones).
    """
    try:
        return TEMPLATES[name]
    except KeyError:
        raise TemplateError(
            f"unknown judge template {name!r}; known: {', '.join(sorted(TEMPLATES))}"
        ) from None


def template_from_settings(value: str | Mapping[str, Any] | JudgeTemplate) -> JudgeTemplate:
    """Resolve a template setting.

    Accepts a built-in name, a :class:`JudgeTemplate`, or a mapping
    ``{"base": <built-in name>, "user": ..., "system": ..., "name": ...}`` for a study's edited
    text (``base`` defaults to ``mtbench_pairwise``; ``user``/``system`` default to the base's).

    Raises:
        TemplateError: unknown base, unknown keys, or invalid placeholders.
    """
    if isinstance(value, JudgeTemplate):
        return value
    if isinstance(value, str):
        return get_template(value)
    unknown = set(value) - {"base", "user", "system", "name"}
    if unknown:
        raise TemplateError(f"unknown template setting(s): {sorted(unknown)}")
    base = get_template(value.get("base", "mtbench_pairwise"))
    return base.with_text(
        user=value.get("user"), system=value.get("system"), name=value.get("name")
    )


@dataclass(frozen=True)
class JudgeAnswer:
    """What a judge backend returns for one rendered prompt.

    Attributes:
        probs: label -> probability, renormalised over the template's labels; None when the
            answer could not be read (see ``error``).
        source: ``"logprobs"`` (read from token probabilities) or ``"text"`` (strictly parsed
            generated text: a one-hot distribution).
        text: the generated text, when there is one.
        candidate_mass: total probability the judge put on the candidate labels before
            renormalising (logprob modes only); a low value means the judge was not answering
            in the expected format.
        error: why the answer could not be read (a :class:`JudgeParseError` message).
    """

    probs: dict[str, float] | None
    source: Literal["logprobs", "text"]
    text: str | None = None
    candidate_mass: float | None = None
    error: str | None = None

    @classmethod
    def from_text(cls, template: JudgeTemplate, text: str) -> JudgeAnswer:
        """Strictly parse ``text``; a parse failure is recorded in ``error``, not raised."""
        try:
            label = template.parse(text)
        except JudgeParseError as exc:
            return cls(probs=None, source="text", text=text, error=str(exc))
        return cls({lab: float(lab == label) for lab in template.labels}, "text", text=text)


# ------------------------------------------------------------------------------------------
# Strict parsing helpers for endpoints without logprobs
# ------------------------------------------------------------------------------------------


def parse_pairwise_answer(text: str) -> Literal["A", "B", "C"]:
    """Read an MT-Bench verdict: exactly one distinct ``[[A]]``, ``[[B]]`` or ``[[C]]``.

    Raises:
        JudgeParseError: none, or conflicting verdicts.
    """
    return TEMPLATES["mtbench_pairwise"].parse(text)  # type: ignore[return-value]


def parse_prometheus_result(text: str, *, relative: bool = False) -> int | str:
    """Read a Prometheus ``[RESULT] n`` (1-5, returned as int) or ``[RESULT] A|B`` (relative).

    Raises:
        JudgeParseError: none, conflicting, or out-of-range results.
    """
    if relative:
        return TEMPLATES["prometheus_relative"].parse(text)
    return int(TEMPLATES["prometheus_absolute"].parse(text))


# ------------------------------------------------------------------------------------------
# Position swap
# ------------------------------------------------------------------------------------------

Winner = Literal["A", "B", "tie"]


@dataclass(frozen=True)
class Verdict:
    """Outcome of judging systems A and B in both presentation orders.

    Attributes:
        winner: ``"A"``, ``"B"`` or ``"tie"``.
        p_a: probability that A is better, averaged over both orders (position-debiased);
            reported for ties too.
        position_bias: True when the two orders preferred the same *position* (so they named
            different systems): a position-bias event.
        p_first_in_order_ab, p_first_in_order_ba: the two inputs.
    """

    winner: Winner
    p_a: float
    position_bias: bool
    p_first_in_order_ab: float
    p_first_in_order_ba: float

    @property
    def p_b(self) -> float:
        """Probability that B is better (``1 - p_a``)."""
        return 1.0 - self.p_a


def _side(p: float, tie_margin: float) -> Literal["first", "second", "tie"]:
    if p > 0.5 + tie_margin:
        return "first"
    if p < 0.5 - tie_margin:
        return "second"
    return "tie"


def combine_swapped(
    p_first_in_order_ab: float, p_first_in_order_ba: float, *, tie_margin: float = 0.0
) -> Verdict:
    """Combine a pairwise judgement made in both orders.

    Order AB shows system A first, order BA shows system B first; each argument is the judge's
    probability that the answer *shown first* is better. Each order alone names a winner
    (``p > 0.5 + tie_margin`` -> first, ``p < 0.5 - tie_margin`` -> second, else tie).

    * Both orders name the same system: that system wins, ``p_a`` is the mean of the two
      estimates of P(A better), ``p_first_in_order_ab`` and ``1 - p_first_in_order_ba``.
    * They name different systems, i.e. the same position won twice: a tie and a
      position-bias event.
    * One order is a tie and the other is not: a tie (not counted as position bias).

    Raises:
        ValueError: a probability outside [0, 1] or a negative margin.
    """
    for p in (p_first_in_order_ab, p_first_in_order_ba):
        if not 0.0 <= p <= 1.0 or math.isnan(p):
            raise ValueError(f"probability out of range: {p}")
    if tie_margin < 0:
        raise ValueError("tie_margin must be >= 0")
    side_ab = _side(p_first_in_order_ab, tie_margin)
    side_ba = _side(p_first_in_order_ba, tie_margin)
    winner_ab: Winner = {"first": "A", "second": "B"}.get(side_ab, "tie")  # type: ignore[assignment]
    winner_ba: Winner = {"first": "B", "second": "A"}.get(side_ba, "tie")  # type: ignore[assignment]
    p_a = (p_first_in_order_ab + (1.0 - p_first_in_order_ba)) / 2.0
    if winner_ab == winner_ba:
        return Verdict(winner_ab, p_a, False, p_first_in_order_ab, p_first_in_order_ba)
    bias = side_ab == side_ba  # both "first" or both "second": the position decided
    return Verdict("tie", p_a, bias, p_first_in_order_ab, p_first_in_order_ba)


def tuned_probability(p_first: float, *, tuned_shown_first: bool) -> float:
    """Map one order's P(first answer better) to P(tuned better)."""
    return p_first if tuned_shown_first else 1.0 - p_first


@dataclass(frozen=True)
class TunedOutcome:
    """A swapped pairwise judgement expressed for the tuned-vs-base comparison."""

    p_tuned: float
    verdict: Literal["base", "tuned", "tie"]
    position_bias: bool


def combine_for_tuned(
    p_first_tuned_first: float, p_first_base_first: float, *, tie_margin: float = 0.0
) -> TunedOutcome:
    """:func:`combine_swapped` with A = tuned (order AB = tuned shown first), B = base.

    Args:
        p_first_tuned_first: P(first answer better) when the tuned answer was shown first.
        p_first_base_first: P(first answer better) when the base answer was shown first.
    """
    v = combine_swapped(p_first_tuned_first, p_first_base_first, tie_margin=tie_margin)
    verdict = {"A": "tuned", "B": "base", "tie": "tie"}[v.winner]
    return TunedOutcome(p_tuned=v.p_a, verdict=verdict, position_bias=v.position_bias)  # type: ignore[arg-type]


def p_better(dist_x: Mapping[float, float], dist_y: Mapping[float, float]) -> float:
    """P(X > Y) + P(X = Y) / 2 for independent score distributions (absolute grading).

    Used to turn two absolute grades (tuned and base, graded separately, so no position bias)
    into a probability that the tuned answer is better.
    """
    win = tie = 0.0
    for sx, px in dist_x.items():
        for sy, py in dist_y.items():
            if sx > sy:
                win += px * py
            elif sx == sy:
                tie += px * py
    return win + 0.5 * tie
