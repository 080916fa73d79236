"""Page or fragment: one helper decides, and answers vary on HX-Request."""
import pytest


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({}, "home/index.html"),
        ({"HX-Request": "true"}, "home/partial/index.html"),
        ({"HX-Request": "true", "HX-Boosted": "true"}, "home/index.html"),
        ({"HX-Request": "true", "HX-History-Restore-Request": "true"}, "home/index.html"),
    ],
)
def test_page_or_fragment(as_employee, rendered, headers, expected):
    response = as_employee.get("/", headers=headers)
    assert rendered[0] == expected
    assert response.headers["Vary"] == "HX-Request" or "HX-Request" in response.headers["Vary"]
    has_layout = "<html" in response.get_data(as_text=True)
    assert has_layout == (expected == "home/index.html")
