"""lt_core: the small engine behind the Lottery Ticket Book, in wings that import in one direction only.

    checks               the rules a parameter's value must follow (types, ranges, names): one-line errors
    config, provenance   the frozen experiment configuration (shared fields + one section per procedure);
                         code version, machine and CPU kind recorded with every result
    data                 fetch + verify, readers, splits
    nets                 the papers' networks and their inits
    sparsity             masks and pruning rules (pure functions)
    training             the training loop on any device; training/fast: the CPU fast paths
    procedures           the procedure contract (units, needs, run_unit) and its implementations (imp)
    runs                 the run store, the executors (one process, a process pool), results, recorded runs
    book                 what every chapter uses: configuration, tables, plots, slider views, scorecard engine
    chapters             one module per chapter: its claims and its own figures
    speed                bench, kernels' bounds, measured alternatives the engine does not use
    __main__             the command line

A module imports only from its own wing and the wings above it in this list (tests/test_layers.py walks
every import and fails on one that goes upward).
"""

__version__ = "0.1.0"
