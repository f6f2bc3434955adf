from __future__ import annotations

from django import forms

from .models import FlawType, ReviewDecision


class FlawLabelForm(forms.Form):
    flaw_type = forms.ModelChoiceField(
        queryset=FlawType.objects.filter(active=True).select_related("category"),
        required=False,
        empty_label="No flaw (clear)",
    )
    note = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )
    reason = forms.CharField(required=False, max_length=2000)


class HintForm(forms.Form):
    step = forms.IntegerField(min_value=0)
    char_offset = forms.IntegerField(min_value=0, required=False)
    text = forms.CharField(max_length=4000, widget=forms.Textarea(attrs={"rows": 3}))
    flaw_type = forms.ModelChoiceField(
        queryset=FlawType.objects.filter(active=True), required=False
    )
    diagnosis = forms.IntegerField(required=False, widget=forms.HiddenInput)


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=ReviewDecision.Decision.choices)
    reason = forms.CharField(required=False, max_length=2000)
