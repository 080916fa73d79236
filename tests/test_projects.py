"""Projects: list, add, rename and archive, in place with htmx and as plain pages."""
import pytest

from portal.models import Project
from portal.projects import ProjectError, create_project, rename_project
from tests.conftest import page_text

HTMX = {"HX-Request": "true"}


def test_empty_list_says_how_to_start(as_admin):
    assert "There are no projects yet." in page_text(as_admin.get("/admin/projects"))


def test_list_shows_active_then_archived(as_admin, make_project):
    make_project("Zeta")
    make_project("alpha", archived=True)
    make_project("Beta")
    text = page_text(as_admin.get("/admin/projects"))
    assert text.index("Beta") < text.index("Zeta") < text.index("alpha")
    assert "archived" in text


def test_add_in_place(as_admin, rendered):
    response = as_admin.post("/admin/projects", data={"name": "  Apollo  "}, headers=HTMX)
    assert rendered == ["projects/partial/index.html"]
    assert "Project Apollo added." in page_text(response)
    assert Project.by_name("apollo").name == "Apollo"


def test_add_without_javascript_redirects(as_admin):
    response = as_admin.post("/admin/projects", data={"name": "Apollo"})
    assert response.status_code == 302
    assert "Project Apollo added." in page_text(as_admin.get("/admin/projects"))


@pytest.mark.parametrize(
    "name, message",
    [
        ("   ", "A project name cannot be only spaces."),
        ("", "Enter a project name."),
        ("APOLLO", "A project with this name already exists."),
        ("x" * 256, "At most 255 characters."),
        ("Apollo\x00 2", "Use a single line without control characters."),
    ],
)
def test_bad_names_are_refused_beside_the_field(as_admin, make_project, name, message):
    make_project("Apollo")
    response = as_admin.post("/admin/projects", data={"name": name}, headers=HTMX)
    assert response.status_code == 200  # htmx swaps only 2xx
    html = response.get_data(as_text=True)
    assert 'id="name-error"' in html and message in page_text(response)
    assert Project.select().count() == 1


def test_typed_name_comes_back_escaped(as_admin):
    html = as_admin.post("/admin/projects", data={"name": "<i>x</i>" * 40}).get_data(as_text=True)
    assert "<i>x</i>" not in html and "&lt;i&gt;x&lt;/i&gt;" in html


def test_rename_in_place(as_admin, make_project, rendered):
    project = make_project("Apollo")
    editor = as_admin.get(f"/admin/projects/{project.id}/rename", headers=HTMX)
    assert rendered == ["projects/partial/rename.html"]
    assert 'value="Apollo"' in editor.get_data(as_text=True)
    rendered.clear()
    response = as_admin.post(f"/admin/projects/{project.id}/rename", data={f"project{project.id}-name": "Artemis"},
                             headers=HTMX)
    assert rendered == ["projects/partial/row.html"]
    assert "Artemis" in page_text(response)
    assert Project.get_by_id(project.id).name == "Artemis"


def test_rename_may_change_only_the_case(as_admin, make_project):
    project = make_project("apollo")
    as_admin.post(f"/admin/projects/{project.id}/rename", data={f"project{project.id}-name": "Apollo"})
    assert Project.get_by_id(project.id).name == "Apollo"


def test_rename_to_a_taken_name_is_refused(as_admin, make_project):
    make_project("Apollo")
    project = make_project("Gemini")
    response = as_admin.post(f"/admin/projects/{project.id}/rename", data={f"project{project.id}-name": " apollo "},
                             headers=HTMX)
    assert "A project with this name already exists." in page_text(response)
    assert Project.get_by_id(project.id).name == "Gemini"


def test_rename_cancel_brings_the_row_back(as_admin, make_project, rendered):
    project = make_project("Apollo")
    as_admin.get(f"/admin/projects/{project.id}", headers=HTMX)
    assert rendered == ["projects/partial/row.html"]


def test_archive_and_unarchive(as_admin, make_project):
    project = make_project("Apollo")
    response = as_admin.post(f"/admin/projects/{project.id}/archive", headers=HTMX)
    assert Project.get_by_id(project.id).archived and "Unarchive" in page_text(response)
    as_admin.post(f"/admin/projects/{project.id}/unarchive")
    assert not Project.get_by_id(project.id).archived
    assert "Project Apollo is back in use." in page_text(as_admin.get("/admin/projects"))


def test_core_rules_without_the_app_pages(app, make_project):
    make_project("Apollo")
    with pytest.raises(ProjectError):
        create_project("apollo ")
    gemini = create_project(" Gemini ")
    assert gemini.name == "Gemini"
    with pytest.raises(ProjectError):
        rename_project(gemini, "\t")
