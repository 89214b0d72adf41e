from pathlib import Path

import pytest

from advertisex.model.reasons import CATALOGUE, markdown, reason

DOC = Path(__file__).resolve().parents[2] / "docs" / "reasons.md"


def test_docs_reason_catalogue_is_generated_from_the_code():
    assert DOC.read_text() == markdown(), "run `make docs` to regenerate docs/reasons.md"


def test_reason_rejects_uncatalogued_codes():
    assert reason("required_missing", "user_id") == "required_missing:user_id"
    with pytest.raises(KeyError):
        reason("made_up")


def test_every_reason_the_kernels_emit_is_catalogued():
    from datetime import UTC, datetime

    import pyarrow as pa

    from advertisex.formats.csvfmt import frame_csv
    from advertisex.formats.jsonfmt import frame_json
    from advertisex.kernels.standardize import Rules, standardize_clicks, standardize_impressions

    def tag(frame: pa.Table) -> pa.Table:
        return frame.append_column("segment", pa.array([0] * frame.num_rows, pa.int32()))

    rules = Rules(datetime(2026, 1, 1, tzinfo=UTC))
    imps = frame_json(
        b'{bad\n[1]\n{"timestamp":"x","user_id":{},"cost":-1}\n{"timestamp":"3000-01-01","cost":"a"}\n\xff\n'
    )
    clicks = frame_csv(
        b"timestamp,user_id,campaign_id,event_type,conversion_value\n,,,nope,-2\n1,2\n"
    )
    emitted = standardize_impressions(tag(imps), rules).column("reasons").to_pylist()
    emitted += standardize_clicks(tag(clicks), rules).column("reasons").to_pylist()
    codes = {r.split(":")[0] for reasons in emitted for r in reasons}
    assert len(codes) >= 9
    assert codes <= set(CATALOGUE)


def test_docs_configuration_is_generated_from_the_settings():
    from advertisex.config import markdown as config_markdown

    doc = DOC.parent / "configuration.md"
    assert doc.read_text() == config_markdown(), (
        "run `make docs` to regenerate docs/configuration.md"
    )
