"""Severity from vendor ratings and CVSS vectors; fix status from vendor states."""

from __future__ import annotations

from scanning.model import CvssScore, FixStatus, Severity
from scanning.severity import cvss_scores, decide_severity, fix_status, vendor_rating


def test_scores_v2_v3_and_v4_vectors_highest_version_first() -> None:
    assert cvss_scores(
        [
            {"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:P/I:P/A:P"},
            {"type": "CVSS_V3", "score": "CVSS:3.0/AV:L/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L"},
            {
                "type": "CVSS_V4",
                "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
            },
            {"type": "CVSS_V3", "score": "not a vector"},
        ]
    ) == (
        CvssScore(
            version="4.0",
            vector="CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
            base_score=9.3,
            severity=Severity.CRITICAL,
        ),
        CvssScore(
            version="3.0",
            vector="CVSS:3.0/AV:L/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L",
            base_score=4.0,
            severity=Severity.MEDIUM,
        ),
        CvssScore(
            version="2.0",
            vector="AV:N/AC:L/Au:N/C:P/I:P/A:P",
            base_score=7.5,
            severity=Severity.HIGH,
        ),
    )


def test_affected_level_urgency_wins_over_record_rating() -> None:
    assert (
        vendor_rating(
            [{"type": "Ubuntu", "score": "medium"}], {"severity": "HIGH"}, [{"urgency": "low"}]
        )
        == "low"
    )


def test_not_yet_assigned_urgency_falls_back_to_cvss() -> None:
    scores = cvss_scores(
        [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]
    )
    vendor = vendor_rating([], {}, [{"urgency": "not yet assigned"}])
    assert (vendor, decide_severity(vendor, scores)) == ("", Severity.CRITICAL)


def test_github_moderate_is_medium() -> None:
    assert decide_severity(vendor_rating([], {"severity": "MODERATE"}, []), ()) == (Severity.MEDIUM)


def test_vendor_states_become_fix_statuses() -> None:
    assert [
        fix_status("", [{"urgency": "unimportant"}]),
        fix_status("", [{"urgency": "end-of-life"}]),
        fix_status("", [{"status": "no-dsa"}]),
        fix_status("", [{}]),
        fix_status("1.2-3", [{"urgency": "unimportant"}]),
    ] == [
        FixStatus.UNIMPORTANT,
        FixStatus.END_OF_LIFE,
        FixStatus.WONT_FIX,
        FixStatus.NOT_FIXED,
        FixStatus.FIXED,
    ]
