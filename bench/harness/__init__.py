"""What every benchmark under bench/ needs and none of them measures.

The scenario scripts (bench/intake.py, bench/ws_stream.py, ...) import from here; bench/ is not an
installed package, and running `python bench/<scenario>.py` puts bench/ on sys.path, which is how
`import harness` resolves. Kept apart from the scenarios so that a fix to clean-up, to the load
generators or to a statistic reaches every benchmark at once, and so that two benchmarks cannot
drift into measuring the same thing two ways.

    session   the run: temporary directory, embedded PostgreSQL, --max-runtime, clean-up on any exit
    database  the embedded PostgreSQL: a fresh database per server start
    servers   starting/stopping `ticker-service serve` (from this or another source tree) and the
              ceiling app; their logs
    procs     child processes, ports, health checks, CPU time and RSS from /proc
    load      the load generators: wrk (closed loop) and the fixed-rate aiohttp client (open loop)
    report    percentiles, medians and the figures table
"""
