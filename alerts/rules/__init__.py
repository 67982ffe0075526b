"""The rule catalog PW-001..PW-019 (LEGAL-RULES.md §2), one module per rule."""

from permitwatch.alerts.rules import (
    pw001_decision_overdue,
    pw002_decision_near,
    pw003_correction_notice_late,
    pw004_corrections_not_at_once,
    pw005_materials_demanded_twice,
    pw006_unrelated_material,
    pw007_no_written_receipt,
    pw008_no_written_reasons,
    pw009_on_the_spot_not_decided,
    pw010_licence_not_issued,
    pw011_result_not_published,
    pw012_hearing,
    pw013_out_of_order_grant,
    pw014_review_not_forwarded,
    pw015_unlawful_fee,
    pw016_irregular_extension,
    pw017_irregular_pause,
    pw018_backdating,
    pw019_impossible_sequence,
)
from permitwatch.alerts.rules.base import Rule

RULES: tuple[Rule, ...] = tuple(
    module.RULE
    for module in (
        pw001_decision_overdue,
        pw002_decision_near,
        pw003_correction_notice_late,
        pw004_corrections_not_at_once,
        pw005_materials_demanded_twice,
        pw006_unrelated_material,
        pw007_no_written_receipt,
        pw008_no_written_reasons,
        pw009_on_the_spot_not_decided,
        pw010_licence_not_issued,
        pw011_result_not_published,
        pw012_hearing,
        pw013_out_of_order_grant,
        pw014_review_not_forwarded,
        pw015_unlawful_fee,
        pw016_irregular_extension,
        pw017_irregular_pause,
        pw018_backdating,
        pw019_impossible_sequence,
    )
)
RULES_BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}
