"""Links and @mentions in incident text: http/https links only, everything escaped, mentions of real users only."""

from collections.abc import Callable

import pytest

from accounts.models import User
from incidents import richtext

pytestmark = pytest.mark.django_db

REL = 'rel="noopener noreferrer nofollow" target="_blank"'


@pytest.fixture
def people(make_user: Callable[..., User]) -> dict[str, User]:
    return {"bob": make_user("responder", "bob"), "ann.lee": make_user("viewer", "ann.lee")}


def test_an_http_url_becomes_a_link_that_opens_apart(people: dict[str, User]) -> None:
    html = richtext.render("see https://status.example.com/incidents/1?a=1&b=2 now")
    assert html == (
        'see <a href="https://status.example.com/incidents/1?a=1&amp;b=2" '
        f"{REL}>https://status.example.com/incidents/1?a=1&amp;b=2</a> now"
    )


@pytest.mark.parametrize(
    "text",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(document.cookie)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "vbscript:msgbox(1)",
        "ftp://example.com/file",
        "//evil.example.com/x",
        "http://",
    ],
)
def test_only_http_and_https_become_links(text: str) -> None:
    html = richtext.render(text)
    assert "<a" not in html and "href" not in html


def test_javascript_hidden_behind_an_http_url_links_only_the_http_part() -> None:
    html = richtext.render("javascript:alert(1)//http://example.com")
    assert html.startswith('javascript:alert(1)//<a href="http://example.com"')
    assert 'href="javascript' not in html


def test_quotes_and_angle_brackets_end_a_url_and_cannot_break_out_of_the_attribute() -> None:
    html = richtext.render('http://example.com/"onmouseover="alert(1) and http://example.com/<script>alert(1)</script>')
    assert 'href="http://example.com/"' in html
    assert "&quot;onmouseover=&quot;alert(1)" in html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<a ") == 2


def test_html_in_text_is_escaped() -> None:
    html = richtext.render("<img src=x onerror=alert(1)> & <b>bold</b> 'quote' \"dq\"")
    assert html == ("&lt;img src=x onerror=alert(1)&gt; &amp; &lt;b&gt;bold&lt;/b&gt; &#x27;quote&#x27; &quot;dq&quot;")


def test_trailing_punctuation_is_not_part_of_the_link() -> None:
    html = richtext.render("(see https://example.com/a.) and https://en.wikipedia.org/wiki/Foo_(bar), done")
    assert '<a href="https://example.com/a"' in html and "</a>.)" in html
    assert '<a href="https://en.wikipedia.org/wiki/Foo_(bar)"' in html and "</a>, done" in html


def test_a_mention_of_a_user_who_exists_is_marked_and_others_stay_text(people: dict[str, User]) -> None:
    bob = people["bob"]
    html = richtext.render("@bob and @ann.lee, not @nobody or mail@bob.example")
    assert f'<span class="mention" data-user="{bob.pk}" title="bob (responder)">@bob</span>' in html
    assert f'data-user="{people["ann.lee"].pk}"' in html and "@ann.lee</span>," in html
    assert "@nobody" in html and 'data-user="' not in html.split("@nobody")[1]
    assert "mail@bob.example" in html  # an e-mail address is not a mention


def test_a_mention_carries_no_markup_from_the_text(make_user: Callable[..., User]) -> None:
    make_user("responder", "x")
    html = richtext.render('@x"><script>alert(1)</script>')
    assert "<script>" not in html
    assert html.startswith('<span class="mention"') and "&quot;&gt;&lt;script&gt;" in html


def test_an_inactive_user_is_not_mentioned(make_user: Callable[..., User]) -> None:
    make_user("responder", "gone", is_active=False)
    assert "mention" not in richtext.render("@gone")
    assert richtext.mentioned_users("@gone") == []


def test_mentioned_users_are_each_listed_once_in_order(people: dict[str, User]) -> None:
    users = richtext.mentioned_users("@ann.lee: @bob, again @bob.")
    assert [user.username for user in users] == ["ann.lee", "bob"]


def test_the_room_renders_links_and_mentions_in_notes_and_updates(people: dict[str, User], responder: User) -> None:
    from django.test import Client
    from django.urls import reverse

    from incidents import commands

    incident = commands.incident_create(actor=responder, title="DNS", severity="high").incident
    commands.incident_add_note(
        actor=responder, incident_id=incident.pk, body="@bob look at https://grafana.example.com/d/1 <b>now</b>"
    )
    commands.incident_post_status_update(actor=responder, incident_id=incident.pk, body="javascript:alert(1) @bob")
    browser = Client()
    browser.force_login(responder)
    page = browser.get(reverse("incident-room", args=[incident.pk])).content.decode()
    assert f'<a href="https://grafana.example.com/d/1" {REL}>' in page
    assert f'data-user="{people["bob"].pk}"' in page
    assert "&lt;b&gt;now&lt;/b&gt;" in page and "<b>now" not in page
    assert 'href="javascript' not in page
