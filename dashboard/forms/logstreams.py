"""Forms of the log stream settings page; the rules themselves are in logstreams.streams."""

from django import forms

from logstreams import streams as logstreams
from logstreams.models import StreamSetting


def _endpoint(value: str) -> str:
    try:
        return logstreams.validate_endpoint(value)
    except ValueError as exc:
        raise forms.ValidationError(f"The endpoint {exc}.") from exc


def _token(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise forms.ValidationError("The token must not contain control characters.")
    return value


class StreamForm(forms.Form):
    endpoint = forms.CharField(
        max_length=300,
        help_text="HOST:PORT of a syslog receiver that speaks TLS, e.g. logs.example.com:6514.",
        widget=forms.TextInput(
            attrs={"placeholder": "logs.example.com:6514", "spellcheck": "false"}
        ),
    )
    token = forms.CharField(
        max_length=1000,
        required=False,
        strip=False,
        help_text="Optional; sent with every line. Leave blank to keep the current one "
        "(a new endpoint removes it).",
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
    )
    clear_token = forms.BooleanField(required=False, label="Remove the token")
    enabled = forms.BooleanField(required=False, initial=True, label="Forward logs")
    preview = forms.ChoiceField(
        choices=[(StreamSetting.SEND, "Send"), (StreamSetting.DROP, "Drop")],
        initial=StreamSetting.SEND,
        label="Logs of preview instances",
    )

    def clean_endpoint(self):
        return _endpoint(self.cleaned_data["endpoint"])

    def clean_token(self):
        return _token(self.cleaned_data["token"])

    def save(self, workspace, actor=None):
        data = self.cleaned_data
        token = "" if data["clear_token"] else (data["token"] or logstreams.UNSET)
        return logstreams.set_owner_stream(
            workspace,
            actor=actor,
            endpoint=data["endpoint"],
            token=token,
            preview=data["preview"],
            enabled=data["enabled"],
        )


class ServiceStreamForm(forms.Form):
    DEFAULT, DROP, CUSTOM = "default", "drop", "custom"

    setting = forms.ChoiceField(
        choices=[
            (DEFAULT, "Workspace default"),
            (DROP, "Drop (send nothing)"),
            (CUSTOM, "Custom destination"),
        ]
    )
    endpoint = forms.CharField(max_length=300, required=False)
    token = forms.CharField(max_length=1000, required=False, strip=False)

    def clean_token(self):
        return _token(self.cleaned_data["token"])

    def clean(self):
        data = super().clean()
        assert data is not None  # Form.clean returns cleaned_data
        if data.get("setting") == self.CUSTOM:
            if not data.get("endpoint"):
                self.add_error("endpoint", "A custom destination needs an endpoint (HOST:PORT).")
            else:
                try:
                    data["endpoint"] = _endpoint(data["endpoint"])
                except forms.ValidationError as exc:
                    self.add_error("endpoint", exc)
        return data

    def save(self, service, actor=None):
        data = self.cleaned_data
        if data["setting"] == self.DEFAULT:
            logstreams.delete_resource_stream(service, actor=actor)
            return None
        if data["setting"] == self.DROP:
            return logstreams.set_resource_stream(service, setting=StreamSetting.DROP, actor=actor)
        return logstreams.set_resource_stream(
            service,
            actor=actor,
            setting=StreamSetting.SEND,
            endpoint=data["endpoint"],
            token=data["token"] or logstreams.UNSET,
        )
