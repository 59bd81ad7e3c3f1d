"""Curation names the model versions the registry does not know (neither a version nor an alias)
and how many rows they held, in the data-quality check ``known_model_versions``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.flywheel.test_aliases import AS_OF, _champion, _config, _lake


def _check(manifest: dict, name: str = "known_model_versions") -> dict:
    return next(c for c in manifest["quality"] if c["name"] == name)


def test_an_unknown_served_name_is_a_warning_naming_it_and_its_rows(tmp_path: Path) -> None:
    from curation.run import run

    _lake(tmp_path, "qwen-prod")
    _champion(tmp_path)
    # every version kept, so the snapshot is published and the warning is all that tells
    snapshot = run(_config(tmp_path, **{"curation.keep_last_champions": 0}), as_of=AS_OF)
    check = _check(json.loads((snapshot / "manifest.json").read_text()))
    assert check["success"] is False and check["severity"] == "warning"
    assert check["observed"] == "1 unknown model_version(s) held 24 row(s): 'qwen-prod' (24 rows)"
    assert "known_model_versions" in (snapshot / "quality" / "summary.html").read_text()


@pytest.mark.slow  # two curations (~18 s)
def test_configured_critical_it_stops_the_round_and_an_alias_satisfies_it(tmp_path: Path) -> None:
    from curation.errors import DataQualityError
    from curation.run import run

    _lake(tmp_path, "qwen-prod")
    _champion(tmp_path)
    critical = {"curation.critical_checks": ("known_model_versions",), "curation.keep_last_champions": 0}
    with pytest.raises(DataQualityError, match=r"known_model_versions.*'qwen-prod' \(24 rows\)"):
        run(_config(tmp_path, **critical), as_of=AS_OF)
    aliased = _config(tmp_path, **critical, **{"registry.aliases": {"qwen-prod": "v3"}})
    snapshot = run(aliased, as_of=AS_OF)
    check = _check(json.loads((snapshot / "manifest.json").read_text()))
    assert check["success"] is True and check["severity"] == "critical"
    assert check["observed"] == "1 version(s), all known"
