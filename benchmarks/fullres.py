"""``python -m benchmarks.fullres``: 12 MP end to end against the codec floor, folder MP/s, start-up, stages
(issue 14; colorize_rt/bench/fullres.py). ``make bench`` runs the same measurement as one of its phases."""

from colorize_rt.bench.fullres import main

if __name__ == "__main__":
    main()
