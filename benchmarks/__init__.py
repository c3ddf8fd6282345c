"""tinynn's benchmarks (not part of the installed package): run them as modules from the repository root, e.g.
``python -m benchmarks.bench --data-dir ../shared/data/mnist``. One harness (``benchmarks.harness``) holds the
race, the machine record and the peers."""
