"""Local transformers judge: read the verdict from next-token probabilities (no generation).

Recipe: the "logprob judge" used by AlpacaEval 2.0 (weighted win rate from the judge's token
probabilities) and G-Eval (probability-weighted scores): build the judge prompt (through the
tokenizer's chat template when it has one), append the template's fixed answer prefix (``[[``
for MT-Bench, ``[RESULT]`` for Prometheus) to the assistant turn, run *one* forward pass and
read the next-token distribution. The log-probabilities of the candidate tokens (the first
token of each label's continuation, e.g. ``A`` / ``B`` / ``C``) are gathered in float32 and
renormalised over the candidate set.

When two labels start with the same token (``1]]`` and ``10]]`` under a tokenizer that splits
digits), the first token cannot tell them apart; the judge then scores each label's whole
continuation (``log p(1]] | prompt)`` vs ``log p(10]] | prompt)``, suffix included, so the set
is prefix-free) with teacher forcing: still no generation, one forward pass per label.

Prompts are batched under a token budget with *left* padding (so that every row's last
position is its last real token) and explicit ``position_ids`` (so padding does not shift the
positions of real tokens).

``mode="generate"`` is the generate-then-parse peer (greedy ``generate`` up to
``max_new_tokens``, then strict parsing); it is the benchmark baseline and a fallback for
templates whose labels cannot be read from single tokens.

torch and transformers are imported lazily.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from scoring.lm.errors import TemplateError
from scoring.lm.judge_prompts import JudgeAnswer, JudgeTemplate, RenderedPrompt
from scoring.lm.judge_prompts import template_from_settings as _template

Mode = Literal["logprob", "generate"]


class LocalJudge:
    """A judge backed by a local causal LM.

    Args:
        model_name_or_path: what :func:`scoring.lm.loading.load_causal_lm` loads (lazily, on
            first use). Not needed when ``model`` and ``tokenizer`` are given.
        template: built-in template name, :class:`JudgeTemplate`, or a custom-text mapping.
        mode: ``"logprob"`` (default, one forward pass) or ``"generate"``.
        device, dtype: passed to the loader (CUDA when available, else CPU).
        model, tokenizer: an already loaded pair (tests, benchmarks).
        max_tokens_per_batch: token budget per forward pass (rows x padded length; for
            generation the new tokens count too).
        max_new_tokens: generation budget; default the template's ``max_new_tokens``.
        use_chat_template: None = use the tokenizer's chat template when it has one.
        force_prefix_in_generate: generate mode only; append the answer prefix to the prompt
            and parse ``prefix + generated`` (cheaper, but steers the judge).

    Raises:
        TemplateError: invalid template setting.
        ValueError: unknown mode, or neither a model name nor a model.
    """

    backend = "local"

    def __init__(
        self,
        model_name_or_path: str | os.PathLike[str] | None = None,
        *,
        template: str | Mapping[str, Any] | JudgeTemplate = "mtbench_pairwise",
        mode: Mode = "logprob",
        device: str | None = None,
        dtype: Any = None,
        model: Any = None,
        tokenizer: Any = None,
        max_tokens_per_batch: int = 8192,
        max_new_tokens: int | None = None,
        use_chat_template: bool | None = None,
        force_prefix_in_generate: bool = False,
    ) -> None:
        if mode not in ("logprob", "generate"):
            raise ValueError(f"unknown local judge mode {mode!r}")
        if model is None and not model_name_or_path:
            raise ValueError("LocalJudge needs model_name_or_path or model + tokenizer")
        if (model is None) != (tokenizer is None):
            raise ValueError("pass model and tokenizer together")
        self.template = _template(template)
        self.mode: Mode = mode
        self.name = (
            os.fspath(model_name_or_path)
            if model_name_or_path
            else getattr(getattr(model, "config", None), "_name_or_path", "") or "in-memory"
        )
        self._device = device
        self._dtype = dtype
        self._model = model
        self._tokenizer = tokenizer
        self.max_tokens_per_batch = max_tokens_per_batch
        self.max_new_tokens = max_new_tokens or self.template.max_new_tokens
        self.use_chat_template = use_chat_template
        self.force_prefix_in_generate = force_prefix_in_generate
        self._candidate_cache: dict[tuple[str, str], list[int]] = {}
        self._keeps_logits: bool | None = None
        self._decides_cache: dict[tuple[tuple[str, int], ...], bool] = {}

    # -- public -----------------------------------------------------------------------------

    @property
    def judge_id(self) -> str:
        """Stable identifier stored with results, e.g. ``local:/models/judge:logprob``."""
        return f"local:{self.name}:{self.mode}"

    @property
    def model(self) -> Any:
        """The underlying transformers model (loaded on first access)."""
        self._ensure_loaded()
        return self._model

    @property
    def tokenizer(self) -> Any:
        """The tokenizer (loaded on first access)."""
        self._ensure_loaded()
        return self._tokenizer

    def judge(self, prompts: Sequence[RenderedPrompt]) -> list[JudgeAnswer]:
        """Judge rendered prompts; one :class:`JudgeAnswer` per prompt, in order.

        Raises:
            ModelUnavailableError: the model cannot be loaded.
            TemplateError: a label cannot be tokenized as a continuation of the answer prefix.
        """
        if not prompts:
            return []
        if self.mode == "generate":
            texts = self.generate(prompts)
            prefix = self.template.answer_prefix if self.force_prefix_in_generate else ""
            return [
                t
                if isinstance(t, JudgeAnswer)
                else JudgeAnswer.from_text(self.template, prefix + t)
                for t in texts
            ]
        return self.logprob_answers(prompts)

    @property
    def context_length(self) -> int:
        """The model's maximum sequence length in tokens."""
        from scoring.lm.perplexity import model_context_length

        return model_context_length(self.model, self.tokenizer)

    def _too_long(
        self, n_tokens: int, extra: int, source: Literal["logprobs", "text"]
    ) -> JudgeAnswer | None:
        """An error answer when a prompt does not fit the judge's context, else None."""
        if n_tokens + extra <= self.context_length:
            return None
        # Truncating would silently change what is judged; report it per prompt instead.
        return JudgeAnswer(
            probs=None,
            source=source,
            error=(
                f"prompt has {n_tokens} tokens (+{extra} for the answer) but the judge's "
                f"context is {self.context_length} tokens"
            ),
        )

    def prompt_text(self, prompt: RenderedPrompt, *, with_prefix: bool) -> str:
        """The exact text fed to the model (chat template applied), optionally + answer prefix."""
        tok = self.tokenizer
        use_chat = self.use_chat_template
        if use_chat is None:
            use_chat = bool(getattr(tok, "chat_template", None))
        if use_chat:
            try:
                text = tok.apply_chat_template(
                    prompt.messages(), tokenize=False, add_generation_prompt=True
                )
            except Exception:  # noqa: BLE001 - jinja raises its own types
                # Some chat templates (Gemma, older Mistral) reject a system role: fold the
                # system text into the user turn, as their model cards recommend.
                merged = "\n\n".join(p for p in (prompt.system, prompt.user) if p)
                text = tok.apply_chat_template(
                    [{"role": "user", "content": merged}],
                    tokenize=False,
                    add_generation_prompt=True,
                )
        else:
            text = "\n\n".join(p for p in (prompt.system, prompt.user) if p) + "\n\n"
        return text + (prompt.answer_prefix if with_prefix else "")

    def encode_prompt(self, prompt: RenderedPrompt, *, with_prefix: bool) -> list[int]:
        """Token ids of :meth:`prompt_text`, with BOS prepended once when the tokenizer has one."""
        tok = self.tokenizer
        text = self.prompt_text(prompt, with_prefix=with_prefix)
        # verbose=False: over-long prompts are reported per prompt, not as a tokenizer warning.
        ids = list(tok(text, add_special_tokens=False, verbose=False)["input_ids"])
        bos = getattr(tok, "bos_token_id", None)
        # Chat templates usually write BOS themselves; never double it.
        if bos is not None and (not ids or ids[0] != bos):
            ids.insert(0, bos)
        return ids

    def candidate_token_ids(self, prompt_text: str) -> dict[str, list[int]]:
        """Label -> token ids of its continuation right after ``prompt_text``.

        Computed by tokenizing the prompt's tail with and without each continuation, so the ids
        are what the tokenizer produces in context (``A`` after ``[[``, `` 3`` after
        ``[RESULT]``). Cached per tail.

        Raises:
            TemplateError: the continuation merges with the end of the prompt into one token.
        """
        tail = prompt_text[-48:]
        out: dict[str, list[int]] = {}
        for label, cont in self.template.continuations().items():
            key = (tail, cont)
            if key not in self._candidate_cache:
                base = self.tokenizer(tail, add_special_tokens=False)["input_ids"]
                full = self.tokenizer(tail + cont, add_special_tokens=False)["input_ids"]
                if full[: len(base)] != base or len(full) == len(base):
                    raise TemplateError(
                        f"{self.template.name}: label {label!r} does not tokenize as a separate "
                        f"continuation of {self.template.answer_prefix!r} with this tokenizer; "
                        "change the answer prefix/separator or use mode='generate'"
                    )
                self._candidate_cache[key] = list(full[len(base) :])
            out[label] = self._candidate_cache[key]
        return out

    def _first_token_decides(self, candidates: dict[str, list[int]]) -> bool:
        """True when each label's first token is distinct and spells the whole label.

        Then one next-token distribution decides the verdict. Otherwise (``1`` vs ``10`` under
        a digit-splitting tokenizer, or a bare-space token before ``B``) the first token is
        shared or uninformative and whole continuations must be scored.
        """
        firsts = {ids[0] for ids in candidates.values()}
        if len(firsts) != len(candidates):
            return False
        key = tuple(sorted((lab, ids[0]) for lab, ids in candidates.items()))
        if key not in self._decides_cache:
            self._decides_cache[key] = all(
                self.tokenizer.decode([ids[0]]).strip().startswith(label)
                for label, ids in candidates.items()
            )
        return self._decides_cache[key]

    def logprob_answers(self, prompts: Sequence[RenderedPrompt]) -> list[JudgeAnswer]:
        """Candidate probabilities from next-token log-probabilities (see module docstring)."""
        import torch

        texts = [self.prompt_text(p, with_prefix=True) for p in prompts]
        encoded = [self.encode_prompt(p, with_prefix=True) for p in prompts]
        candidates = [self.candidate_token_ids(t) for t in texts]
        labels = list(self.template.labels)
        logps: list[list[float] | None] = [None] * len(prompts)
        errors: list[JudgeAnswer | None] = [None] * len(prompts)
        single, multi = [], []
        for i, cands in enumerate(candidates):
            fast = self._first_token_decides(cands)
            extra = 0 if fast else max(len(ids) for ids in cands.values())
            errors[i] = self._too_long(len(encoded[i]), extra, "logprobs")
            if errors[i] is None:
                (single if fast else multi).append(i)
        if single:
            rows = self._last_token_logprobs([encoded[i] for i in single])
            for i, row in zip(single, rows, strict=True):
                first = torch.tensor([candidates[i][lab][0] for lab in labels])
                logps[i] = row[first].tolist()
        if multi:
            seqs, owners = [], []
            for i in multi:
                for lab in labels:
                    seqs.append((encoded[i], candidates[i][lab]))
                    owners.append(i)
            scores = self._continuation_logprobs(seqs)
            for k, i in enumerate(multi):
                logps[i] = scores[k * len(labels) : (k + 1) * len(labels)]

        answers: list[JudgeAnswer] = []
        for lp, err in zip(logps, errors, strict=True):
            if lp is None:
                answers.append(err)  # type: ignore[arg-type]
                continue
            t = torch.tensor(lp, dtype=torch.float64)
            # Renormalising exp(logp) over the candidates equals a softmax over the gathered
            # logits: the full-vocabulary normaliser cancels.
            probs = torch.softmax(t, dim=0).tolist()
            answers.append(
                JudgeAnswer(
                    probs=dict(zip(labels, probs, strict=True)),
                    source="logprobs",
                    candidate_mass=float(torch.exp(t).sum()),
                )
            )
        return answers

    def generate(self, prompts: Sequence[RenderedPrompt]) -> list[str | JudgeAnswer]:
        """Greedy generation (``max_new_tokens``) for each prompt; returns the new text only.

        A prompt that does not fit the context with ``max_new_tokens`` gets an error
        :class:`JudgeAnswer` instead of a text.
        """
        import torch

        with_prefix = self.force_prefix_in_generate
        encoded = [self.encode_prompt(p, with_prefix=with_prefix) for p in prompts]
        tok = self.tokenizer
        out: list[str | JudgeAnswer] = [""] * len(prompts)
        fits = []
        for i, ids in enumerate(encoded):
            err = self._too_long(len(ids), self.max_new_tokens, "text")
            if err is None:
                fits.append(i)
            else:
                out[i] = err
        budget = self.max_tokens_per_batch
        for sub in _batches([encoded[i] for i in fits], budget, extra=self.max_new_tokens):
            batch = [fits[k] for k in sub]
            input_ids, attention, _ = _left_pad([encoded[i] for i in batch], _pad_id(tok))
            with torch.inference_mode():
                generated = self.model.generate(
                    input_ids=input_ids.to(self._model_device()),
                    attention_mask=attention.to(self._model_device()),
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    pad_token_id=_pad_id(tok),
                    eos_token_id=getattr(tok, "eos_token_id", None),
                )
            new = generated[:, input_ids.shape[1] :].tolist()
            for i, ids in zip(batch, new, strict=True):
                out[i] = tok.decode(ids, skip_special_tokens=True)
        return out

    # -- internals --------------------------------------------------------------------------

    def _ensure_loaded(self) -> None:
        if self._model is None:
            from scoring.lm.loading import load_causal_lm

            loaded = load_causal_lm(self.name, device=self._device, dtype=self._dtype)
            self._model, self._tokenizer = loaded.model, loaded.tokenizer

    def _model_device(self) -> Any:
        return next(self.model.parameters()).device

    def _forward_kwargs(self) -> dict[str, Any]:
        if self._keeps_logits is None:
            params = inspect.signature(self.model.forward).parameters
            self._keeps_logits = "logits_to_keep" in params
        # Only the last position's logits are needed: skipping the LM head elsewhere saves a
        # (tokens x vocab) matmul and its memory.
        return {"logits_to_keep": 1} if self._keeps_logits else {}

    def _last_token_logprobs(self, sequences: list[list[int]]) -> list[Any]:
        """float32 next-token log-probabilities after each sequence (full vocabulary)."""
        import torch

        rows: list[Any] = [None] * len(sequences)
        for batch in _batches(sequences, self.max_tokens_per_batch):
            input_ids, attention, positions = _left_pad(
                [sequences[i] for i in batch], _pad_id(self.tokenizer)
            )
            device = self._model_device()
            with torch.inference_mode():
                logits = self.model(
                    input_ids=input_ids.to(device),
                    attention_mask=attention.to(device),
                    position_ids=positions.to(device),
                    use_cache=False,
                    **self._forward_kwargs(),
                ).logits[:, -1, :]
                logp = logits.float().log_softmax(dim=-1).cpu()
            for r, i in enumerate(batch):
                rows[i] = logp[r]
        return rows

    def _continuation_logprobs(self, items: list[tuple[list[int], list[int]]]) -> list[float]:
        """Sum of float32 log p(continuation tokens | prompt) for (prompt, continuation) pairs."""
        import torch

        seqs = [p + c for p, c in items]
        out = [0.0] * len(items)
        for batch in _batches(seqs, self.max_tokens_per_batch):
            input_ids, attention, positions = _left_pad(
                [seqs[i] for i in batch], _pad_id(self.tokenizer)
            )
            device = self._model_device()
            with torch.inference_mode():
                logits = self.model(
                    input_ids=input_ids.to(device),
                    attention_mask=attention.to(device),
                    position_ids=positions.to(device),
                    use_cache=False,
                ).logits
            width = input_ids.shape[1]
            for r, i in enumerate(batch):
                n = len(items[i][1])
                # Left padding: the continuation occupies the last n positions; logits at
                # position j predict token j + 1.
                lp = logits[r, width - n - 1 : width - 1].float().log_softmax(dim=-1)
                targets = input_ids[r, width - n :].to(device).unsqueeze(-1)
                out[i] = float(lp.gather(-1, targets).sum())
        return out


def _pad_id(tokenizer: Any) -> int:
    for attr in ("pad_token_id", "eos_token_id", "bos_token_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    return 0


def _left_pad(seqs: list[list[int]], pad_id: int) -> tuple[Any, Any, Any]:
    """Left-padded ids, attention mask and position ids (0 at each row's first real token)."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, width - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[r, width - len(s) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions


def _batches(seqs: Sequence[Sequence[int]], budget: int, extra: int = 0) -> list[list[int]]:
    """Indices grouped longest first so that rows * (longest + extra) <= budget."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]), reverse=True)
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (len(current) + 1) * (len(seqs[current[0]]) + extra) > budget:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
