// feerecon-bench: load generators for the scripts under Benchmarks/.
