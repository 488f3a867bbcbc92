"""The prepared device-check script (examples/device_check.py) runs end to end on the CPU."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "device_check.py"


@pytest.fixture(scope="module")
def device_check():
    spec = importlib.util.spec_from_file_location("device_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_device_check_smoke_run_on_cpu(device_check, tmp_path):
    code = device_check.main(["--device", "cpu", "--quick", "--families", "mlp,vgg,text",
                              "--out", str(tmp_path)])
    report = json.loads((tmp_path / "device_check.json").read_text())
    rows = report["rows"]
    assert code == 0, rows
    assert [(r["family"], r["amp"]) for r in rows] == [
        (f, a) for f in ("mlp", "vgg", "text") for a in ("False", "auto")]
    for r in rows:
        assert "error" not in r, r
        assert r["loaded_device"] == "cpu" and r["oos_proba_equal_after_load"]
        assert r["max_abs_proba_diff_cpu_vs_device"] < 1e-5
        assert r["max_abs_influence_diff"] < 1e-5
    assert "| mlp | False |" in (tmp_path / "device_check.md").read_text()


def test_device_check_reports_a_broken_family_and_fails(device_check, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(device_check, "check_one", broken)
    code = device_check.main(["--device", "cpu", "--quick", "--families", "mlp",
                              "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "device_check.json").read_text())["rows"]
    assert code == 1 and rows[0]["error"] == "RuntimeError: boom"
