"""Model-backed scorers: perplexity and LLM-as-judge.

Nothing in this package imports Django, DRF, celery or ``annotations``. torch and transformers
are imported lazily inside the functions that need them, so importing ``scoring.lm`` (or the
pure modules ``judge_prompts`` and ``identity``) never loads them.
"""
