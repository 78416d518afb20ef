from __future__ import annotations

import pytest
import yaml

from models.errors import SeedFileError
from models.seed import BUNDLED_SEED_FILE, parse_seed_document


def bundled() -> dict[str, object]:
    document = yaml.safe_load(BUNDLED_SEED_FILE.read_text())
    assert isinstance(document, dict)
    return document


def parse(document: object) -> None:
    parse_seed_document(yaml.safe_dump(document, allow_unicode=True), "test.yaml")


def test_the_bundled_seed_meets_the_brief() -> None:
    document = parse_seed_document(BUNDLED_SEED_FILE.read_text(), "seed.yaml")
    assert len(document.universities) == 3
    assert all(university.is_verified for university in document.universities)
    assert all(len(university.courses) >= 4 for university in document.universities)
    assert [staff.university for staff in document.staff] == ["tu-berlin"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["universities"][0].update(slug="Not A Slug"), "universities[0].slug"),
        (
            lambda d: d["universities"][1]["courses"][2].update(tuition_fee="-5"),
            "universities[1].courses[2].tuition_fee",
        ),
        (
            lambda d: d["universities"][0]["courses"][0].update(colour="red"),
            "universities[0].courses[0].colour: Extra",
        ),
        (
            lambda d: d["staff"][0].update(university="nowhere"),
            "names university 'nowhere', which is not seeded",
        ),
        (lambda d: d["staff"][0].update(email="not-an-email"), "staff[0].email"),
        (
            lambda d: d["universities"][2]["courses"].append(dict(d["universities"][2]["courses"][0])),
            "course codes repeat within ku-leuven: BIO-BSC",
        ),
        (lambda d: d.pop("admin"), "admin: Field required"),
    ],
)
def test_invalid_documents_name_the_field(change: object, expected: str) -> None:
    document = bundled()
    change(document)  # type: ignore[operator]
    with pytest.raises(SeedFileError, match=r"seed file test\.yaml is invalid") as failure:
        parse(document)
    assert expected in str(failure.value)
    assert "nothing was written" in str(failure.value)


def test_broken_yaml_reports_the_line() -> None:
    with pytest.raises(SeedFileError, match=r"is not valid YAML at line 2\. found character"):
        parse_seed_document("admin:\n\tfirst_name: A\n", "broken.yaml")


def test_staff_emails_are_normalised() -> None:
    document = bundled()
    document["staff"][0]["email"] = "  Admissions@TU-Berlin.Platform.Example "  # type: ignore[index]
    parsed = parse_seed_document(yaml.safe_dump(document, allow_unicode=True), "x")
    assert parsed.staff[0].email == "admissions@tu-berlin.platform.example"
