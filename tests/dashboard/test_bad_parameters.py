"""Every query parameter of every dashboard page is validated: out-of-range dates, bad cursors,
unknown statuses and garbage numbers are a 400 with a message naming the parameter (a styled page,
or an alert for an htmx partial), never a 500 and never a page or table replaced by raw text."""

import pytest
from django.urls import URLPattern, get_resolver

from services.models import ApiKey
from webhooks.models import Event, Webhook

BAD_QUERIES = [
    {"created_to": "9999-12-31"},
    {"created_from": "0001-01-01"},
    {"created_from": "2026-02-30"},
    {"created_from": "2026-05-02", "created_to": "2026-05-01"},
    {"cursor": "job-doesnotexist00000000"},
    {"cursor": "'; drop table jobs; --"},
    {"status": "exploded"},
    {"after": "99999999999999999999999"},
    {"before": "-1"},
    {"after": "1", "before": "2"},
    {"after": "abc"},
    {"q": "x" * 1000},
    {"month": "2026-13"},
    {"month": "1999-12"},
    {"month": "9999-01"},
]


def get_patterns() -> list[str]:
    """The dashboard's URL patterns (names), from the resolver: a new page is covered too."""
    names = []

    def walk(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLPattern):
                if pattern.name and pattern.callback.__module__.startswith("dashboard."):
                    names.append(pattern.name)
            else:
                walk(pattern.url_patterns)

    walk(get_resolver().url_patterns)
    return sorted(set(names))


@pytest.fixture
def objects(owner, workspace, service, build, make_job):
    job = make_job(lines=["one", "two"])
    key, _ = ApiKey.issue(owner, workspace)
    webhook = Webhook.objects.create(workspace=workspace, name="hook", url="https://hooks.test/in")
    event = Event.objects.create(workspace=workspace, type="service_suspended")
    return {
        "webhook_id": webhook.id,
        "event_id": event.id,
        "workspace_id": workspace.id,
        "service_id": service.id,
        "job_id": job.id,
        "build_id": build.id,
        "key_id": key.id,
        "key": "DATABASE_URL",
    }


def url_for(name: str, objects: dict) -> str:
    from django.urls import reverse

    resolver = get_resolver()
    possibilities = resolver.reverse_dict.getlist(name)
    params = possibilities[0][0][0][1]
    return reverse(name, kwargs={p: objects[p] for p in params})


def test_the_list_covers_the_pages():
    names = get_patterns()
    assert {"jobs", "job", "job_logs", "build_logs", "usage", "log_stream"} <= set(names)


@pytest.mark.parametrize("name", get_patterns())
@pytest.mark.parametrize("partial", [False, True], ids=["page", "htmx"])
def test_bad_query_parameters_are_a_clear_400_never_a_500(login, owner, objects, name, partial):
    client = login(owner)
    url = url_for(name, objects)
    headers = {"HX-Request": "true"} if partial else {}
    for query in BAD_QUERIES:
        response = client.get(url, query, headers=headers)
        assert response.status_code < 500, (url, query, response.content[:500])
        if response.status_code != 400:
            continue
        body = response.content.decode()
        if partial:
            # An alert, sent to the alerts box: never swapped over the table that asked.
            assert response["HX-Retarget"] == "#alerts", (url, query)
            assert 'class="alert"' in body
        else:
            assert 'class="topbar"' in body, (url, query)
            assert "Bad request" in body
        named = [param for param in query if param in body]
        assert named, (url, query, body[:500])


def test_the_issue_s_overflowing_date_is_a_400_on_the_jobs_page(login, viewer, service):
    response = login(viewer).get(f"/services/{service.id}/jobs/", {"created_to": "9999-12-31"})
    assert response.status_code == 400
    assert "created_to" in response.content.decode()
