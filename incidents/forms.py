"""Parsing of the web pages' posts. Forms only parse: every change is made by `incidents.commands`."""

from datetime import date
from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from .models import ActionItem, AuditEvent, Incident
from .serializers import NoteInput

User = get_user_model()


def active_users() -> Any:
    return User.objects.filter(is_active=True).order_by("username")


def role_holders() -> Any:
    """Who the room offers as commander, communications lead, scribe, assignee or owner: responders and admins.

    The forms still accept any active user's id, so a forged choice reaches
    the command, which refuses a viewer with a message naming the field.
    """
    return active_users().filter(role__in=[User.Role.RESPONDER, User.Role.ADMIN])


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.username)


LIST_SORT_CHOICES = [("", "Open first, most severe first")] + [
    (f"{sign}{key}", f"{key} {'descending' if sign else 'ascending'}")
    for key in ("severity", "title", "status", "commander", "opened", "duration")
    for sign in ("", "-")
]


class ListFilterForm(forms.Form):
    """The incident list's filters, read from the URL so a filtered view can be shared."""

    status = forms.ChoiceField(choices=[("", "Any status"), *Incident.Status.choices], required=False)
    severity = forms.ChoiceField(choices=[("", "Any severity"), *Incident.Severity.choices], required=False)
    q = forms.CharField(required=False, max_length=200, label="Search")
    mine = forms.BooleanField(required=False, label="Mine")
    since = forms.DateField(required=False, label="Opened from", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="to", widget=forms.DateInput(attrs={"type": "date"}))
    sort = forms.ChoiceField(choices=LIST_SORT_CHOICES, required=False)
    page = forms.IntegerField(required=False, min_value=1)

    def clean_mine(self) -> bool:
        raw = self.data.get("mine")
        if raw not in (None, "", "on", "true", "1", "false", "0"):
            raise forms.ValidationError("Use on or off.")
        return bool(self.cleaned_data.get("mine"))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return cleaned


class IncidentCreateForm(forms.Form):
    title = forms.CharField(max_length=Incident.TITLE_MAX_LENGTH, widget=forms.TextInput(attrs={"autofocus": True}))
    severity = forms.ChoiceField(choices=Incident.Severity.choices, initial=Incident.Severity.MEDIUM)
    summary = forms.CharField(
        max_length=Incident.SUMMARY_MAX_LENGTH, required=False, strip=False, widget=forms.Textarea(attrs={"rows": 4})
    )


class VersionedForm(forms.Form):
    version = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1)


class StatusForm(VersionedForm):
    status = forms.ChoiceField(choices=Incident.Status.choices)
    resolution = forms.CharField(required=False, max_length=Incident.RESOLUTION_MAX_LENGTH)


class TitleForm(forms.Form):
    title = forms.CharField(max_length=Incident.TITLE_MAX_LENGTH)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=[(name, name) for name in Incident.ROLES])
    user = UserChoiceField(queryset=active_users(), required=False)


class SeverityForm(forms.Form):
    severity = forms.ChoiceField(choices=Incident.Severity.choices)


class CommanderForm(forms.Form):
    commander = UserChoiceField(queryset=active_users(), required=False)


class SummaryForm(VersionedForm):
    summary = forms.CharField(max_length=Incident.SUMMARY_MAX_LENGTH, required=False, strip=False)
    # After a conflict the room sends how the writer settled it (see commands.incident_update); blank otherwise.
    resolved_conflict = forms.ChoiceField(
        choices=[("", ""), ("merge", "merge"), ("replace", "replace")], required=False
    )


class AssigneeForm(forms.Form):
    user = UserChoiceField(queryset=active_users())


class NoteForm(forms.Form):
    body = forms.CharField(max_length=NoteInput.BODY_MAX_LENGTH)


class StatusUpdateForm(forms.Form):
    body = forms.CharField(max_length=Incident.STATUS_UPDATE_MAX_LENGTH)


class CadenceForm(forms.Form):
    """Minutes between status updates; empty: none."""

    cadence = forms.IntegerField(min_value=1, max_value=Incident.CADENCE_MAX_MINUTES, required=False)


class ActionItemAddForm(forms.Form):
    title = forms.CharField(max_length=ActionItem.TITLE_MAX_LENGTH)
    owner = UserChoiceField(queryset=active_users(), required=False)


class ActionItemDoneForm(forms.Form):
    done = forms.BooleanField(required=False)


class ActionItemOwnerForm(forms.Form):
    owner = UserChoiceField(queryset=active_users(), required=False)


class ReplayForm(forms.Form):
    seq = forms.IntegerField(min_value=1, max_value=2**31 - 1, label="Event")


class PinForm(forms.Form):
    pinned = forms.ChoiceField(choices=[("true", "pin"), ("false", "unpin")])


class TimelineFilterForm(forms.Form):
    """The room's timeline filters and paging (GET); the same rules as the events API's."""

    type = forms.ChoiceField(choices=[("", "All events"), *AuditEvent.Type.choices], required=False, label="Type")
    actor = forms.IntegerField(required=False, min_value=1, label="By")
    q = forms.CharField(required=False, max_length=200, label="Search notes")
    before = forms.IntegerField(required=False, min_value=1)
    into = forms.ChoiceField(choices=[("list", "list"), ("results", "results")], required=False)

    def __init__(self, *args: Any, actors: list[dict[str, Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Shown as a select of who acted; any positive id is accepted on the way in.
        self.actor_choices = [("", "Anyone"), *((a["id"], a["username"]) for a in actors or [])]


class PeriodForm(forms.Form):
    """A period of opening dates, both days included (the overview and its CSV)."""

    MAX_DAYS = 731

    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        from .overview import default_period

        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        default_since, default_until = default_period()
        until = cleaned.get("until") or default_until
        try:
            since = cleaned.get("since") or until - (default_until - default_since)
        except OverflowError:  # an `until` in the first days of year 1
            since = date.min
        if since > until:
            self.add_error("until", "The end date is before the start date.")
        elif (until - since).days >= self.MAX_DAYS:
            self.add_error("since", f"A period is at most {self.MAX_DAYS} days.")
        cleaned["since"], cleaned["until"] = since, until
        return cleaned


def first_error(form: forms.Form) -> str:
    """One line in plain words for the error slot beside the control."""
    for name, errors in form.errors.items():
        if name == "__all__":
            return str(errors[0])
        label = form.fields[name].label or name.replace("_", " ").capitalize()
        return f"{label}: {errors[0]}"
    return "The request is invalid."
