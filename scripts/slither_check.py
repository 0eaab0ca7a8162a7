#!/usr/bin/env python
"""Run Slither's detectors over contracts/ from a Hardhat build-info file and fail on any high or medium finding.

Runs in the Slither tool environment (.venv-slither, see scripts/setup.sh), not the project's: slither-analyzer
pins web3 < 8. The build-info comes from scripts/slither_build_info.py (the project's own solc-js compile).
Findings in OpenZeppelin's sources are not ours and are skipped; a false positive in ours is suppressed inline
with `// slither-disable-next-line <detector>` and a one-line reason.
Usage: .venv-slither/bin/python scripts/slither_check.py <artifacts dir>
"""

from __future__ import annotations

import inspect
import logging
import sys

from slither import Slither
from slither.detectors import all_detectors
from slither.detectors.abstract_detector import AbstractDetector, DetectorClassification

logger = logging.getLogger("slither_check")
FAILING = {DetectorClassification.HIGH, DetectorClassification.MEDIUM}


def main() -> int:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if len(sys.argv) != 2:
        logger.error("usage: slither_check.py <artifacts dir>")
        return 2
    slither = Slither(
        ".", compile_force_framework="hardhat", hardhat_ignore_compile=True, hardhat_artifacts_directory=sys.argv[1]
    )
    ours = [c for c in slither.contracts if c.source_mapping.filename.short.startswith("contracts/")]
    detectors = [
        d for _, d in inspect.getmembers(all_detectors, inspect.isclass)
        if issubclass(d, AbstractDetector) and getattr(d, "IMPACT", None) in FAILING
    ]
    for detector in detectors:
        slither.register_detector(detector)
    findings = [
        result
        for results in slither.run_detectors()
        for result in results
        if any(
            str(element.get("source_mapping", {}).get("filename_relative", "")).startswith("contracts/")
            for element in result.get("elements", [])
        )
    ]
    for result in findings:
        logger.info("[%s/%s] %s", result["impact"], result["check"], result["description"].strip())
    logger.info(
        "slither %d detectors (high and medium) over %d contracts of contracts/: %d finding(s)",
        len(detectors), len(ours), len(findings),
    )
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
