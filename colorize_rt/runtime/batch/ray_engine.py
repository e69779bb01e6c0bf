"""The ``ray`` engine: Ray Data reads the sources and a pool of actors colourises them.

``read_binary_files(include_paths=True)`` reads the listed sources (fractional CPUs per read task, so the
reads always fit next to the actors), ``map_batches`` hands batches to :class:`worker.ColorizeWorker`
actors (``compute=ActorPoolStrategy(size=N)``; each actor holds one model session with ONNX Runtime's
threads set to its CPUs), and the driver collects the manifest rows. Ray restarts a dead actor and retries
its batch; every write is idempotent, so a retried batch leaves one file.

Ray is imported lazily (the ``cluster`` extra), so the runtime-only install stays free of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ...core.lazy import require
from .paths import Place
from .worker import MANIFEST_FIELDS, BatchSettings, ColorizeWorker, actor_threads

READ_TASK_CPUS = 0.1  # reads are I/O: a tenth of a CPU each, so they never wait for the actors' CPUs
# Read blocks per actor at most: enough that reads stream ahead of every actor and a lost block is cheap to
# redo. Each block holds at least one batch (read_blocks).
BLOCKS_PER_ACTOR = 32
# Read tasks running at once, per actor. One read task fills a block far faster than an actor colourises it,
# so one per actor keeps every actor fed. Unbounded, Ray Data sizes the reads by the free CPUs over 0.1 CPU:
# up to ten at once next to one actor on 2 CPUs, each in a new worker process, whose start-ups (about a
# CPU-second each) and per-task costs took the actor's CPU during its first images (issue 27).
READS_PER_ACTOR = 1
MIN_ACTOR_CPUS = 0.25  # the least an actor may hold (limits.CPUS_PER_ACTOR)
RAY_HINT = "pip install 'colorize-rt[cluster]'"


@dataclass(frozen=True)
class ActorPlan:
    """How many actors with how many CPUs / GPUs each, and how many images per batch."""

    actors: int
    cpus_per_actor: float
    gpus_per_actor: float
    batch_size: int

    def line(self) -> str:
        gpu = f", {self.gpus_per_actor:g} GPU" if self.gpus_per_actor else ""
        plural = "s" if self.actors != 1 else ""
        return f"{self.actors} actor{plural} x {self.cpus_per_actor:g} CPU{gpu}, batches of {self.batch_size}"


def plan_actors(
    node_cpus: float | list[float],
    n_images: int,
    actors: int | None = None,
    cpus_per_actor: float | None = None,
    gpus_per_actor: float = 0.0,
    batch_size: int | None = None,
) -> ActorPlan:
    """Size the actor pool so it fits every node with room for the read tasks (never a silent hang).

    Defaults: one actor per whole CPU (no more than there are images), each holding at most one CPU and
    its node's share less the reads' share, so a node's actors and a read task always fit on it together:
    on a 2-CPU machine, 2 actors x 0.95 CPU (two actors at 1 CPU each would leave the reads no CPU and
    hang). Batches are small enough that every actor gets several (1..16 images).

    Args:
        node_cpus: the CPUs of each node (or of the one machine).
        n_images: images to colourise.
        actors: actors asked for (None: the default).
        cpus_per_actor: CPUs per actor asked for (None: the default).
        gpus_per_actor: GPUs per actor.
        batch_size: images per batch asked for (None: the default).

    Returns:
        The plan.

    Raises:
        ValueError: one line, when the pool asked for cannot fit the nodes' CPUs next to the reads.
    """
    nodes = [float(c) for c in (node_cpus if isinstance(node_cpus, (list, tuple)) else [node_cpus]) if c > 0] or [1.0]
    total = sum(nodes)
    if cpus_per_actor:
        cpa = float(cpus_per_actor)
        fit = sum(max(0, math.floor((c - READ_TASK_CPUS) / cpa + 1e-9)) for c in nodes)
    else:
        small = min(nodes)
        cpa = min(1.0, math.floor((small - READ_TASK_CPUS) / max(1, math.floor(small + 1e-9)) * 100) / 100)
        fit = sum(max(0, math.floor((c - READ_TASK_CPUS) / cpa + 1e-9)) for c in nodes) if cpa >= MIN_ACTOR_CPUS else 0
    actors = actors or max(1, min(fit, n_images))
    if cpa < MIN_ACTOR_CPUS or actors > fit:
        raise ValueError(
            f"{actors} actor{'s' if actors != 1 else ''} x {max(cpa, MIN_ACTOR_CPUS):g} CPU do not fit the cluster's "
            f"{total:g} CPUs ({len(nodes)} node{'s' if len(nodes) != 1 else ''}) next to the reads ({READ_TASK_CPUS:g} CPU per "
            f"node): ask for at most {fit} actors, or fewer CPUs each"
        )
    if batch_size is None:
        batch_size = max(1, min(16, n_images // (4 * actors) or 1))
    return ActorPlan(actors, cpa, float(gpus_per_actor or 0.0), batch_size)


def read_blocks(n_images: int, plan: ActorPlan) -> int:
    """How many blocks (read tasks) to read ``n_images`` sources in: one batch per block or more, and at
    most ``BLOCKS_PER_ACTOR`` per actor (a block smaller than a batch only adds a read task per batch).

    Args:
        n_images: the sources to read.
        plan: the actor pool (its actors and batch size).

    Returns:
        A number of blocks, at least 1.
    """
    return max(1, min(math.ceil(n_images / plan.batch_size), BLOCKS_PER_ACTOR * plan.actors))


def node_cpus() -> list[float]:
    """The CPUs of each alive node of the connected Ray cluster."""
    ray = import_ray()
    return [float(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU")]


def import_ray():
    """Import ``ray`` (and Ray Data) or raise ``MissingDependency`` naming the cluster extra."""
    try:
        require("ray.data")
    except ImportError as exc:
        from ...core.lazy import MissingDependency

        raise MissingDependency(f"--engine ray needs Ray Data, which is not installed: {RAY_HINT}") from exc
    return require("ray")


def ensure_ray(address: str | None, num_cpus: int | None = None) -> bool:
    """Connect to Ray: the running session, the cluster at ``address``, or a new embedded local Ray.

    Args:
        address: a cluster address (``ray://host:10001``, ``host:6379``, ``auto``) or None for a local Ray.
        num_cpus: CPUs of a new local Ray (None: all of this machine's).

    Returns:
        Whether this call started Ray (the caller shuts it down again).
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    kwargs = {"include_dashboard": False, "configure_logging": True, "log_to_driver": True}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, **kwargs)
    return True


def _read_filesystem(src: Place):
    """The pyarrow filesystem Ray reads SRC through (None: local paths)."""
    if src.local:
        return None
    fs = require("pyarrow.fs")
    return fs.PyFileSystem(fs.FSSpecHandler(src.fs))


def ray_rows(
    settings: BatchSettings,
    rels: list[str],
    plan: ActorPlan,
    *,
    worker_class: type = ColorizeWorker,
    progress: bool = True,
    on_row: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Colourise ``rels`` (paths relative to SRC) on Ray and return their manifest rows.

    Args:
        settings: the job (``threads`` is set here from the plan's CPUs per actor).
        rels: the sources to do.
        plan: the actor pool.
        worker_class: the actor class (a ``ColorizeWorker``; tests pass one that fails on purpose).
        progress: Ray Data's progress bars.
        on_row: called with each row as it arrives in the driver.

    Returns:
        The rows, as the actors returned them (a retried batch may repeat a source).
    """
    ray = import_ray()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress
    ctx.print_on_execution_start = progress
    settings.threads = actor_threads(plan.cpus_per_actor)
    paths = [settings.src.join(rel) for rel in rels]
    ds = ray.data.read_binary_files(
        paths,
        include_paths=True,
        filesystem=_read_filesystem(settings.src),
        num_cpus=READ_TASK_CPUS,
        override_num_blocks=read_blocks(len(paths), plan),
        concurrency=READS_PER_ACTOR * plan.actors,
    )
    gpus = {"num_gpus": plan.gpus_per_actor} if plan.gpus_per_actor else {}
    ds = ds.map_batches(
        worker_class,
        fn_constructor_kwargs={"settings": settings},
        compute=ray.data.ActorPoolStrategy(size=plan.actors),
        num_cpus=plan.cpus_per_actor,
        batch_size=plan.batch_size,
        batch_format="numpy",
        zero_copy_batch=True,
        **gpus,
    )
    rows = []
    for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
        for i in range(len(batch["source"])):
            row = {k: _plain(batch[k][i]) for k in MANIFEST_FIELDS}
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def _plain(value):
    """A numpy scalar as the Python value it holds (for JSON)."""
    return value.item() if hasattr(value, "item") else value
