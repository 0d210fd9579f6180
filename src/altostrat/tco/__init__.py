"""Total cost of ownership of a workload mix under four provisioning scenarios (docs/tco.md).

demand.py simulates the workload and turns the run into busy intervals per node;
scenarios.py prices those intervals as static, reserved, dynamic and spot provisioning;
project.py adds energy, carbon and work and projects one window onto years.
"""
