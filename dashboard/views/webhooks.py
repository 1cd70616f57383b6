"""The webhooks pages of a workspace: the list (and, for admins, the create form), and a
webhook's page (its settings, its secret for admins, its recent deliveries with their status
code, response excerpt and error, and a re-send button). Every member reads them; only admins
change them or see secrets. Outsiders get a 404, others who try to write a 403."""

from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from audit.trail import actor_of
from dashboard.access import get_workspace, signed_in
from dashboard.forms.webhooks import WebhookForm
from dashboard.http import HtmxHttpRequest
from dashboard.views import is_partial
from services.access import ADMIN, READ
from services.errors import Invalid
from webhooks import hooks
from webhooks.models import Attempt, Delivery, Webhook

LIST_TEMPLATE = "webhooks/list.html"
DETAIL_TEMPLATE = "webhooks/detail.html"
DELIVERIES_SHOWN = 50

FIELDS = {"eventFilter": "event_filter"}  # the domain's field names, as the form spells them


def _saved(form: WebhookForm, save) -> Webhook | None:
    """Save through the domain's rules; a refusal becomes an error on its field."""
    try:
        return save(form.cleaned_data)
    except Invalid as exc:
        field = FIELDS.get(exc.field or "", exc.field)
        form.add_error(field if field in form.fields else None, exc.message)
        return None


@signed_in
@require_http_methods(["GET", "POST"])
def webhooks_list(request: HtmxHttpRequest, workspace_id: str) -> HttpResponse:
    need = ADMIN if request.method == "POST" else READ
    workspace, request.membership = get_workspace(request.user, workspace_id, need)
    form = WebhookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        webhook = _saved(
            form,
            lambda data: hooks.create_webhook(
                workspace,
                name=data["name"],
                url=data["url"],
                enabled=data["enabled"],
                event_filter=data["event_filter"],
                actor=actor_of(request),
            ),
        )
        if webhook is not None:
            return redirect("webhook", workspace.id, webhook.id)
    context = {
        "tab": "webhooks",
        "webhooks": Webhook.objects.filter(workspace=workspace).defer("secret"),
        "form": form,
    }
    return render(request, LIST_TEMPLATE, context, status=400 if form.errors else 200)


def _deliveries(webhook: Webhook) -> list[dict]:
    deliveries = list(
        Delivery.objects.filter(webhook=webhook).select_related("event")[:DELIVERIES_SHOWN]
    )
    last: dict[int, Attempt] = {}
    for attempt in Attempt.objects.filter(delivery__in=deliveries).order_by("created_at", "id"):
        last[attempt.delivery_id] = attempt
    return [{"delivery": d, "attempt": last.get(d.pk)} for d in deliveries]


def _detail(request, workspace, webhook, form=None, status=200, **extra) -> HttpResponse:
    form = form or WebhookForm(
        initial={
            "name": webhook.name,
            "url": webhook.url,
            "enabled": webhook.enabled,
            "event_filter": webhook.event_filter,
        }
    )
    context = {
        "tab": "webhooks",
        "webhook": webhook,
        "form": form,
        "rows": _deliveries(webhook),
        **extra,
    }
    if is_partial(request) and "resent" in extra:
        return render(request, f"{DETAIL_TEMPLATE}#deliveries", context, status=status)
    return render(request, DETAIL_TEMPLATE, context, status=status)


@signed_in
@require_http_methods(["GET", "POST"])
def webhook_detail(request: HtmxHttpRequest, workspace_id: str, webhook_id: str) -> HttpResponse:
    workspace, request.membership = get_workspace(request.user, workspace_id)
    webhook = hooks.webhook_in(workspace, webhook_id)
    if request.method == "GET":
        return _detail(request, workspace, webhook)
    workspace, request.membership = get_workspace(request.user, workspace_id, ADMIN)
    form = WebhookForm(request.POST)
    if form.is_valid():
        saved = _saved(
            form,
            lambda data: hooks.update_webhook(
                webhook,
                name=data["name"],
                url=data["url"],
                enabled=data["enabled"],
                event_filter=data["event_filter"],
                actor=actor_of(request),
            ),
        )
        if saved is not None:
            return redirect("webhook", workspace.id, webhook.id)
    webhook.refresh_from_db()
    return _detail(request, workspace, webhook, form=form, status=400)


@signed_in
@require_POST
def webhook_delete(request: HtmxHttpRequest, workspace_id: str, webhook_id: str) -> HttpResponse:
    workspace, request.membership = get_workspace(request.user, workspace_id, ADMIN)
    hooks.delete_webhook(hooks.webhook_in(workspace, webhook_id), actor=actor_of(request))
    return redirect("webhooks", workspace.id)


@signed_in
@require_POST
def webhook_resend(
    request: HtmxHttpRequest, workspace_id: str, webhook_id: str, event_id: str
) -> HttpResponse:
    workspace, request.membership = get_workspace(request.user, workspace_id, ADMIN)
    webhook = hooks.webhook_in(workspace, webhook_id)
    hooks.resend_event(webhook, event_id)
    if is_partial(request):
        return _detail(request, workspace, webhook, resent=event_id)
    return redirect(reverse("webhook", args=[workspace.id, webhook.id]))
