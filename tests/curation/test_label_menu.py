"""The flaw-label menu of a step shows the viewer's current label on it, not "No flaw
(clear)" every time: after labelling (the htmx card) and on the page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from curation.services.labels import flaw_label_set

from .test_views_trajectories import parse_elements

pytestmark = pytest.mark.django_db


def selected_in_menus(html: str) -> dict[str, str]:
    """{menu's aria-label: the value of its selected option ('' when none is selected)}."""
    from html.parser import HTMLParser

    menus: dict[str, str] = {}

    class Menus(HTMLParser):
        current = None

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "select" and attrs.get("name") == "flaw_type":
                self.current = attrs["aria-label"]
                menus[self.current] = ""
            elif tag == "option" and self.current and "selected" in attrs:
                menus[self.current] = attrs["value"]

        def handle_endtag(self, tag):
            if tag == "select":
                self.current = None

    Menus().feed(html)
    return menus


def test_the_menu_preselects_the_viewers_current_label(
    client_for, reviewer, lead, make_trajectory, taxonomy
):
    t = make_trajectory()
    manual, other = taxonomy[0], taxonomy[1]
    client = client_for(reviewer)
    fragment = client.post(
        reverse("curation-step-label", args=[t.pk, 1]), {"flaw_type": manual.pk},
        headers={"HX-Request": "true"},
    ).content.decode()  # fmt: skip
    assert selected_in_menus(fragment) == {"Flaw type for step 2": str(manual.pk)}
    flaw_label_set(trajectory=t, step_index=2, flaw_type=other, by_user=lead)  # not mine

    menus = selected_in_menus(client.get(t.get_absolute_url()).content.decode())
    assert menus["Flaw type for step 2"] == str(manual.pk)
    assert menus["Flaw type for step 1"] == "" and menus["Flaw type for step 3"] == ""
    # Cleared: back to "No flaw (clear)".
    client.post(reverse("curation-step-label", args=[t.pk, 1]), {"flaw_type": ""})
    menus = selected_in_menus(client.get(t.get_absolute_url()).content.decode())
    assert menus["Flaw type for step 2"] == ""
    # The lead sees their own label preselected, not the reviewer's.
    lead_page = client_for(lead).get(t.get_absolute_url()).content.decode()
    assert selected_in_menus(lead_page)["Flaw type for step 3"] == str(other.pk)
    assert len([e for e in parse_elements(lead_page) if "selected" in e[1]]) == 1
