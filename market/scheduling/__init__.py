"""EV charge/discharge (C&D) scheduling: metrics, scenarios, schedulers and their verification.

This is the scheduling that PoB and ePoB are built on (source seed 001, chapters 3-6), as a pure
library: no I/O, no clock, no global randomness.  The layers:

- :mod:`.model` - requests, scenarios and integer schedules (the form a block carries);
- :mod:`.verify` - integer-only checks and the benefit value validators recompute;
- :mod:`.metrics` - the four power fluctuation levels (eqs. 3.11, 4.4, 5.7, 6.4);
- :mod:`.loadprofiles`, :mod:`.scenarios` - embedded load data and seeded scenarios;
- :mod:`.heuristics`, :mod:`.genetic`, :mod:`.adbev`, :mod:`.optimal` - the schedulers, all
  behind :class:`.base.Scheduler`; :mod:`.qp` is the convex problem the optimal ones solve.

:mod:`.registry` builds any of them by name for the benchmarks and tests.  This package imports
none of its modules itself: a validator loads only what the scheduler genesis names needs
(market/cd_planner.py imports :mod:`.optimal`), never the research schedulers (GA, AdBEV).
"""
