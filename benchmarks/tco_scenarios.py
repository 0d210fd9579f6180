"""The `altostrat tco` scenario table of docs/tco.md: philly-like, a synthetic mix and the Philly trace.

Figures per workload: each scenario's 3-year TCO (USD), energy (MWh), carbon (tCO2e) and
perf per watt, and the ratios to static on-demand. Targets: the published claim that
dynamic allocation costs and draws about 30 % less than static over 3 years.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_result  # noqa: E402

from altostrat.tco.project import TcoRequest, tco  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SHORT = {"static-on-demand": "static", "reserved-mix": "reserved", "dynamic-on-demand": "dynamic",
         "dynamic-spot": "spot"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--synthetic", default="synthetic:jobs=5000,load=0.7,seed=1")
    ap.add_argument("--philly", default=str(SHARED / "traces" / "philly" / "philly.csv"),
                    help="the Philly trace csv; 'none' to skip (it takes about 2 minutes)")
    ap.add_argument("--years", type=float, default=3.0)
    args = ap.parse_args()
    workloads = {"synthetic": args.synthetic}
    if args.philly != "none":
        workloads["philly"] = f"philly:{args.philly}"
    figures: dict[str, float] = {}
    targets: dict[str, dict] = {}
    for label, spec in workloads.items():
        result = tco(TcoRequest(spec, "philly-like", years=args.years))
        for s in result["scenarios"]:
            key = f"{label}_{SHORT[s['name']]}"
            figures[f"{key}_tco_usd"] = s["tco_usd"]
            figures[f"{key}_energy_mwh"] = s["energy_mwh"]
            figures[f"{key}_carbon_tco2e"] = s["carbon_tco2e"]
            figures[f"{key}_gpu_h_per_kwh"] = s["perf_per_watt"]
            if s["name"] != "static-on-demand":
                figures[f"{key}_over_static_tco"] = s["tco_vs_static"]
                figures[f"{key}_over_static_energy"] = s["energy_vs_static"]
        for what in ("tco", "energy"):
            targets[f"{label}_dynamic_over_static_{what}"] = {"op": "<=", "value": 0.7}
    extra = [f"--synthetic {args.synthetic}" if args.synthetic != ap.get_default("synthetic") else "",
             f"--philly {args.philly}" if args.philly != ap.get_default("philly") else "",
             f"--years {args.years:g}" if args.years != 3.0 else ""]
    command = " ".join([".venv/bin/python benchmarks/tco_scenarios.py", *(e for e in extra if e)])
    result = write_result("tco_scenarios", command, figures, targets)
    for name, value in figures.items():
        print(f"{name:45s} {value:,.4g}")
    print("targets met:", result["met"])


if __name__ == "__main__":
    main()
