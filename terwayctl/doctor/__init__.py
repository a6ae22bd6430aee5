"""`terwayctl doctor`: declared checks of the cloud, the cluster and the node, each giving a finding.

Public API (docs/doctor.md):

    from terwayctl.doctor import DoctorOptions, run, real_inputs
    report = run(DoctorOptions(scopes=frozenset({"node"}), netns="lab-node1"), real_inputs(options))
    report.finding("node.rp-filter").status   # Status.FAIL

`Inputs` can be built from small fakes of the readers (`terwayctl.doctor.readers`) instead.
"""

from terwayctl.doctor.context import Context, DoctorOptions, Inputs, unavailable
from terwayctl.doctor.model import Check, CheckSkipped, Finding, Need, Report, Scope, Status, Summary, Verdict
from terwayctl.doctor.readers import Target
from terwayctl.doctor.registry import CHECKS, check_ids, select
from terwayctl.doctor.runner import run, run_check
from terwayctl.doctor.sources import KubeSource, real_inputs

__all__ = [
    "CHECKS",
    "Check",
    "CheckSkipped",
    "Context",
    "DoctorOptions",
    "Finding",
    "Inputs",
    "KubeSource",
    "Need",
    "Report",
    "Scope",
    "Status",
    "Summary",
    "Target",
    "Verdict",
    "check_ids",
    "real_inputs",
    "run",
    "run_check",
    "select",
    "unavailable",
]
