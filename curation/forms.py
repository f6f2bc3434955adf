from __future__ import annotations

from django import forms
from django.conf import settings


class ProblemUploadForm(forms.Form):
    file = forms.FileField(
        help_text="JSONL (one problem per line) or a JSON array; UTF-8.",
        widget=forms.ClearableFileInput(attrs={"accept": ".jsonl,.json,.ndjson"}),
    )
    benchmark = forms.CharField(
        max_length=100,
        required=False,
        help_text="Benchmark name for every record; by default, each record's own "
        "'benchmark' field, else the file name.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.PROBLEM_UPLOAD_MAX_BYTES:
            limit = settings.PROBLEM_UPLOAD_MAX_BYTES // (1024 * 1024)
            raise forms.ValidationError(f"The file is larger than {limit} MB.")
        return upload


class ImportConfirmForm(forms.Form):
    benchmark = forms.CharField(max_length=100, required=False, widget=forms.HiddenInput)
