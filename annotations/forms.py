from __future__ import annotations

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from annotations.models import QueueOrder, StudyStatus, TaskType
from annotations.services.raters import (
    CROWD_ITEMS_MAX,
    CROWD_PARTICIPANTS_MAX,
    INVITE_DAYS_DEFAULT,
    INVITE_DAYS_MAX,
)


class StudyForm(forms.Form):
    slug = forms.SlugField(max_length=80)
    name = forms.CharField(max_length=200, label="Internal name (researchers only)")
    rater_title = forms.CharField(
        max_length=200,
        required=False,
        label="Title raters see",
        help_text="Blank: “Comparison study”. Never name the models or the run here.",
    )
    task_type = forms.ChoiceField(choices=TaskType.choices)
    overlap = forms.IntegerField(min_value=1, max_value=50, initial=3, label="Votes per item (k)")
    instructions = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    base_model = forms.CharField(max_length=200, required=False)
    tuned_model = forms.CharField(max_length=200, required=False)
    gold_rate = forms.FloatField(min_value=0, max_value=1, initial=0.0)
    min_time_ms = forms.IntegerField(
        min_value=0,
        required=False,
        label="Flag judgments faster than (ms)",
        help_text="Blank: 1 s + 15 ms per 100 characters of both outputs. 0: never flag.",
    )
    queue_order = forms.ChoiceField(choices=QueueOrder.choices, initial=QueueOrder.RANDOM)


class ImportForm(forms.Form):
    format = forms.ChoiceField(choices=[("jsonl", "JSONL"), ("alpaca", "AlpacaEval pair")])
    file = forms.FileField(label="File (JSONL, or the base model's AlpacaEval file)")
    tuned_file = forms.FileField(required=False, label="Tuned model's AlpacaEval file")
    unmatched = forms.ChoiceField(
        choices=[
            ("error", "An instruction in only one file fails the import"),
            ("skip", "Skip instructions found in only one file (and list them)"),
        ],
        initial="error",
        required=False,
        label="AlpacaEval: unmatched instructions",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The request guard (evalplatform.middleware) refuses a larger body before any view.
        limit = filesizeformat(settings.IMPORT_MAX_UPLOAD_BYTES)
        self.fields["file"].help_text = (
            f"Up to {limit} in all (both files of an AlpacaEval pair together). "
            "Nothing is written until you confirm the preview."
        )
        self.fields["file"].widget.attrs["data-max-bytes"] = settings.IMPORT_MAX_UPLOAD_BYTES

    def clean_unmatched(self) -> str:
        return self.cleaned_data.get("unmatched") or "error"

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("format") == "alpaca" and not cleaned.get("tuned_file"):
            self.add_error("tuned_file", "The AlpacaEval format needs the tuned model's file too.")
        return cleaned


class ImportConfirmForm(forms.Form):
    """The confirmation of an import preview: only the token of the upload kept server-side."""

    token = forms.CharField(max_length=64, widget=forms.HiddenInput)


class StudySettingsForm(forms.Form):
    """What a researcher sets after creating a study (slug, task type and models stay)."""

    name = StudyForm.base_fields["name"]
    rater_title = StudyForm.base_fields["rater_title"]
    overlap = StudyForm.base_fields["overlap"]
    max_overlap = forms.IntegerField(
        min_value=1,
        max_value=50,
        label="At most votes per item",
        help_text="Items whose votes split may ask for more votes, up to this many.",
    )
    instructions = StudyForm.base_fields["instructions"]
    gold_rate = forms.FloatField(
        min_value=0,
        max_value=1,
        label="Gold rate",
        help_text="Share of each rater's pairs drawn from gold items (0-1). Gold items are the "
        "file's lines with a 'gold' answer (base, tuned, tie or both_bad).",
    )
    min_time_ms = StudyForm.base_fields["min_time_ms"]
    queue_order = StudyForm.base_fields["queue_order"]

    def clean(self) -> dict:
        cleaned = super().clean()
        overlap, most = cleaned.get("overlap"), cleaned.get("max_overlap")
        if overlap is not None and most is not None and most < overlap:
            self.add_error("max_overlap", "Must be at least the votes per item (k).")
        return cleaned


class RatersForm(forms.Form):
    usernames = forms.CharField(help_text="Usernames separated by spaces or commas")

    def clean_usernames(self) -> list[str]:
        raw = self.cleaned_data["usernames"].replace(",", " ")
        names = [n for n in raw.split() if n]
        if not names:
            raise forms.ValidationError("name at least one rater")
        return names


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=StudyStatus.choices)
    acknowledge_blinding_risk = forms.BooleanField(
        required=False, label="Open although the blinding audit is at risk"
    )
    reason = forms.CharField(max_length=2_000, required=False, label="Reason")


class DisplayPrefixesForm(forms.Form):
    prefixes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        label="Fixed openers to strip from both outputs (one a line)",
        help_text="Raters see both sides without them; the stored outputs keep them.",
    )

    def clean_prefixes(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["prefixes"].splitlines()]
        return [line for line in lines if line]


class InviteForm(forms.Form):
    usernames = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        label="Usernames, one a line (optional)",
        help_text="An existing rater is added at once; any other name gets an invite link that "
        "creates that account. Leave empty for one link whose user picks their own name.",
    )
    days = forms.IntegerField(
        min_value=1, max_value=INVITE_DAYS_MAX, initial=INVITE_DAYS_DEFAULT, label="Valid for days"
    )

    def clean_usernames(self) -> list[str]:
        return self.cleaned_data["usernames"].splitlines()


class InviteAcceptForm(forms.Form):
    username = forms.CharField(max_length=150, required=False)
    password = forms.CharField(widget=forms.PasswordInput, strip=False, label="Password")
    password_again = forms.CharField(
        widget=forms.PasswordInput, strip=False, label="Password again"
    )

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("password") != cleaned.get("password_again"):
            self.add_error("password_again", "the two passwords differ")
        return cleaned


class CrowdLinkForm(forms.Form):
    label = forms.CharField(
        max_length=100, required=False, help_text="For you, e.g. 'Prolific wave 1'."
    )
    param_name = forms.CharField(
        max_length=40,
        initial="PROLIFIC_PID",
        label="Participant id parameter",
        help_text="The URL parameter the platform fills in (Prolific: PROLIFIC_PID; MTurk: "
        "workerId).",
    )
    items_per_participant = forms.IntegerField(
        min_value=1, max_value=CROWD_ITEMS_MAX, initial=20, label="Pairs per participant"
    )
    max_participants = forms.IntegerField(
        min_value=1,
        max_value=CROWD_PARTICIPANTS_MAX,
        required=False,
        label="Participants at most",
        help_text="The places you bought on the platform; blank: no limit. A link that leaks "
        "then cannot bring in more people than that.",
    )
    completion_code = forms.CharField(
        max_length=64,
        required=False,
        help_text="Shown when a participant is done; blank: a random one.",
    )
