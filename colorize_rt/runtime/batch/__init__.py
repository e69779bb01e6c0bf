"""Archive scale: ``colorize-rt batch SRC DST`` on this machine or on Ray Data (``run_batch_job``)."""
