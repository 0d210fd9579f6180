"""`altostrat catalog spot-history DIR` as a user runs it."""

import json

from test_cli import altostrat


def test_spot_history_table_and_json(tmp_path):
    (tmp_path / "azure").mkdir()
    (tmp_path / "azure" / "instance_mapping.csv").write_text("Instance,GPU type,# GPUs\nNC6,K80,1\n")
    (tmp_path / "azure" / "us_east.csv").write_text("Date,NC6\n3/1/2020,$0.25\n3/2/2020,$0.25\n3/3/2020,$0.50\n")
    data = json.loads(altostrat("catalog", "spot-history", str(tmp_path), "--json").stdout)
    assert data == {"directory": str(tmp_path), "series": [
        {"cloud": "azure", "instance_type": "Standard_NC6", "region": "eastus", "records": 3,
         "start": "2020-03-01T00:00:00Z", "end": "2020-03-04T00:00:00Z",
         "min_usd_hr": 0.25, "mean_usd_hr": (0.25 * 2 + 0.5) / 3, "max_usd_hr": 0.5}]}
    table = altostrat("catalog", "spot-history", str(tmp_path)).stdout
    assert "Standard_NC6" in table and "eastus" in table and "0.3333" in table and "2020-03-04T00:00" in table


def test_spot_history_error_is_one_line(tmp_path):
    out = altostrat("catalog", "spot-history", str(tmp_path), check=False)
    # the console wraps long lines at its width; no traceback
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert " ".join(out.stderr.split()) == f"error: {tmp_path}: no aws/ or azure/ folder; give the spot-history-2020 folder"
