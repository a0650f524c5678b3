"""Measure the harness: how faithful, noisy, sensitive and costly the asv suite is.

    python -m funcbench.audit [--part fidelity,noise,sensitivity,cost,explain,gpu | all] [--bench REGEX ...]

Everything runs asv itself on this working tree without building an environment
(funcbench.fleet.asv_driver.Workspace: ``asv run -E existing:<this python> --set-commit-hash <hash>
--record-samples`` in a private configuration). Figures come from asv's own tools: ``asv
compare`` (its Mann-Whitney U test on recorded samples) for noise and sensitivity,
``asv.results`` for values, samples and durations.

The pieces, apart: ``runs`` drives asv for the audit's experiments, ``reference`` times the
same ops with torch.utils.benchmark in this process, ``stats`` turns both into figures,
``markdown`` writes them, ``cli`` parses the arguments and runs the parts:

- fidelity: asv's time_op median per cell / torch.utils.benchmark ``blocked_autorange`` median
  of the same op, timed in this process right after.
- noise: the same suite run twice, labelled as two commits with the same benchmark code
  (HEAD~1 and HEAD; ``existing`` runs the working tree either way), then ``asv compare
  --factor 1.1``: every '+' is a false regression.
- sensitivity: FUNCBENCH_INJECT_SLOWDOWN (test-only) adds known factors of work to one cell;
  each injected run is compared with a base run; the smallest factor flagged in every repetition.
- cost: wall time of one commit's suite (the noise runs), the share of it outside the timed
  samples, and the wall time of ``asv run --quick``.
- explain: what keeping per-function counts costs a counting, and the rank of an injected ATen
  op's kernel among the movers that explain its count (funcbench.audit.profiles).
- gpu: CUDA events vs synchronised wall time per cell; says "no CUDA device here" on CPU.
"""
