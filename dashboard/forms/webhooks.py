"""The webhook form; the rules themselves are in webhooks.hooks (the API's too)."""

from django import forms

from webhooks.models import EVENT_TYPES


class WebhookForm(forms.Form):
    name = forms.CharField(max_length=100)
    url = forms.CharField(
        max_length=2000,
        label="URL",
        help_text="An https:// URL that answers a POST with a 2xx within 10 seconds.",
        widget=forms.TextInput(
            attrs={"placeholder": "https://hooks.example.com/oneoff", "spellcheck": "false"}
        ),
    )
    enabled = forms.BooleanField(required=False, initial=True, label="Enabled")
    event_filter = forms.MultipleChoiceField(
        required=False,
        label="Events",
        choices=[(t, t) for t in EVENT_TYPES],
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every event.",
    )
