"""The chaos soak harness: tests/test_chaos_soak.py (short) and bench/soak_chaos.py (long).

`run.run_soak(SoakConfig(...), database)` runs the simulator, workers and faults and returns a
`report.Report`; see run.py for the layout, plan.py for the faults, checks.py for the verdicts and
reference.py for the independent MACD-V and alert reference.
"""
